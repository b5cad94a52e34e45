import fs from 'node:fs';
import path from 'node:path';
import type { Durability } from './file-storage-options.js';
import {
  closeFd,
  datasync,
  isErrno,
  syncDirectory,
  truncateFd,
  unlinkIfPresent,
  writeFully,
  writeFullySync,
} from './file-io.js';
import { HEADER_BYTES, encodeHeader, frameTag, segmentName, spareName } from './journal-format.js';
import { FRAME_HEAD_BYTES } from './journal-frames.js';
import { classifyFileError, openSafely, UntrustedFileError } from './safe-files.js';
import type { Segment, SegmentTable } from './segment-table.js';

export interface SegmentFilesOptions {
  readonly directory: string;
  readonly durability: Durability;
  readonly segmentBytes: number;
  readonly directoryId: Buffer;
  /** Sequence number of the next segment to create. */
  readonly nextSequence: number;
  /** The newest segment found at open (0: none), which the next one names as its previous. */
  readonly lastSequence: number;
  /** Spare files found at open, by name. */
  readonly spares: readonly string[];
  /** Every record id issued so far is below this (for new segment headers). */
  readonly idFloor: () => number;
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

/** With durability `'fsync'`, up to this many dead segment files are kept to serve again. */
export const MAX_SPARES = 2;

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
  readonly spares: string[] = [];
  /** A burst is between choosing its position and its write: `writeNow` must wait. */
  busy = false;

  constructor(private readonly options: SegmentFilesOptions) {
    this.nextSequence = options.nextSequence;
    this.lastSequence = options.lastSequence;
  }

  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  /** Preallocated space and spares pay only where syncs are waited for. */
  get keepsSpares(): boolean {
    return this.options.durability === 'fsync';
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
      let opened: { fd: number; allocated: number } | undefined;
      try {
        opened = await this.openSpare(header, name);
        opened ??= await this.createSegment(header, name);
      } catch (error) {
        if (isErrno(error, 'EEXIST') && clash < MAX_NAME_CLASHES) continue;
        throw classifyFileError(error, path.join(dir, name), 'create the journal segment');
      }
      this.fd = opened.fd;
      this.headAllocated = opened.allocated;
      this.head = segments.add(sequence);
      this.headTag = frameTag(sequence, this.options.directoryId);
      this.headBytes = HEADER_BYTES;
      this.lastSequence = sequence;
      if (this.options.durability === 'fsync') await syncDirectory(dir);
      return;
    }
  }

  /** A new file under `name`, its header written (and synced, with fsync). */
  private async createSegment(
    header: Buffer,
    name: string,
  ): Promise<{ fd: number; allocated: number }> {
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
   * The oldest usable spare, renamed to `name`, or undefined. Its old contents are made
   * unreadable as the new segment first: the new header (whose sequence gives its frames a tag
   * none of the old frames has), and zeros over its last bytes, so that a frame head cut short by
   * the end of the file is never made of old bytes. Synced before the rename.
   */
  private async openSpare(
    header: Buffer,
    name: string,
  ): Promise<{ fd: number; allocated: number } | undefined> {
    const dir = this.options.directory;
    for (let spare = this.spares.shift(); spare !== undefined; spare = this.spares.shift()) {
      let opened: { fd: number; size: number };
      try {
        opened = await openSafely(path.join(dir, spare), 'update');
      } catch (error) {
        // Planted or gone since the open: not ours to write into.
        if (error instanceof UntrustedFileError || isErrno(error, 'ENOENT')) continue;
        throw error;
      }
      const { fd } = opened;
      try {
        const size = Math.max(opened.size, HEADER_BYTES);
        await writeFully(fd, header, HEADER_BYTES, 0);
        const tail = Math.max(HEADER_BYTES, size - FRAME_HEAD_BYTES);
        if (size > tail) await writeFully(fd, Buffer.alloc(size - tail), size - tail, tail);
        await datasync(fd);
        await fs.promises.rename(path.join(dir, spare), path.join(dir, name));
        return { fd, allocated: size };
      } catch (error) {
        await closeFd(fd).catch(() => undefined);
        throw error;
      }
    }
    return undefined;
  }

  /**
   * Where a write of `bytes` frames at `position` should end: with fsync, one that grows the file
   * grows it by `PREALLOCATE_BYTES` of zeros too (up to the segment's size, and within `limit`).
   */
  preallocatedEnd(position: number, bytes: number, limit: number): number {
    const end = position + bytes;
    if (!this.keepsSpares || end <= this.headAllocated) return end;
    return Math.max(
      end,
      Math.min(
        this.options.segmentBytes,
        end + PREALLOCATE_BYTES,
        position + Math.max(bytes, limit),
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
    if (position + length > this.headAllocated) this.headAllocated = position + length;
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
    if (this.headBytes > this.headAllocated) this.headAllocated = this.headBytes;
    return true;
  }

  /** Cuts the head back to `position`, undoing a write that failed or whose sync did. */
  async cutBack(position: number): Promise<void> {
    if (this.fd === undefined) return;
    await truncateFd(this.fd, position);
    this.headBytes = position;
    this.headAllocated = position;
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
      this.headAllocated = this.headBytes;
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
    for (const copy of segment.copies) await unlinkIfPresent(path.join(dir, copy));
    if (this.keepsSpares && !segment.legacy && this.spares.length < MAX_SPARES) {
      const size = await fs.promises.lstat(file).then(
        (stat) => (stat.isFile() ? stat.size : 0),
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

  /** Takes the spares found at open: up to `MAX_SPARES` with fsync; the others are removed. */
  async adoptSpares(): Promise<boolean> {
    let removed = false;
    for (const name of this.options.spares) {
      if (this.keepsSpares && this.spares.length < MAX_SPARES) this.spares.push(name);
      else {
        await unlinkIfPresent(path.join(this.options.directory, name));
        removed = true;
      }
    }
    return removed;
  }

  private get headFile(): string {
    return path.join(this.options.directory, this.head?.name ?? '');
  }
}
