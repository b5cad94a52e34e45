import fs from 'node:fs';
import path from 'node:path';
import { BufIOError, StorageError } from '../../core/errors.js';
import type { RecordId } from '../../core/storage.js';
import type { Durability } from './file-storage-options.js';
import {
  closeFd,
  datasync,
  fileSize,
  isErrno,
  openFd,
  syncDirectory,
  syncFile,
  truncateFd,
  unlinkIfPresent,
  writeFully,
  writeFullySync,
} from './file-io.js';
import {
  FRAME_HEAD_BYTES,
  HEADER_BYTES,
  ackFrameBytes,
  appendFrameBytes,
  carryFrameBytes,
  idRanges,
  frameTag,
  releaseFrameBytes,
  segmentHeader,
  segmentName,
  spareName,
  writeAckFrame,
  writeAppendFrame,
  writeCarryFrame,
  writeReleaseFrame,
} from './journal-format.js';
import type { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { Segment, SegmentTable } from './segment-table.js';

interface AppendOp<T> {
  readonly kind: 'append';
  readonly records: LiveRecord<T>[];
  readonly payloads: readonly string[];
  readonly ids: readonly RecordId[];
  readonly bytes: number;
  resolve(ids: readonly RecordId[]): void;
  reject(error: Error): void;
}

interface AckOp {
  readonly kind: 'ack';
  readonly ranges: number[];
  /** The segments these acknowledgements make records of dead, each once. */
  readonly segments: Segment[];
  readonly bytes: number;
}

interface ReleaseOp {
  readonly kind: 'release';
  readonly visibleAt: number;
  readonly pairs: number[];
  readonly bytes: number;
}

interface CarryOp<T> {
  readonly kind: 'carry';
  readonly records: LiveRecord<T>[];
  readonly payloads: Buffer[];
  readonly bytes: number;
}

type Op<T> = AppendOp<T> | AckOp | ReleaseOp | CarryOp<T>;

export interface JournalWriterOptions {
  readonly directory: string;
  readonly durability: Durability;
  readonly segmentBytes: number;
  /** Sequence number of the next segment to create. */
  readonly nextSequence: number;
  /** Spare files found at open, by name. */
  readonly spares: readonly string[];
}

/**
 * A burst up to this size is written with a synchronous call: copying it into the page cache takes
 * microseconds, less than a round trip through libuv's thread pool, and that round trip would add
 * to the latency of every append in the burst. Larger bursts are written off the event loop.
 */
const SYNC_WRITE_BYTES = 64 * 1024;

/**
 * A burst takes queued frames up to this many bytes (or one operation, whatever its size), so that
 * a backlog queued behind a slow disk is written in pieces rather than one huge buffer.
 */
const MAX_BURST_BYTES = 4 * 1024 * 1024;

/** A segment whose live records are at most this fraction of what it held is copied forward. */
const SPARSE_FRACTION = 0.25;

/**
 * With durability `'fsync'`, a burst that grows the segment's file writes this many bytes of
 * zeros after its frames (in the same write, synced by the same `fdatasync`), so that the next
 * bursts overwrite space that is already allocated: a sync that does not change the file's size
 * skips the file system's metadata commit and takes about half as long (ext4).
 */
const PREALLOCATE_BYTES = 1024 * 1024;

/**
 * With durability `'fsync'`, up to this many dead segment files are kept (renamed `spare-*.log`)
 * to serve as later segments, their space allocated already, rather than deleted.
 */
const MAX_SPARES = 2;

/**
 * Writes the journal with group commit: every frame queued while a write (and its sync) is under
 * way goes into the next write, one buffer and one system call for the whole burst, followed by
 * one `fdatasync` when the burst holds appends and durability is `'fsync'`.
 *
 * It also keeps the directory small: it starts a new segment once the current one is full,
 * retires the oldest segments once every record in them is acknowledged and the acknowledgement
 * is on disk, and copies the last few live records of an otherwise dead oldest segment forward
 * (a CARRY frame), so that one record waiting for a retry does not pin every segment after it.
 *
 * With durability `'fsync'`, frames go into space written before (see `PREALLOCATE_BYTES`): a
 * retired segment's file is kept as a spare, up to `MAX_SPARES`, and becomes the next segment
 * (its header rewritten and synced before any frame goes in); a new file is grown by zeros ahead
 * of its frames. Reading tells the frames of a segment from what was there before by their tag
 * (see `journal-format.ts`).
 *
 * Everything runs in one loop, one step at a time; an I/O error stops the journal for good (the
 * storage then rejects every call), since what reached the disk is no longer known.
 */
export class JournalWriter<T> {
  private pending: Op<T>[] = [];
  private pendingBytes = 0;
  private running = false;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];
  private failed: Error | undefined;
  private abandoned = false;

  private head: Segment | undefined;
  private fd: number | undefined;
  /** Where the head's next frame goes. */
  private headBytes = 0;
  /** How much of the head's file exists (frames, then zeros or an earlier life's frames). */
  private headAllocated = 0;
  private headTag = 0;
  private nextSequence: number;
  private readonly spares: string[] = [];

  // Bursts are numbered as they take frames from the queue; frames are written in that order.
  private startedBurst = 0;
  private writtenBurst = 0;
  private syncedBurst = 0;

  constructor(
    private readonly options: JournalWriterOptions,
    private readonly segments: SegmentTable,
    private readonly index: LiveIndex<T>,
  ) {
    this.nextSequence = options.nextSequence;
  }

  /** The error that stopped the journal, if one did. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** Queues records for the next burst; resolves with their ids once they are on disk. */
  append(
    records: LiveRecord<T>[],
    payloads: readonly string[],
    ids: readonly RecordId[],
    payloadBytes: number,
  ): Promise<readonly RecordId[]> {
    if (this.failed) return Promise.reject(this.failed);
    const bytes = payloadBytes + appendFrameBytes(0) * records.length;
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'append', records, payloads, ids, bytes, resolve, reject });
    });
  }

  /** Journals acknowledged records; they count as dead from now on. */
  ack(records: readonly LiveRecord<T>[]): void {
    if (records.length === 0) return;
    const ids = new Array<number>(records.length);
    const segments: Segment[] = [];
    let last: Segment | undefined;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as LiveRecord<T>;
      const segment = this.segments.recordAcked(record.segment);
      // Until the frame is written, the segment must stay (see `collect`).
      if (segment && segment !== last && !segments.includes(segment)) {
        segment.unwrittenAcks++;
        segments.push(segment);
      }
      last = segment;
      ids[i] = record.id;
    }
    const ranges = idRanges(ids);
    this.enqueue({ kind: 'ack', ranges, segments, bytes: ackFrameBytes(ranges.length / 2) });
  }

  /** Journals released records' new attempt counts and when they become visible. */
  release(records: readonly LiveRecord<T>[], visibleAt: number): void {
    if (records.length === 0) return;
    const pairs = new Array<number>(records.length * 2);
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as LiveRecord<T>;
      pairs[2 * i] = record.id;
      pairs[2 * i + 1] = record.attempts;
    }
    this.enqueue({ kind: 'release', visibleAt, pairs, bytes: releaseFrameBytes(records.length) });
  }

  /**
   * Takes the spares found at open (removing those beyond `MAX_SPARES`, or all of them without
   * fsync) and retires segments left dead by an earlier process. Their records were acknowledged
   * in later segments, which that process may not have synced: sync those first.
   */
  async tidyRecovered(): Promise<void> {
    const dir = this.options.directory;
    let changed = false;
    for (const name of this.options.spares) {
      if (this.keepsSpares && this.spares.length < MAX_SPARES) this.spares.push(name);
      else {
        await unlinkIfPresent(path.join(dir, name));
        changed = true;
      }
    }
    const dead: Segment[] = [];
    for (const segment of this.segments.values()) {
      if (segment.live > 0) break;
      dead.push(segment);
    }
    let i = 0;
    for (const segment of this.segments.values()) {
      if (dead.length > 0 && i++ >= dead.length) await syncFile(path.join(dir, segment.name));
    }
    for (const segment of dead) {
      await this.retire(segment);
      changed = true;
    }
    if (changed) await syncDirectory(dir);
  }

  /**
   * Writes everything queued, syncs, retires dead segments (the last one too) and closes. A last
   * segment that keeps live records is cut to its frames: nothing will be written after them.
   */
  async close(): Promise<void> {
    await this.idle();
    if (this.failed || this.abandoned) {
      await this.closeHead().catch(() => undefined);
      return;
    }
    try {
      if (this.writtenBurst > this.syncedBurst) await this.sync();
      await this.collect(true);
      if (this.fd !== undefined && this.headAllocated > this.headBytes) {
        await truncateFd(this.fd, this.headBytes);
      }
      await this.closeHead();
    } catch (error) {
      throw this.fail(error);
    }
  }

  /**
   * Stops as a crash would: what is queued is never written (its appends reject), a write under
   * way is let finish, then the file is closed. Nothing else is written or deleted.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    const error = new StorageError('FileStorage was abandoned without close (a simulated crash)');
    this.rejectPending(error);
    await this.idle();
    await this.closeHead().catch(() => undefined);
  }

  private enqueue(op: Op<T>): void {
    this.pending.push(op);
    this.pendingBytes += op.bytes;
    if (!this.running && !this.scheduled) {
      this.scheduled = true;
      // Let every append of this turn of the event loop join the burst.
      setImmediate(() => void this.run());
    }
  }

  private idle(): Promise<void> {
    if (!this.running && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending.length > 0 && !this.failed && !this.abandoned) {
        await this.burst();
        if (!this.failed && !this.abandoned) await this.collect(false);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private async burst(): Promise<void> {
    const { ops, bytes } = this.takeBurst();
    const burst = ++this.startedBurst;
    try {
      if (
        this.fd === undefined ||
        (this.headBytes > HEADER_BYTES && this.headBytes + bytes > this.options.segmentBytes)
      ) {
        await this.rotate();
      }
      const fd = this.fd as number;
      const head = this.head as Segment;
      const position = this.headBytes;
      const fileEnd = this.preallocatedEnd(position, bytes);
      const buf = Buffer.allocUnsafe(fileEnd - position);
      let used = 0;
      let appends = false;
      for (const op of ops) {
        switch (op.kind) {
          case 'append':
            appends = true;
            used = this.encodeAppend(op, buf, used, position, head);
            break;
          case 'ack':
            used = writeAckFrame(buf, used, this.headTag, op.ranges);
            for (const segment of op.segments) {
              segment.unwrittenAcks--;
              if (burst > segment.deadAfterBurst) segment.deadAfterBurst = burst;
            }
            break;
          case 'release':
            used = writeReleaseFrame(buf, used, this.headTag, op.visibleAt, op.pairs);
            break;
          case 'carry':
            used = this.encodeCarry(op, buf, used, position, head, burst);
            break;
        }
      }
      // Zeros after the frames (a carried record acknowledged meanwhile leaves a gap too).
      const length = position + bytes < fileEnd ? buf.length : used;
      if (length > used) buf.fill(0, used, length);
      try {
        if (length <= SYNC_WRITE_BYTES) writeFullySync(fd, buf, length, position);
        else await writeFully(fd, buf, length, position);
        this.headBytes = position + used;
        if (position + length > this.headAllocated) this.headAllocated = position + length;
        this.writtenBurst = burst;
        if (appends && this.options.durability === 'fsync' && !this.abandoned) await this.sync();
      } catch (error) {
        // Leave no half-written frame, nor records whose append is about to reject, in the file.
        await truncateFd(fd, position).catch(() => undefined);
        throw error;
      }
      if (this.abandoned) throw new StorageError('FileStorage was abandoned without close');
      for (const op of ops) {
        if (op.kind !== 'append') continue;
        this.index.addFresh(op.records);
        op.resolve(op.ids);
      }
    } catch (error) {
      const failure = this.abandoned ? toBufIOError(error) : this.fail(error);
      for (const op of ops) if (op.kind === 'append') op.reject(failure);
    }
  }

  /** Takes the queued frames, up to `MAX_BURST_BYTES` (at least one operation). */
  private takeBurst(): { ops: Op<T>[]; bytes: number } {
    const pending = this.pending;
    if (this.pendingBytes <= MAX_BURST_BYTES || pending.length === 1) {
      const taken = { ops: pending, bytes: this.pendingBytes };
      this.pending = [];
      this.pendingBytes = 0;
      return taken;
    }
    let n = 0;
    let bytes = 0;
    while (
      n < pending.length &&
      (n === 0 || bytes + (pending[n] as Op<T>).bytes <= MAX_BURST_BYTES)
    ) {
      bytes += (pending[n] as Op<T>).bytes;
      n++;
    }
    this.pending = pending.slice(n);
    this.pendingBytes -= bytes;
    return { ops: pending.slice(0, n), bytes };
  }

  private encodeAppend(
    op: AppendOp<T>,
    buf: Buffer,
    at: number,
    position: number,
    head: Segment,
  ): number {
    const { records, payloads } = op;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as LiveRecord<T>;
      const start = writeAppendFrame(
        buf,
        at,
        this.headTag,
        record.id,
        payloads[i] as string,
        record.bytes,
      );
      record.segment = head.sequence;
      record.offset = position + start;
      at = start + record.bytes;
    }
    head.live += records.length;
    head.written += records.length;
    return at;
  }

  private encodeCarry(
    op: CarryOp<T>,
    buf: Buffer,
    at: number,
    position: number,
    head: Segment,
    burst: number,
  ): number {
    for (let i = 0; i < op.records.length; i++) {
      const record = op.records[i] as LiveRecord<T>;
      if (record.acked) continue;
      const start = writeCarryFrame(
        buf,
        at,
        this.headTag,
        record.id,
        record.attempts,
        record.visibleAt,
        op.payloads[i] as Buffer,
        record.bytes,
      );
      this.segments.recordCarried(record.segment, burst);
      record.segment = head.sequence;
      record.offset = position + start;
      head.live++;
      head.written++;
      at = start + record.bytes;
    }
    return at;
  }

  private async sync(): Promise<void> {
    if (this.fd === undefined) return;
    const target = this.writtenBurst;
    await datasync(this.fd);
    if (target > this.syncedBurst) this.syncedBurst = target;
  }

  /** Closes the current segment (on disk first) and starts the next one, in a spare if any. */
  private async rotate(): Promise<void> {
    if (this.fd !== undefined) {
      // Older segments are always on disk: a sync of the current segment then covers everything.
      if (this.writtenBurst > this.syncedBurst) await this.sync();
      await this.closeHead();
    }
    const dir = this.options.directory;
    const sequence = this.nextSequence++;
    const file = path.join(dir, segmentName(sequence));
    const header = segmentHeader(sequence);
    const spare = this.spares.shift();
    let fd: number;
    if (spare === undefined) {
      fd = await openFd(file, 'wx', 0o600);
      this.fd = fd;
      await writeFully(fd, header, HEADER_BYTES, 0);
      this.headAllocated = HEADER_BYTES;
    } else {
      fd = await openFd(path.join(dir, spare), 'r+');
      this.fd = fd;
      this.headAllocated = await this.rewriteSpare(fd, header);
      await fs.promises.rename(path.join(dir, spare), file);
    }
    this.head = this.segments.add(sequence);
    this.headTag = frameTag(sequence);
    this.headBytes = HEADER_BYTES;
    if (this.options.durability === 'fsync') {
      if (spare === undefined) await datasync(fd);
      await syncDirectory(dir);
    }
  }

  /**
   * Makes a spare's old contents unreadable as the new segment before it is named as one: the new
   * header (whose sequence, above all the file's old ones, gives its frames a tag none of the old
   * frames has), and zeros over its last bytes, so that a frame head cut short by the end of the
   * file is never made of old bytes (see `readSegment`). Synced. Returns the file's size.
   */
  private async rewriteSpare(fd: number, header: Buffer): Promise<number> {
    const size = Math.max(await fileSize(fd), HEADER_BYTES);
    await writeFully(fd, header, HEADER_BYTES, 0);
    const tail = Math.max(HEADER_BYTES, size - FRAME_HEAD_BYTES);
    if (size > tail) await writeFully(fd, Buffer.alloc(size - tail), size - tail, tail);
    await datasync(fd);
    return size;
  }

  /**
   * Where the file written by a burst of `bytes` frames at `position` ends: with fsync, a burst
   * that grows the file grows it by `PREALLOCATE_BYTES` of zeros too (up to the segment's size,
   * and keeping the write within `MAX_BURST_BYTES`).
   */
  private preallocatedEnd(position: number, bytes: number): number {
    const end = position + bytes;
    if (!this.keepsSpares || end <= this.headAllocated) return end;
    const limit = Math.min(
      this.options.segmentBytes,
      end + PREALLOCATE_BYTES,
      position + Math.max(bytes, MAX_BURST_BYTES),
    );
    return Math.max(end, limit);
  }

  /** Preallocated space and spares pay only where syncs are waited for. */
  private get keepsSpares(): boolean {
    return this.options.durability === 'fsync';
  }

  /** Removes a dead segment's file, or keeps it as a spare if it is about a segment's size. */
  private async retire(segment: Segment): Promise<void> {
    const dir = this.options.directory;
    const file = path.join(dir, segment.name);
    this.segments.delete(segment.sequence);
    if (this.keepsSpares && this.spares.length < MAX_SPARES) {
      const size = await fs.promises.stat(file).then(
        (stat) => stat.size,
        (error: unknown) => {
          if (isErrno(error, 'ENOENT')) return 0;
          throw error;
        },
      );
      if (size >= this.options.segmentBytes / 2) {
        const spare = spareName(segment.sequence);
        await fs.promises.rename(file, path.join(dir, spare));
        this.spares.push(spare);
        return;
      }
    }
    await unlinkIfPresent(file);
  }

  private async closeHead(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    this.head = undefined;
    if (fd !== undefined) await closeFd(fd);
  }

  /**
   * Retires the oldest segments while they are dead and what made them so is on disk; `final`
   * (at close) includes the current segment. Segments go oldest first only: a later segment holds
   * the acknowledgements of records in earlier ones, so it must outlive them.
   */
  private async collect(final: boolean): Promise<void> {
    const dir = this.options.directory;
    let deleted = false;
    for (const segment of this.segments.values()) {
      const isHead = segment === this.head;
      if (isHead && !final) break;
      if (segment.live > 0) {
        if (!final) await this.maybeCarry(segment);
        break;
      }
      if (segment.unwrittenAcks > 0 || segment.deadAfterBurst > this.writtenBurst) break;
      if (segment.deadAfterBurst > this.syncedBurst) await this.sync();
      if (isHead) await this.closeHead();
      await this.retire(segment);
      deleted = true;
    }
    if (deleted && this.options.durability === 'fsync') await syncDirectory(dir);
  }

  /** Copies the few live records of a mostly dead oldest segment forward, so it can go. */
  private async maybeCarry(segment: Segment): Promise<void> {
    if (segment.carried || segment.live > segment.written * SPARSE_FRACTION) return;
    const records = this.index.stragglers(segment.sequence);
    if (records === undefined) return;
    segment.carried = true;
    if (records.length === 0) return;
    const payloads = await readPayloads(path.join(this.options.directory, segment.name), records);
    let bytes = 0;
    for (const record of records) bytes += carryFrameBytes(record.bytes);
    this.enqueue({ kind: 'carry', records, payloads, bytes });
  }

  private rejectPending(error: Error): void {
    const ops = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const op of ops) if (op.kind === 'append') op.reject(error);
  }

  private fail(error: unknown): Error {
    if (!this.failed) {
      const reason = error instanceof Error ? error.message : String(error);
      this.failed =
        error instanceof BufIOError
          ? error
          : new StorageError(
              `FileStorage journal in "${this.options.directory}" failed and accepts nothing more: ${reason}`,
              { cause: error },
            );
    }
    this.rejectPending(this.failed);
    return this.failed;
  }
}

function toBufIOError(error: unknown): Error {
  return error instanceof BufIOError
    ? error
    : new StorageError('FileStorage was abandoned without close', { cause: error });
}

async function readPayloads(
  file: string,
  records: readonly LiveRecord<unknown>[],
): Promise<Buffer[]> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const payloads: Buffer[] = [];
    for (const record of records) {
      const payload = Buffer.allocUnsafe(record.bytes);
      const { bytesRead } = await handle.read(payload, 0, record.bytes, record.offset);
      if (bytesRead !== record.bytes) {
        throw new StorageError(
          `FileStorage could not read record ${record.id} back from ${path.basename(file)}`,
        );
      }
      payloads.push(payload);
    }
    return payloads;
  } finally {
    await handle.close();
  }
}
