import path from 'node:path';
import type { Durability } from './file-storage-options.js';
import {
  closeFd,
  datasync,
  isErrno,
  sizeOf,
  syncDirectory,
  truncateFd,
  unlinkIfPresent,
  writeFully,
  writeFullySync,
} from './file-io.js';
import {
  HEADER_BYTES,
  currentKind,
  encodeHeader,
  frameTag,
  segmentName,
} from './journal-format.js';
import { classifyFileError, openSafely } from './safe-files.js';
import type { Segment, SegmentTable } from './segment-table.js';
import { MAX_SPARES, SpareFiles } from './spare-files.js';

export interface SegmentFilesOptions {
  readonly directory: string;
  readonly durability: Durability;
  readonly segmentBytes: number;
  readonly directoryId: Buffer;
  /** Sequence number of the next segment to create. */
  readonly nextSequence: number;
  /** The newest segment found at open (0: none), which the next one names as its previous. */
  readonly lastSequence: number;
  /** Every record id issued so far is below this (for new segment headers). */
  readonly idFloor: () => number;
  /** Bound on the bytes of the journal's files (`maxJournalBytes`), if any. */
  readonly maxBytes: number | undefined;
}

/**
 * With durability `'fsync'`, a write that grows the segment's file writes this many bytes of
 * zeros after its frames (in the same write, synced by the same `fdatasync`), so that the next
 * bursts overwrite space that is already allocated: a sync that does not change the file's size
 * skips the file system's metadata commit and takes about half as long (ext4).
 */
const PREALLOCATE_BYTES = 1024 * 1024;

/** A write of up to this size is made with a blocking call (cheaper than a thread-pool trip). */
const SYNC_WRITE_BYTES = 64 * 1024;

/** How many sequence numbers a rotation skips past names planted in its way before it gives up. */
const MAX_NAME_CLASHES = 8;

/**
 * Where the journal's bytes land: the head segment's file (its descriptor, how far its frames
 * go, how much of it exists), new segments (a new file, or a spare renamed to serve again, its
 * header rewritten and synced first), zeros written ahead, and retired segments (removed, or kept
 * as spares). `JournalWriter` decides what to write and when.
 *
 * Files are created with O_EXCL and opened without following links (`safe-files.ts`); a rename
 * acts on names, so a link planted under a target name is replaced, and its target untouched.
 */
export class SegmentFiles {
  head: Segment | undefined;
  private fd: number | undefined;
  /** Where the head's next frame goes. */
  headBytes = 0;
  /** How much of the head's file exists (frames, then zeros or an earlier life's frames). */
  private headAllocated = 0;
  headTag = 0;
  private nextSequence: number;
  private lastSequence: number;
  readonly spares: SpareFiles;
  /** Bytes of the segments' files (and their copies), as allocated on disk. */
  private allocated = 0;
  /** A burst is between choosing its position and its write: `writeNow` must wait. */
  busy = false;

  constructor(private readonly options: SegmentFilesOptions) {
    this.nextSequence = options.nextSequence;
    this.lastSequence = options.lastSequence;
    this.spares = new SpareFiles(options.directory, options.durability === 'fsync');
  }

  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  /** Bytes of the journal's files (segments, their copies, spares), as allocated on disk. */
  get journalBytes(): number {
    return this.allocated + this.spares.bytes;
  }

  /**
   * Bytes of the journal's files that frames take: the segments' files, less the zeros written
   * ahead in the head (spares and zeros are filled before a file grows).
   */
  get usedBytes(): number {
    return this.allocated - (this.head === undefined ? 0 : this.headAllocated - this.headBytes);
  }

  /** Measures the files found at open: the segments kept and the spares. */
  async measure(segments: SegmentTable): Promise<void> {
    const dir = this.options.directory;
    this.allocated = 0;
    for (const segment of segments.values()) {
      segment.fileBytes = 0;
      for (const name of [segment.name, ...segment.copies]) {
        segment.fileBytes += await sizeOf(path.join(dir, name));
      }
      this.allocated += segment.fileBytes;
    }
    await this.spares.measure();
  }

  /** Whether `bytes` more need a new segment first. */
  needsRotation(bytes: number): boolean {
    return (
      this.fd === undefined ||
      (this.headBytes > HEADER_BYTES && this.headBytes + bytes > this.options.segmentBytes)
    );
  }

  /** Closes the current segment and starts the next one, in a spare if any. */
  async rotate(segments: SegmentTable): Promise<void> {
    await this.closeHead();
    const dir = this.options.directory;
    for (let clash = 0; ; clash++) {
      const sequence = this.nextSequence++;
      const name = segmentName(sequence);
      const header = encodeHeader({
        sequence,
        directoryId: this.options.directoryId,
        previous: this.lastSequence,
        idFloor: this.options.idFloor(),
      });
      let opened: OpenedSegment | undefined;
      try {
        opened = await this.spares.reuse(header, name);
        opened ??= await this.createSegment(header, name);
      } catch (error) {
        if (isErrno(error, 'EEXIST') && clash < MAX_NAME_CLASHES) continue;
        throw classifyFileError(error, path.join(dir, name), 'create the journal segment');
      }
      this.fd = opened.fd;
      this.headAllocated = opened.allocated;
      this.head = segments.add(sequence, currentKind(sequence, this.options.directoryId));
      this.head.fileBytes = opened.allocated;
      this.allocated += opened.allocated;
      this.headTag = frameTag(sequence, this.options.directoryId);
      this.headBytes = HEADER_BYTES;
      this.lastSequence = sequence;
      await this.dropSpares();
      if (this.options.durability === 'fsync') await syncDirectory(dir);
      return;
    }
  }

  /** A new file under `name`, its header written (and synced, with fsync). */
  private async createSegment(header: Buffer, name: string): Promise<OpenedSegment> {
    const file = path.join(this.options.directory, name);
    const { fd } = await openSafely(file, 'create');
    try {
      await writeFully(fd, header, HEADER_BYTES, 0);
      if (this.options.durability === 'fsync') await datasync(fd);
    } catch (error) {
      await closeFd(fd).catch(() => undefined);
      await unlinkIfPresent(file);
      throw error;
    }
    return { fd, allocated: HEADER_BYTES };
  }

  /**
   * Where a write of `bytes` frames at `position` should end: with fsync, one that grows the file
   * grows it by `PREALLOCATE_BYTES` of zeros too (up to the segment's size, and within `limit`).
   */
  preallocatedEnd(position: number, bytes: number, limit: number): number {
    const end = position + bytes;
    if (!this.spares.keeps || end <= this.headAllocated) return end;
    // Zeros ahead stay within the budget: they are disk taken before any frame needs it.
    const room = (this.options.maxBytes ?? Infinity) - this.journalBytes + this.headAllocated;
    return Math.max(
      end,
      Math.min(
        this.options.segmentBytes,
        end + PREALLOCATE_BYTES,
        position + Math.max(bytes, limit),
        room,
      ),
    );
  }

  /**
   * Writes `buf[0, length)` at `position` of the head, of which `used` bytes are frames (the rest
   * zeros ahead). A write the disk has no room for is tried again without the zeros. On failure
   * the file is cut back to `position` (no half-written frame stays) and the error is thrown,
   * typed (`StorageFullError`, `StorageAccessError`) where it can be.
   */
  async write(buf: Buffer, length: number, used: number, position: number): Promise<void> {
    const fd = this.fd as number;
    try {
      try {
        await this.writeAt(fd, buf, length, position);
      } catch (error) {
        if (!(isErrno(error, 'ENOSPC') || isErrno(error, 'EDQUOT')) || length === used) throw error;
        // The zeros written so far took the space: give it back, then the frames alone.
        await this.cutBack(position);
        await this.writeAt(fd, buf, used, position);
        length = used;
      }
    } catch (error) {
      await this.cutBack(position);
      throw classifyFileError(error, this.headFile, 'write to');
    }
    this.headBytes = position + used;
    this.grow(position + length);
    await this.dropSpares();
  }

  /**
   * With a budget, spares are kept only while the journal's files fit in it: once frames grow
   * the head past it, the spares go (the frames themselves were admitted within the budget).
   */
  private async dropSpares(): Promise<void> {
    const max = this.options.maxBytes;
    while (max !== undefined && this.journalBytes > max && this.spares.count > 0) {
      await this.spares.drop();
    }
  }

  /** The head's file now reaches `end`. */
  private grow(end: number): void {
    if (end <= this.headAllocated) return;
    this.allocated += end - this.headAllocated;
    this.headAllocated = end;
    if (this.head) this.head.fileBytes = end;
  }

  /** The head's file was cut to `end`. */
  private shrink(end: number): void {
    this.allocated -= this.headAllocated - end;
    this.headAllocated = end;
    if (this.head) this.head.fileBytes = end;
  }

  private async writeAt(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
    if (length <= SYNC_WRITE_BYTES) writeFullySync(fd, buf, length, position);
    else await writeFully(fd, buf, length, position);
  }

  /**
   * Writes a small frame at once, after the head's frames, if no burst is being placed and it
   * fits in the head segment: `encode` writes it into the buffer given, with the head's tag, and
   * returns its end. Returns false when it cannot, and the caller queues it instead.
   *
   * @throws the typed error of a failed write; the head is left as it was.
   */
  writeNow(bytes: number, encode: (buf: Buffer, tag: number) => number): boolean {
    if (this.busy || this.fd === undefined || this.headBytes + bytes > this.options.segmentBytes) {
      return false;
    }
    const buf = Buffer.allocUnsafe(bytes);
    const used = encode(buf, this.headTag);
    try {
      writeFullySync(this.fd, buf, used, this.headBytes);
    } catch (error) {
      throw classifyFileError(error, this.headFile, 'write to');
    }
    this.headBytes += used;
    this.grow(this.headBytes);
    return true;
  }

  /** Cuts the head back to `position`, undoing a write that failed or whose sync did. */
  async cutBack(position: number): Promise<void> {
    if (this.fd === undefined) return;
    await truncateFd(this.fd, position);
    this.headBytes = position;
    this.shrink(position);
  }

  async sync(): Promise<void> {
    if (this.fd === undefined) return;
    try {
      await datasync(this.fd);
    } catch (error) {
      throw classifyFileError(error, this.headFile, 'sync');
    }
  }

  /** Cuts the zeros written ahead off the head: nothing will be written after its frames. */
  async trimHead(): Promise<void> {
    if (this.fd !== undefined && this.headAllocated > this.headBytes) {
      await truncateFd(this.fd, this.headBytes);
      this.shrink(this.headBytes);
    }
  }

  async closeHead(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    this.head = undefined;
    if (fd !== undefined) await closeFd(fd);
  }

  /** Removes a dead segment's file (and copies), or keeps it as a spare if it is big enough. */
  async retire(segment: Segment, segments: SegmentTable): Promise<void> {
    const dir = this.options.directory;
    const file = path.join(dir, segment.name);
    segments.delete(segment.sequence);
    if (segment === this.head) await this.closeHead();
    // Counted gone now: a failure below leaves files behind, not bytes the budget never frees.
    this.allocated -= segment.fileBytes;
    for (const copy of segment.copies) await unlinkIfPresent(path.join(dir, copy));
    if (this.spares.keeps && !segment.legacy && this.spares.count < MAX_SPARES) {
      const size = await sizeOf(file);
      if (size >= this.options.segmentBytes / 2)
        return this.spares.keep(file, segment.sequence, size);
    }
    await unlinkIfPresent(file);
  }

  private get headFile(): string {
    return path.join(this.options.directory, this.head?.name ?? '');
  }
}

/** A segment file opened to be the head, and how much of it exists. */
interface OpenedSegment {
  readonly fd: number;
  readonly allocated: number;
}
