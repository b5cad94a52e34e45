import { crc32 } from './crc32.js';

/*
 * The on-disk format of a FileStorage journal.
 *
 * A journal is a directory of segment files, `journal-<sequence>.log`, written in sequence order.
 * Each segment starts with an 8-byte header (magic and version) followed by frames:
 *
 *   u32 LE  body length
 *   u32 LE  CRC-32 of the length field and the body
 *   body    u8 frame type, then the type's fields (little-endian; ids and times as f64)
 *
 *   APPEND   id, payload                           a record as appended
 *   CARRY    id, attempts u32, visibleAt, payload  a live record copied from an older segment
 *   ACK      count u32, count x (first id, n u32)  ranges of acknowledged ids
 *   RELEASE  visibleAt, count u32, count x (id, attempts u32)
 *
 * Replaying the frames in order rebuilds the live records. A frame that runs past the end of its
 * file, fails its checksum or does not parse ends the readable part of its segment.
 */

/** Magic and format version at the start of every segment. */
export const SEGMENT_HEADER = Buffer.from('BUFIOJ\x01\x00', 'latin1');
export const HEADER_BYTES = SEGMENT_HEADER.length;
/** Length and checksum in front of every frame body. */
export const FRAME_HEAD_BYTES = 8;

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

export function segmentName(sequence: number): string {
  return `journal-${String(sequence).padStart(12, '0')}.log`;
}

/** The sequence number of a segment file, or undefined for a file that is not one. */
export function parseSegmentName(name: string): number | undefined {
  const match = SEGMENT_PATTERN.exec(name);
  if (!match) return undefined;
  const sequence = Number(match[1]);
  return Number.isSafeInteger(sequence) ? sequence : undefined;
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

/** Writes the length and checksum of the frame at `at`, whose body ends at `end`. */
function seal(buf: Buffer, at: number, end: number): number {
  buf.writeUInt32LE(end - at - FRAME_HEAD_BYTES, at);
  buf.writeUInt32LE(crc32(buf, at + FRAME_HEAD_BYTES, end, crc32(buf, at, at + 4)), at + 4);
  return end;
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
  id: number,
  payload: Payload,
  payloadBytes: number,
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_APPEND;
  buf.writeDoubleLE(id, p);
  p += 8;
  seal(buf, at, writePayload(buf, p, payload, payloadBytes));
  return p;
}

/** Encodes a CARRY frame at `at`; returns where the payload starts. */
export function writeCarryFrame(
  buf: Buffer,
  at: number,
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
  seal(buf, at, writePayload(buf, p, payload, payloadBytes));
  return p;
}

/** Encodes an ACK frame of `ranges` (first id, count, first id, count, ...); returns its end. */
export function writeAckFrame(buf: Buffer, at: number, ranges: readonly number[]): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_ACK;
  buf.writeUInt32LE(ranges.length / 2, p);
  p += 4;
  for (let i = 0; i < ranges.length; i += 2) {
    buf.writeDoubleLE(ranges[i] as number, p);
    buf.writeUInt32LE(ranges[i + 1] as number, p + 8);
    p += ENTRY_BYTES;
  }
  return seal(buf, at, p);
}

/** Encodes a RELEASE frame of (id, attempts) pairs; returns its end. */
export function writeReleaseFrame(
  buf: Buffer,
  at: number,
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
  return seal(buf, at, p);
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

/** Why the readable part of a segment ended before the end of its file. */
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

/** Where and why a segment stopped being readable; absent when every byte was read. */
export interface SegmentDamage {
  readonly offset: number;
  readonly reason: CutReason;
}

function isId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Replays the frames of one segment's bytes into `visitor`, in order, up to the first frame that
 * cannot be trusted. A frame is checked in full (length, checksum, fields) before any of it is
 * visited, so a damaged frame has no effect.
 */
export function readSegment(data: Buffer, visitor: FrameVisitor): SegmentDamage | undefined {
  if (data.length < HEADER_BYTES) return { offset: 0, reason: 'incomplete' };
  if (!data.subarray(0, HEADER_BYTES).equals(SEGMENT_HEADER)) {
    return { offset: 0, reason: 'malformed' };
  }
  let at = HEADER_BYTES;
  while (at < data.length) {
    if (data.length - at < FRAME_HEAD_BYTES) return { offset: at, reason: 'incomplete' };
    const bodyBytes = data.readUInt32LE(at);
    const start = at + FRAME_HEAD_BYTES;
    const end = start + bodyBytes;
    if (end > data.length) return { offset: at, reason: 'incomplete' };
    if (crc32(data, start, end, crc32(data, at, at + 4)) !== data.readUInt32LE(at + 4)) {
      return { offset: at, reason: 'checksum' };
    }
    if (!visitFrame(data, start, bodyBytes, visitor)) return { offset: at, reason: 'malformed' };
    at = end;
  }
  return undefined;
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
