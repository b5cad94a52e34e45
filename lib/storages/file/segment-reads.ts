import fs from 'node:fs';
import path from 'node:path';
import { StorageError } from '../../core/errors.js';
import { closeFd } from './file-io.js';
import type { SegmentKind } from './journal-format.js';
import {
  FRAME_HEAD_BYTES,
  checkedFrameEnd,
  replayFrame,
  type FrameVisitor,
} from './journal-frames.js';
import { classifyFileError, openSafely } from './safe-files.js';
import { nextFrame } from './segment-reader.js';
import type { Segment } from './segment-table.js';

/** Descriptors kept open for reading: the fresh records' run and a few retry groups. */
const MAX_OPEN = 8;

/**
 * Reads segment files back at run time, for records that wait on disk only: each read is one
 * positioned `read` on a descriptor kept open for the segment (opened as every journal file is,
 * see `safe-files.ts`), separate from the writer's. A segment is forgotten before its file is
 * removed or reused as a spare.
 */
export class SegmentReads {
  private readonly fds = new Map<number, Promise<number>>();

  constructor(private readonly directory: string) {}

  /**
   * Up to `length` bytes of `segment` from `offset` (fewer at the end of the file): in `into`
   * when it is large enough (the caller's buffer, reused from read to read), else in a new one.
   */
  async read(segment: Segment, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const file = path.join(this.directory, segment.name);
    try {
      const fd = await this.descriptor(segment.sequence, file);
      const buf = into !== undefined && into.length >= length ? into : Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = await new Promise<number>((resolve, reject) => {
          fs.read(fd, buf, done, length - done, offset + done, (error, read) =>
            error ? reject(error) : resolve(read),
          );
        });
        if (n === 0) break;
        done += n;
      }
      return done === buf.length ? buf : buf.subarray(0, done);
    } catch (error) {
      throw classifyFileError(error, file, 'read records back from');
    }
  }

  /** Closes the descriptor of a segment that is about to be removed or reused. */
  async forget(sequence: number): Promise<void> {
    const fd = this.fds.get(sequence);
    if (fd === undefined) return;
    this.fds.delete(sequence);
    await fd.then(closeFd, () => undefined).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const sequence of [...this.fds.keys()]) await this.forget(sequence);
  }

  private descriptor(sequence: number, file: string): Promise<number> {
    let fd = this.fds.get(sequence);
    if (fd === undefined) {
      if (this.fds.size >= MAX_OPEN) void this.forget(this.fds.keys().next().value as number);
      fd = openSafely(file, 'read').then((opened) => opened.fd);
      fd.catch(() => this.fds.delete(sequence));
      this.fds.set(sequence, fd);
    }
    return fd;
  }
}

/** How far `walkFrames` got through a buffer. */
export interface FrameWalk {
  /** Where the first frame not walked starts: the end of the data, a frame cut short, damage. */
  readonly next: number;
  /** The bytes at `next` are not a trusted frame (rather than a frame cut short by the end). */
  readonly damaged: boolean;
}

/**
 * Visits the frames of `data` (bytes of a segment) from `from` on, in order, while `more()` says
 * so; stops before a frame cut short by the end of `data` or at bytes that are not a frame. The
 * visitor's offsets are within `data`.
 *
 * Frames read back while running are checked as at open, checksum included: bytes damaged on disk
 * after the journal was opened (or after this process wrote them) stop the walk, rather than reach
 * a worker as a record that still happens to deserialize. The caller sets them aside.
 */
export function walkFrames(
  data: Buffer,
  kind: SegmentKind,
  visitor: FrameVisitor,
  more: () => boolean,
  from = 0,
): FrameWalk {
  let at = from;
  while (at < data.length && more()) {
    if (data.length - at < FRAME_HEAD_BYTES) return { next: at, damaged: false };
    const end = checkedFrameEnd(data, at, kind);
    if (end < 0) {
      const claimed = at + FRAME_HEAD_BYTES + data.readUInt32LE(at);
      const cutShort = data.readUInt32LE(at + 4) === kind.tag && claimed > data.length;
      return { next: at, damaged: !cutShort };
    }
    if (!replayFrame(data, at, end, kind, visitor)) return { next: at, damaged: true };
    at = end;
  }
  return { next: at, damaged: false };
}

/** The length of the frame at the start of `data`, as its head says (to read it whole). */
export function claimedFrameBytes(data: Buffer): number {
  return data.length < FRAME_HEAD_BYTES
    ? FRAME_HEAD_BYTES
    : FRAME_HEAD_BYTES + data.readUInt32LE(0);
}

/**
 * Where the damaged bytes at `at` of `data` end: at the next trusted frame, else at the end of
 * `data`.
 */
export function damageEnd(data: Buffer, at: number, kind: SegmentKind): number {
  const next = nextFrame(data, at + 1, kind);
  return next < 0 ? data.length : next;
}

/**
 * The error for bytes that should hold records and do not; `kept` says where they were copied
 * (see `Quarantine.keep`).
 */
export function unreadableBytes(
  segment: string,
  offset: number,
  what: string,
  kept?: string,
): StorageError {
  const where = kept === undefined ? '' : `; they are kept in ${kept}`;
  return new StorageError(
    `FileStorage could not read ${what} back from ${segment} at offset ${offset}: the bytes there are damaged (changed after they were written or checked)${where}`,
  );
}
