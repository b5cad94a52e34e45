import { crc32 } from './crc32.js';

/*
 * The on-disk format of a FileStorage journal, version 2.
 *
 * A journal is a directory of segment files, `journal-<sequence>.log`, written in sequence order
 * (sequences only grow, within a directory, across processes). Each segment starts with a 16-byte
 * header, then frames:
 *
 *   header  "BUFIOJ", u8 version (2), u8 0, u64 LE the segment's sequence
 *
 *   u32 LE  body length
 *   u32 LE  tag: the segment's sequence, folded to 32 bits, never 0 (`frameTag`)
 *   u32 LE  CRC-32 of the length, the tag and the body
 *   body    u8 frame type, then the type's fields (little-endian; ids and times as f64)
 *
 *   APPEND   id, payload                           a record as appended
 *   CARRY    id, attempts u32, visibleAt, payload  a live record copied from an older segment
 *   ACK      count u32, count x (first id, n u32)  ranges of acknowledged ids
 *   RELEASE  visibleAt, count u32, count x (id, attempts u32)
 *
 * Replaying the frames in order rebuilds the live records.
 *
 * Segment files are written into space that is already there: zeros written ahead of the frames
 * (so that the sync after an append need not grow the file), or a dead segment's file renamed to
 * serve again (`spare-<sequence>.log` in between), with its old frames still in it. So what
 * follows a segment's last frame is zeros or frames of the file's earlier lives, and neither
 * carries this segment's tag: the first frame without the tag is where the segment ends, not
 * damage. Unless a frame that does carry the tag follows it (something in the middle was lost or
 * overwritten), or its checksum matches with this segment's tag in place of its own (a frame of
 * this segment whose tag was damaged): that is damage.
 *
 * A frame that carries the tag but cannot be trusted is damage too (`CutReason`). Writes tear at
 * page boundaries, so a frame whose checksum fails, that crosses a 4 KiB boundary and is the last
 * of its segment is reported as `'incomplete'` (a write torn by a crash), as one that runs past
 * the end of the file is.
 */

const MAGIC = Buffer.from('BUFIOJ', 'latin1');
/** The format version this code reads and writes; journals of other versions are refused. */
export const FORMAT_VERSION = 2;
/** Magic, version and sequence at the start of every segment. */
export const HEADER_BYTES = 16;
/** Length, tag and checksum in front of every frame body. */
export const FRAME_HEAD_BYTES = 12;

/** Writes tear at page boundaries; 4 KiB divides every page size Linux and macOS use. */
const PAGE_BYTES = 4096;

export const FRAME_APPEND = 1;
export const FRAME_CARRY = 2;
export const FRAME_ACK = 3;
export const FRAME_RELEASE = 4;

const APPEND_FIELDS = 1 + 8;
const CARRY_FIELDS = 1 + 8 + 4 + 8;
const ACK_FIELDS = 1 + 4;
const RELEASE_FIELDS = 1 + 8 + 4;
const ENTRY_BYTES = 8 + 4;

const SEGMENT_PATTERN = /^journal-(\d+)\.log$/;
const SPARE_PATTERN = /^spare-(\d+)\.log$/;

export function segmentName(sequence: number): string {
  return `journal-${String(sequence).padStart(12, '0')}.log`;
}

/** The sequence number of a segment file, or undefined for a file that is not one. */
export function parseSegmentName(name: string): number | undefined {
  return parseSequence(SEGMENT_PATTERN, name);
}

/** A spare file is named after the last segment it was, so sequences stay above its frames'. */
export function spareName(sequence: number): string {
  return `spare-${String(sequence).padStart(12, '0')}.log`;
}

/** The sequence a spare file last served as, or undefined for a file that is not a spare. */
export function parseSpareName(name: string): number | undefined {
  return parseSequence(SPARE_PATTERN, name);
}

function parseSequence(pattern: RegExp, name: string): number | undefined {
  const match = pattern.exec(name);
  if (!match) return undefined;
  const sequence = Number(match[1]);
  return Number.isSafeInteger(sequence) ? sequence : undefined;
}

/** The header of segment `sequence`. */
export function segmentHeader(sequence: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header[MAGIC.length] = FORMAT_VERSION;
  header.writeUInt32LE(sequence % 2 ** 32, 8);
  header.writeUInt32LE(Math.floor(sequence / 2 ** 32), 12);
  return header;
}

/**
 * The format version of a file that starts like a journal segment, or undefined for one that
 * does not (too short, or another magic).
 */
export function headerVersion(data: Uint8Array): number | undefined {
  if (data.length < MAGIC.length + 2) return undefined;
  for (let i = 0; i < MAGIC.length; i++) if (data[i] !== MAGIC[i]) return undefined;
  return data[MAGIC.length];
}

/**
 * The tag every frame of segment `sequence` carries: never 0, so that zeros never pass for a
 * frame, and different for any two sequences less than 2^32 - 1 apart.
 */
export function frameTag(sequence: number): number {
  return (sequence % 0xffffffff) + 1;
}

/** A record's payload: its serialized text, written as UTF-8, or its bytes read back to be carried. */
export type Payload = string | Uint8Array;

export function appendFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + APPEND_FIELDS + payloadBytes;
}

export function carryFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + CARRY_FIELDS + payloadBytes;
}

export function ackFrameBytes(ranges: number): number {
  return FRAME_HEAD_BYTES + ACK_FIELDS + ranges * ENTRY_BYTES;
}

export function releaseFrameBytes(records: number): number {
  return FRAME_HEAD_BYTES + RELEASE_FIELDS + records * ENTRY_BYTES;
}

/** Writes the length, tag and checksum of the frame at `at`, whose body ends at `end`. */
function seal(buf: Buffer, at: number, end: number, tag: number): number {
  buf.writeUInt32LE(end - at - FRAME_HEAD_BYTES, at);
  buf.writeUInt32LE(tag, at + 4);
  buf.writeUInt32LE(frameChecksum(buf, at, end), at + 8);
  return end;
}

function frameChecksum(data: Uint8Array, at: number, end: number): number {
  return crc32(data, at + FRAME_HEAD_BYTES, end, crc32(data, at, at + 8));
}

function writePayload(buf: Buffer, at: number, payload: Payload, bytes: number): number {
  if (typeof payload === 'string') buf.write(payload, at, bytes, 'utf8');
  else buf.set(payload, at);
  return at + bytes;
}

/** Encodes an APPEND frame at `at`; returns where the payload starts. */
export function writeAppendFrame(
  buf: Buffer,
  at: number,
  tag: number,
  id: number,
  payload: Payload,
  payloadBytes: number,
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_APPEND;
  buf.writeDoubleLE(id, p);
  p += 8;
  seal(buf, at, writePayload(buf, p, payload, payloadBytes), tag);
  return p;
}

/** Encodes a CARRY frame at `at`; returns where the payload starts. */
export function writeCarryFrame(
  buf: Buffer,
  at: number,
  tag: number,
  id: number,
  attempts: number,
  visibleAt: number,
  payload: Payload,
  payloadBytes: number,
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_CARRY;
  buf.writeDoubleLE(id, p);
  buf.writeUInt32LE(attempts, p + 8);
  buf.writeDoubleLE(visibleAt, p + 12);
  p += 20;
  seal(buf, at, writePayload(buf, p, payload, payloadBytes), tag);
  return p;
}

/** Encodes an ACK frame of `ranges` (first id, count, first id, count, ...); returns its end. */
export function writeAckFrame(
  buf: Buffer,
  at: number,
  tag: number,
  ranges: readonly number[],
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_ACK;
  buf.writeUInt32LE(ranges.length / 2, p);
  p += 4;
  for (let i = 0; i < ranges.length; i += 2) {
    buf.writeDoubleLE(ranges[i] as number, p);
    buf.writeUInt32LE(ranges[i + 1] as number, p + 8);
    p += ENTRY_BYTES;
  }
  return seal(buf, at, p, tag);
}

/** Encodes a RELEASE frame of (id, attempts) pairs; returns its end. */
export function writeReleaseFrame(
  buf: Buffer,
  at: number,
  tag: number,
  visibleAt: number,
  pairs: readonly number[],
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_RELEASE;
  buf.writeDoubleLE(visibleAt, p);
  buf.writeUInt32LE(pairs.length / 2, p + 8);
  p += 12;
  for (let i = 0; i < pairs.length; i += 2) {
    buf.writeDoubleLE(pairs[i] as number, p);
    buf.writeUInt32LE(pairs[i + 1] as number, p + 8);
    p += ENTRY_BYTES;
  }
  return seal(buf, at, p, tag);
}

/** Consecutive ids as (first, count) pairs, in the order given. */
export function idRanges(ids: readonly number[]): number[] {
  const ranges: number[] = [];
  let first = -1;
  let count = 0;
  for (const id of ids) {
    if (count > 0 && id === first + count && count < 0xffffffff) {
      count++;
      continue;
    }
    if (count > 0) ranges.push(first, count);
    first = id;
    count = 1;
  }
  if (count > 0) ranges.push(first, count);
  return ranges;
}

/** Why the readable part of a segment ended before the end of its frames. */
export type CutReason = 'incomplete' | 'checksum' | 'malformed';

/** What replaying a segment does with each frame. */
export interface FrameVisitor {
  append(id: number, payloadOffset: number, payloadBytes: number): void;
  carry(
    id: number,
    attempts: number,
    visibleAt: number,
    payloadOffset: number,
    payloadBytes: number,
  ): void;
  ack(firstId: number, count: number): void;
  release(id: number, attempts: number, visibleAt: number): void;
}

/** Where and why a segment stopped being readable. */
export interface SegmentDamage {
  readonly offset: number;
  readonly reason: CutReason;
}

/** What reading a segment found. */
export interface SegmentRead {
  /** Where its frames end: the offset of the first byte after the last frame replayed. */
  readonly end: number;
  /** Absent when the frames ended cleanly (at the end of the file, at zeros or at stale frames). */
  readonly damage?: SegmentDamage;
}

function isId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Replays the frames of segment `sequence`, from its file's bytes, into `visitor`, in order, up to
 * its end or the first frame that cannot be trusted (see the format's description above). A frame
 * is checked in full (tag, length, checksum, fields) before any of it is visited, so a damaged
 * frame has no effect.
 */
export function readSegment(data: Buffer, sequence: number, visitor: FrameVisitor): SegmentRead {
  const damaged = (offset: number, reason: CutReason): SegmentRead => ({
    end: offset,
    damage: { offset, reason },
  });
  if (data.length < HEADER_BYTES) return damaged(0, 'incomplete');
  if (!data.subarray(0, HEADER_BYTES).equals(segmentHeader(sequence))) {
    return damaged(0, 'malformed');
  }
  const tag = frameTag(sequence);
  let at = HEADER_BYTES;
  while (at < data.length) {
    if (data.length - at < FRAME_HEAD_BYTES) {
      // Zeros written ahead of use end here when the file does; anything else is a torn head.
      return isZero(data, at) ? { end: at } : damaged(at, 'incomplete');
    }
    if (data.readUInt32LE(at + 4) !== tag) {
      const lost = hasDamagedTag(data, at, tag) || frameWithTagAfter(data, at + 1, tag);
      return lost ? damaged(at, 'checksum') : { end: at };
    }
    const end = at + FRAME_HEAD_BYTES + data.readUInt32LE(at);
    if (end > data.length) return damaged(at, 'incomplete');
    if (frameChecksum(data, at, end) !== data.readUInt32LE(at + 8)) {
      const torn =
        Math.floor(at / PAGE_BYTES) !== Math.floor((end - 1) / PAGE_BYTES) &&
        !frameWithTagAfter(data, at + 1, tag);
      return damaged(at, torn ? 'incomplete' : 'checksum');
    }
    if (!visitFrame(data, at + FRAME_HEAD_BYTES, end - at - FRAME_HEAD_BYTES, visitor)) {
      return damaged(at, 'malformed');
    }
    at = end;
  }
  return { end: at };
}

function isZero(data: Buffer, from: number): boolean {
  for (let i = from; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

/** Whether the frame at `at` would pass with this segment's tag: then only its tag was damaged. */
function hasDamagedTag(data: Buffer, at: number, tag: number): boolean {
  const bodyBytes = data.readUInt32LE(at);
  // Every body has a type byte: a zero length is zeros, never a frame.
  if (bodyBytes === 0 || at + FRAME_HEAD_BYTES + bodyBytes > data.length) return false;
  const end = at + FRAME_HEAD_BYTES + bodyBytes;
  const head = Buffer.allocUnsafe(8);
  data.copy(head, 0, at, at + 4);
  head.writeUInt32LE(tag, 4);
  return crc32(data, at + FRAME_HEAD_BYTES, end, crc32(head)) === data.readUInt32LE(at + 8);
}

/** Whether a whole frame of this segment (tag and checksum right) starts at or after `from`. */
function frameWithTagAfter(data: Buffer, from: number, tag: number): boolean {
  const needle = Buffer.alloc(4);
  needle.writeUInt32LE(tag);
  for (let i = data.indexOf(needle, from + 4); i !== -1; i = data.indexOf(needle, i + 1)) {
    const at = i - 4;
    if (data.length - at < FRAME_HEAD_BYTES) return false;
    const bodyBytes = data.readUInt32LE(at);
    const end = at + FRAME_HEAD_BYTES + bodyBytes;
    if (
      bodyBytes > 0 &&
      end <= data.length &&
      frameChecksum(data, at, end) === data.readUInt32LE(at + 8)
    ) {
      return true;
    }
  }
  return false;
}

function visitFrame(data: Buffer, p: number, bodyBytes: number, visitor: FrameVisitor): boolean {
  if (bodyBytes < 1) return false;
  const type = data[p];
  if (type === FRAME_APPEND) {
    if (bodyBytes < APPEND_FIELDS) return false;
    const id = data.readDoubleLE(p + 1);
    if (!isId(id)) return false;
    visitor.append(id, p + APPEND_FIELDS, bodyBytes - APPEND_FIELDS);
    return true;
  }
  if (type === FRAME_CARRY) {
    if (bodyBytes < CARRY_FIELDS) return false;
    const id = data.readDoubleLE(p + 1);
    const attempts = data.readUInt32LE(p + 9);
    const visibleAt = data.readDoubleLE(p + 13);
    if (!isId(id) || Number.isNaN(visibleAt)) return false;
    visitor.carry(id, attempts, visibleAt, p + CARRY_FIELDS, bodyBytes - CARRY_FIELDS);
    return true;
  }
  if (type === FRAME_ACK) {
    if (bodyBytes < ACK_FIELDS) return false;
    const count = data.readUInt32LE(p + 1);
    if (bodyBytes !== ACK_FIELDS + count * ENTRY_BYTES) return false;
    let q = p + ACK_FIELDS;
    for (let i = 0; i < count; i++, q += ENTRY_BYTES) {
      if (!isId(data.readDoubleLE(q))) return false;
    }
    q = p + ACK_FIELDS;
    for (let i = 0; i < count; i++, q += ENTRY_BYTES) {
      visitor.ack(data.readDoubleLE(q), data.readUInt32LE(q + 8));
    }
    return true;
  }
  if (type === FRAME_RELEASE) {
    if (bodyBytes < RELEASE_FIELDS) return false;
    const visibleAt = data.readDoubleLE(p + 1);
    const count = data.readUInt32LE(p + 9);
    if (Number.isNaN(visibleAt) || bodyBytes !== RELEASE_FIELDS + count * ENTRY_BYTES) {
      return false;
    }
    let q = p + RELEASE_FIELDS;
    for (let i = 0; i < count; i++, q += ENTRY_BYTES) {
      if (!isId(data.readDoubleLE(q))) return false;
    }
    q = p + RELEASE_FIELDS;
    for (let i = 0; i < count; i++, q += ENTRY_BYTES) {
      visitor.release(data.readDoubleLE(q), data.readUInt32LE(q + 8), visibleAt);
    }
    return true;
  }
  return false;
}
