import { crc32 } from './crc32.js';
import { LEGACY_VERSION, isId, type SegmentKind } from './journal-format.js';

/*
 * Frames of a journal segment (see `journal-format.ts` for the layout): how each type is
 * encoded, and how a frame is checked and replayed.
 */

/** Length, tag and checksum in front of every frame body. */
export const FRAME_HEAD_BYTES = 12;

export const FRAME_APPEND = 1;
export const FRAME_CARRY = 2;
export const FRAME_ACK = 3;
export const FRAME_RELEASE = 4;
export const FRAME_LEASE = 5;
export const FRAME_PAD = 6;

const APPEND_FIELDS = 1 + 8;
const CARRY_FIELDS = 1 + 8 + 4 + 8 + 4;
const LEGACY_CARRY_FIELDS = 1 + 8 + 4 + 8;
const COUNT_FIELDS = 1 + 4;
const RELEASE_FIELDS = 1 + 8 + 4;
const ENTRY_BYTES = 8 + 4;
const LEASE_ENTRY_BYTES = 8 + 4 + 4;

/** A record's payload: its serialized text, written as UTF-8, or its bytes read back. */
export type Payload = string | Uint8Array;

export function appendFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + APPEND_FIELDS + payloadBytes;
}

export function carryFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + CARRY_FIELDS + payloadBytes;
}

/** Where the frame of a record written by this version starts, from its payload's offset. */
export function frameStart(payloadOffset: number, carried: boolean): number {
  return payloadOffset - (carried ? carryFrameBytes(0) : appendFrameBytes(0));
}

export function ackFrameBytes(ranges: number): number {
  return FRAME_HEAD_BYTES + COUNT_FIELDS + ranges * ENTRY_BYTES;
}

export function releaseFrameBytes(records: number): number {
  return FRAME_HEAD_BYTES + RELEASE_FIELDS + records * ENTRY_BYTES;
}

export function leaseFrameBytes(ranges: number): number {
  return FRAME_HEAD_BYTES + COUNT_FIELDS + ranges * LEASE_ENTRY_BYTES;
}

/** Writes the length, tag and checksum of the frame at `at`, whose body ends at `end`. */
function seal(buf: Buffer, at: number, end: number, tag: number): number {
  buf.writeUInt32LE(end - at - FRAME_HEAD_BYTES, at);
  buf.writeUInt32LE(tag, at + 4);
  buf.writeUInt32LE(frameChecksum(buf, at, end), at + 8);
  return end;
}

export function frameChecksum(data: Uint8Array, at: number, end: number): number {
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

/** What a CARRY frame says of its record besides the payload. */
export interface CarriedState {
  readonly id: number;
  readonly attempts: number;
  readonly visibleAt: number;
  readonly deliveries: number;
}

/** Encodes a CARRY frame at `at`; returns where the payload starts. */
export function writeCarryFrame(
  buf: Buffer,
  at: number,
  tag: number,
  state: CarriedState,
  payload: Payload,
  payloadBytes: number,
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = FRAME_CARRY;
  buf.writeDoubleLE(state.id, p);
  buf.writeUInt32LE(state.attempts, p + 8);
  buf.writeDoubleLE(state.visibleAt, p + 12);
  buf.writeUInt32LE(state.deliveries, p + 20);
  p += CARRY_FIELDS - 1;
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
  return writeEntries(buf, at, tag, FRAME_ACK, ranges, 2);
}

/** Encodes a LEASE frame of (first id, count, deliveries) triples; returns its end. */
export function writeLeaseFrame(
  buf: Buffer,
  at: number,
  tag: number,
  triples: readonly number[],
): number {
  return writeEntries(buf, at, tag, FRAME_LEASE, triples, 3);
}

function writeEntries(
  buf: Buffer,
  at: number,
  tag: number,
  type: number,
  values: readonly number[],
  width: 2 | 3,
): number {
  let p = at + FRAME_HEAD_BYTES;
  buf[p++] = type;
  buf.writeUInt32LE(values.length / width, p);
  p += 4;
  for (let i = 0; i < values.length; i += width) {
    buf.writeDoubleLE(values[i]!, p);
    buf.writeUInt32LE(values[i + 1]!, p + 8);
    if (width === 3) buf.writeUInt32LE(values[i + 2]!, p + 12);
    p += width === 3 ? LEASE_ENTRY_BYTES : ENTRY_BYTES;
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
    buf.writeDoubleLE(pairs[i]!, p);
    buf.writeUInt32LE(pairs[i + 1]!, p + 8);
    p += ENTRY_BYTES;
  }
  return seal(buf, at, p, tag);
}

/** A PAD frame filling `bytes` (at least `FRAME_HEAD_BYTES + 1`), to cover damaged bytes. */
export function padFrame(tag: number, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  buf[FRAME_HEAD_BYTES] = FRAME_PAD;
  seal(buf, 0, bytes, tag);
  return buf;
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

/** What replaying a segment does with each frame. */
export interface FrameVisitor {
  /** A record's copy: where its payload is, and where its frame starts (`frameAt`). */
  append(id: number, payloadOffset: number, payloadBytes: number, frameAt: number): void;
  carry(state: CarriedState, payloadOffset: number, payloadBytes: number, frameAt: number): void;
  ack(firstId: number, count: number): void;
  release(id: number, attempts: number, visibleAt: number): void;
  lease(firstId: number, count: number, deliveries: number): void;
}

/**
 * The end of the trusted frame of `kind` at `at`, or -1 when the bytes there are not one (wrong
 * tag, a length past the end, a checksum or a field that fails). Visits nothing.
 */
export function frameEndAt(data: Buffer, at: number, kind: SegmentKind): number {
  const end = checkedFrameEnd(data, at, kind);
  if (end < 0) return -1;
  return visitFrame(data, at + FRAME_HEAD_BYTES, end - at - FRAME_HEAD_BYTES, kind, undefined)
    ? end
    : -1;
}

/**
 * The end of the frame at `at` if its tag, length and (unless `checksum` is false) checksum hold,
 * else -1; its fields are not checked (`replayFrame` does, as it visits them).
 */
export function checkedFrameEnd(
  data: Buffer,
  at: number,
  kind: SegmentKind,
  checksum = true,
): number {
  if (data.length - at < FRAME_HEAD_BYTES || data.readUInt32LE(at + 4) !== kind.tag) return -1;
  const bodyBytes = data.readUInt32LE(at);
  const end = at + FRAME_HEAD_BYTES + bodyBytes;
  if (bodyBytes === 0 || end > data.length) return -1;
  if (!checksum) return end;
  return frameChecksum(data, at, end) === data.readUInt32LE(at + 8) ? end : -1;
}

/**
 * Replays the frame at `at`, which `frameEndAt` accepted (or `checkedFrameEnd`: then a frame whose
 * fields fail is not visited, and false is returned).
 */
export function replayFrame(
  data: Buffer,
  at: number,
  end: number,
  kind: SegmentKind,
  visitor: FrameVisitor,
): boolean {
  return visitFrame(data, at + FRAME_HEAD_BYTES, end - at - FRAME_HEAD_BYTES, kind, visitor);
}

/** Checks a frame body's fields and, with a visitor, replays it; false when malformed. */
function visitFrame(
  data: Buffer,
  p: number,
  bodyBytes: number,
  kind: SegmentKind,
  visitor: FrameVisitor | undefined,
): boolean {
  const type = data[p];
  if (type === FRAME_APPEND) {
    if (bodyBytes < APPEND_FIELDS) return false;
    const id = data.readDoubleLE(p + 1);
    if (!isId(id)) return false;
    visitor?.append(id, p + APPEND_FIELDS, bodyBytes - APPEND_FIELDS, p - FRAME_HEAD_BYTES);
    return true;
  }
  if (type === FRAME_CARRY) {
    const fields = kind.version === LEGACY_VERSION ? LEGACY_CARRY_FIELDS : CARRY_FIELDS;
    if (bodyBytes < fields) return false;
    const attempts = data.readUInt32LE(p + 9);
    const state: CarriedState = {
      id: data.readDoubleLE(p + 1),
      attempts,
      visibleAt: data.readDoubleLE(p + 13),
      deliveries: kind.version === LEGACY_VERSION ? attempts : data.readUInt32LE(p + 21),
    };
    if (!isId(state.id) || Number.isNaN(state.visibleAt)) return false;
    visitor?.carry(state, p + fields, bodyBytes - fields, p - FRAME_HEAD_BYTES);
    return true;
  }
  if (type === FRAME_ACK || type === FRAME_LEASE) {
    if (type === FRAME_LEASE && kind.version === LEGACY_VERSION) return false;
    const width = type === FRAME_LEASE ? LEASE_ENTRY_BYTES : ENTRY_BYTES;
    if (bodyBytes < COUNT_FIELDS) return false;
    const count = data.readUInt32LE(p + 1);
    if (bodyBytes !== COUNT_FIELDS + count * width) return false;
    if (!idsValid(data, p + COUNT_FIELDS, count, width)) return false;
    if (!visitor) return true;
    for (let i = 0, q = p + COUNT_FIELDS; i < count; i++, q += width) {
      if (type === FRAME_ACK) visitor.ack(data.readDoubleLE(q), data.readUInt32LE(q + 8));
      else visitor.lease(data.readDoubleLE(q), data.readUInt32LE(q + 8), data.readUInt32LE(q + 12));
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
    if (!idsValid(data, p + RELEASE_FIELDS, count, ENTRY_BYTES)) return false;
    if (!visitor) return true;
    for (let i = 0, q = p + RELEASE_FIELDS; i < count; i++, q += ENTRY_BYTES) {
      visitor.release(data.readDoubleLE(q), data.readUInt32LE(q + 8), visibleAt);
    }
    return true;
  }
  return type === FRAME_PAD;
}

function idsValid(data: Buffer, from: number, count: number, width: number): boolean {
  for (let i = 0, q = from; i < count; i++, q += width) {
    if (!isId(data.readDoubleLE(q))) return false;
  }
  return true;
}
