import { asError, BufIOError, StorageError } from '../../core/errors.js';
import type { RecordId } from '../../core/storage.js';
import { syncDirectory } from './file-io.js';
import {
  ackFrameBytes,
  appendFrameBytes,
  idRanges,
  leaseFrameBytes,
  writeLeaseFrame,
} from './journal-frames.js';
import { applyWritten, carryOp, encodeOp, OpQueue, releaseOp, type Op } from './journal-ops.js';
import type { LiveIndex } from './live-index.js';
import type { LiveRecord } from './live-record.js';
import type { RetryGroup } from './retry-groups.js';
import { isRefusal } from './safe-files.js';
import type { SegmentFiles } from './segment-files.js';
import type { SegmentReads } from './segment-reads.js';
import type { Segment, SegmentTable } from './segment-table.js';

/**
 * A burst takes queued frames up to this many bytes (or one operation, whatever its size), so that
 * a backlog queued behind a slow disk is written in pieces rather than one huge buffer.
 */
const MAX_BURST_BYTES = 4 * 1024 * 1024;

/** A segment whose live records are at most this fraction of what it held is emptied forward. */
const SPARSE_FRACTION = 0.25;

/** After the disk refused a burst, what is still queued (acks, releases) is tried again so soon. */
const REFUSAL_RETRY_MS = 100;

/** What the writer asks of the rest of the storage. */
export interface JournalWriterHooks {
  /** Readers of segment files, told before a segment's file is removed or reused. */
  readonly reads: SegmentReads;
  /** Reads a retry group's records back into memory (see `RecordReader`). */
  loadGroup(group: RetryGroup): Promise<void>;
  /** Segments were retired: there may be room for appends again. */
  onRetired(): void;
}

/**
 * Decides what the journal writes and when, with group commit: every frame queued while a write
 * (and its sync) is under way goes into the next write, one buffer and one system call for the
 * whole burst, followed by one `fdatasync` when the burst holds appends and durability is
 * `'fsync'`. `SegmentFiles` decides where the bytes land.
 *
 * A record released for a retry stays where it is: a RELEASE frame gives its new attempt count
 * and retry time. The writer retires the oldest segments once every record in them is
 * acknowledged (or copied forward) and what made them so is on disk, and copies the last few retry
 * groups of an otherwise dead oldest segment forward (CARRY frames), so that one long retry does
 * not pin every segment after it.
 *
 * A burst the disk refuses (full, or access refused: `StorageFullError`, `StorageAccessError`) is
 * cut back off the file: its appends and leases reject, its acknowledgements and releases stay
 * queued, and the journal goes on; the next burst tries again. Any other I/O error stops the
 * journal for good (the storage then rejects every call), since what reached the disk is no
 * longer known.
 */
export class JournalWriter {
  private readonly pending = new OpQueue();
  private running = false;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private failed: Error | undefined;
  private abandoned = false;

  // Bursts are numbered as they take frames from the queue; frames are written in that order.
  private startedBurst = 0;
  private writtenBurst = 0;
  private syncedBurst = 0;

  private buffer = Buffer.alloc(0);

  /** Bytes of the appends queued and not written yet, for the journal's budget. */
  queuedAppendBytes = 0;

  constructor(
    private readonly directory: string,
    private readonly fsync: boolean,
    private readonly files: SegmentFiles,
    private readonly segments: SegmentTable,
    private readonly index: LiveIndex,
    private readonly hooks: JournalWriterHooks,
  ) {}

  /** The error that stopped the journal, if one did. */
  get failure(): Error | undefined {
    return this.failed;
  }

  /** Queues records for the next burst; resolves with their ids once they are on disk. */
  append(
    records: LiveRecord[],
    ids: readonly RecordId[],
    payloadBytes: number,
  ): Promise<readonly RecordId[]> {
    if (this.failed) return Promise.reject(this.failed);
    const bytes = payloadBytes + appendFrameBytes(0) * records.length;
    this.queuedAppendBytes += bytes;
    return new Promise<readonly RecordId[]>((resolve, reject) => {
      this.enqueue({
        kind: 'append',
        records,
        ids,
        bytes,
        resolve: (written) => {
          this.queuedAppendBytes -= bytes;
          resolve(written);
        },
        reject: (error) => {
          this.queuedAppendBytes -= bytes;
          reject(error);
        },
      });
    });
  }

  /** Journals acknowledged (or set aside) records; they count as dead from now on. */
  ack(records: readonly LiveRecord[]): void {
    if (records.length === 0) return;
    const ids = new Array<number>(records.length);
    const segments = new Map<Segment, number>();
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      // Until the frame is written, the segment must stay (see `collect`).
      const segment = this.segments.ackQueued(record.segment);
      if (segment) segments.set(segment, (segments.get(segment) ?? 0) + 1);
      ids[i] = record.id;
    }
    const ranges = idRanges(ids);
    this.enqueue({ kind: 'ack', ranges, segments, bytes: ackFrameBytes(ranges.length / 2) });
  }

  /**
   * Journals a group released for a retry: its records' new attempt counts and retry time, in a
   * RELEASE frame (the records stay where they are), without waiting for a sync (a crash before
   * it at worst delivers them again early).
   */
  release(group: RetryGroup): void {
    this.enqueue(releaseOp(group));
  }

  /**
   * Journals a lease mark: (first id, count, deliveries) triples. Written at once when the head
   * segment is free (returns true: the frame is in the kernel's hands), else with the next burst
   * (returns a promise of that). A crash after either cannot lose it; a power loss can, unless a
   * later sync covered it.
   *
   * @throws the typed error of a refused write; nothing was written.
   */
  lease(triples: number[]): true | Promise<void> {
    if (this.failed) throw this.failed;
    if (this.abandoned) throw abandonedError();
    const bytes = leaseFrameBytes(triples.length / 3);
    if (this.files.writeNow(bytes, (buf, tag) => writeLeaseFrame(buf, 0, tag, triples))) {
      return true;
    }
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'lease', triples, bytes, resolve, reject });
    });
  }

  /**
   * Writes everything queued, syncs, retires dead segments (the last one too) and closes. A last
   * segment that keeps live records is cut to its frames: nothing will be written after them.
   */
  async close(): Promise<void> {
    clearTimeout(this.retryTimer);
    await this.idle();
    // Writes the disk refused get one more try.
    if (this.pending.length > 0 && !this.failed && !this.abandoned) await this.run();
    if (this.failed || this.abandoned || this.pending.length > 0) {
      await this.files.closeHead().catch(() => undefined);
      if (this.failed) return;
      if (this.pending.length > 0) {
        throw new StorageError(
          `FileStorage in "${this.directory}" closed with ${this.pending.length} journal write(s) the disk refused; they are lost (records may be delivered again)`,
        );
      }
      return;
    }
    try {
      if (this.writtenBurst > this.syncedBurst) await this.sync();
      await this.collect(true);
      await this.files.trimHead();
      await this.files.closeHead();
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
    clearTimeout(this.retryTimer);
    this.pending.rejectAll(abandonedError());
    await this.idle();
    await this.files.closeHead().catch(() => undefined);
  }

  private enqueue(op: Op): void {
    this.pending.push(op);
    this.schedule();
  }

  private schedule(): void {
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
      let refused = false;
      while (this.pending.length > 0 && !this.failed && !this.abandoned && !refused) {
        refused = !(await this.burst());
        if (!refused && !this.failed && !this.abandoned) await this.collect(false);
      }
      if (refused && this.pending.length > 0 && !this.failed && !this.abandoned) {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.schedule(), REFUSAL_RETRY_MS);
        this.retryTimer.unref();
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
      // Appends queued while the disk refused the burst get their answer now, not after a delay.
      if (this.pending.hasWaiters()) this.schedule();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Writes one burst; false when the disk refused it (see the class comment). */
  private async burst(): Promise<boolean> {
    const { ops, bytes } = this.pending.take(MAX_BURST_BYTES);
    const burst = ++this.startedBurst;
    const files = this.files;
    let position = -1;
    files.busy = true;
    try {
      if (files.needsRotation(bytes)) {
        // Older segments are always on disk: a sync of the current one covers everything.
        if (files.isOpen && this.writtenBurst > this.syncedBurst) await this.sync();
        await files.rotate(this.segments);
      }
      position = files.headBytes;
      const fileEnd = files.preallocatedEnd(position, bytes, MAX_BURST_BYTES);
      const buf = this.burstBuffer(fileEnd - position);
      const placed: number[] = [];
      let used = 0;
      let appends = false;
      for (const op of ops) {
        if (op.kind === 'append') appends = true;
        used = encodeOp(op, buf, used, position, files.headTag, placed);
      }
      // Zeros after the frames (a carried record acknowledged meanwhile leaves a gap too).
      const length = position + bytes < fileEnd ? buf.length : used;
      if (length > used) buf.fill(0, used, length);
      await files.write(buf, length, used, position);
      files.busy = false;
      this.writtenBurst = burst;
      for (const op of ops) if (op.kind === 'lease') op.resolve();
      if (appends && this.fsync && !this.abandoned) {
        try {
          await this.sync();
        } catch (error) {
          await files.cutBack(position);
          throw error;
        }
      }
      if (this.abandoned) throw abandonedError();
      applyWritten(
        ops,
        burst,
        placed,
        position + used,
        this.files.head as Segment,
        this.segments,
        this.index,
      );
      return true;
    } catch (error) {
      files.busy = false;
      if (isRefusal(error) && !this.abandoned) {
        this.pending.requeue(ops, error as Error);
        return false;
      }
      const failure = this.abandoned ? toBufIOError(error) : this.fail(error);
      for (const op of ops) if (op.kind === 'append' || op.kind === 'lease') op.reject(failure);
      return true;
    }
  }

  /**
   * The buffer bursts are encoded in, reused from burst to burst (one is written at a time):
   * allocating megabytes per burst made the allocator hold on to memory the process no longer
   * used.
   */
  private burstBuffer(bytes: number): Buffer {
    if (this.buffer.length < bytes) this.buffer = Buffer.allocUnsafe(Math.max(bytes, 64 * 1024));
    return this.buffer.subarray(0, bytes);
  }

  private async sync(): Promise<void> {
    const target = this.writtenBurst;
    await this.files.sync();
    if (target > this.syncedBurst) this.syncedBurst = target;
  }

  /**
   * Retires the oldest segments while they are dead and what made them so is on disk; `final`
   * (at close) includes the current segment. Segments go oldest first only: a later segment holds
   * the acknowledgements of records in earlier ones, so it must outlive them.
   */
  private async collect(final: boolean): Promise<void> {
    let retired = false;
    for (const segment of this.segments.values()) {
      const isHead = segment === this.files.head;
      if (isHead && !final) break;
      if (segment.live > 0) {
        if (!final) await this.maybeCarry(segment);
        break;
      }
      if (segment.unwrittenAcks > 0 || segment.deadAfterBurst > this.writtenBurst) break;
      if (segment.deadAfterBurst > this.syncedBurst) await this.sync();
      await this.hooks.reads.forget(segment.sequence);
      await this.files.retire(segment, this.segments);
      retired = true;
    }
    if (retired && this.fsync) await syncDirectory(this.directory);
    if (retired) this.hooks.onRetired();
  }

  /**
   * Copies the retry groups left in a mostly dead oldest segment forward, so it can go. Not while
   * fresh records are there: they are about to be read, and a backlog is not worth copying.
   */
  private async maybeCarry(segment: Segment): Promise<void> {
    if (segment.carried || segment.live > segment.written * SPARSE_FRACTION) return;
    if (this.index.fresh.oldestSegment() <= segment.sequence) return;
    segment.carried = true;
    for (const group of this.index.retries.inSegment(segment.sequence)) {
      if (group.records === undefined) await this.hooks.loadGroup(group);
      // Taken meanwhile: its records are leased or on their way out of the segment anyway.
      if (group.records === undefined || group.next !== 0 || group.place === undefined) continue;
      this.index.retries.moving(group);
      this.enqueue(carryOp(group.records, group));
    }
  }

  private fail(error: unknown): Error {
    if (!this.failed) {
      const reason = asError(error).message;
      this.failed =
        error instanceof BufIOError
          ? error
          : new StorageError(
              `FileStorage journal in "${this.directory}" failed and accepts nothing more: ${reason}`,
              { cause: error },
            );
    }
    this.pending.rejectAll(this.failed);
    return this.failed;
  }
}

function abandonedError(): StorageError {
  return new StorageError('FileStorage was abandoned without close (a simulated crash)');
}

function toBufIOError(error: unknown): Error {
  return error instanceof BufIOError
    ? error
    : new StorageError('FileStorage was abandoned without close', { cause: error });
}
