import { crc32 } from './crc32.js';

/*
 * The on-disk format of a FileStorage journal, version 3.
 *
 * A journal is a directory of segment files, `journal-<sequence>.log`, written in sequence order
 * (sequences only grow, within a directory, across processes), and an id file, `journal.id`
 * (see `directory-id.ts`), that names the directory: a random 16-byte directory id. Each segment
 * starts with a 56-byte header, then frames:
 *
 *   header  "BUFIOJ", u8 version (3), u8 0, u64 LE the segment's sequence,
 *           16 bytes the directory id, u64 LE the sequence of the segment written before it
 *           (0: none), f64 LE the id floor (every record id issued before the segment was
 *           created is below it), u32 LE CRC-32 of the 52 bytes before, u32 0
 *
 *   u32 LE  body length
 *   u32 LE  tag: the segment's sequence plus a key taken from the directory id, folded to 32
 *           bits, never 0 (`frameTag`)
 *   u32 LE  CRC-32 of the length, the tag and the body
 *   body    u8 frame type, then the type's fields (little-endian; ids and times as f64)
 *
 *   APPEND   id, payload                                           a record as appended
 *   CARRY    id, attempts u32, visibleAt, deliveries u32, payload  a live record copied forward
 *   ACK      count u32, count x (first id, n u32)                  acknowledged ids (or set aside)
 *   RELEASE  visibleAt, count u32, count x (id, attempts u32)
 *   LEASE    count u32, count x (first id, n u32, deliveries u32)  records handed to a worker
 *   PAD      anything                                              written over damaged bytes
 *
 * Replaying the frames in order rebuilds the live records; every field a frame sets is absolute
 * (attempts, deliveries), so that replaying a frame twice (a duplicated segment) changes nothing.
 *
 * A frame is trusted only whole: its tag, a length that fits in the file, its checksum and its
 * fields. Reading (see `segment-reader.ts`) skips what is not a trusted frame and goes on at the
 * next one. How likely is a false frame, where none was written? Its tag must match (32 bits,
 * keyed by the directory id, so not a value a record's text would hold by chance) and then its
 * CRC-32 over a length it names itself (another 32 bits): about 2^-64 per position for bytes
 * unrelated to the journal. The one way to get one is a record whose payload embeds a whole frame
 * of the same segment, which needs the directory id (in files only the owner can read); and even
 * then it is only looked for after damage, since intact frames are read by their lengths.
 *
 * Segment files are written into space that is already there: zeros written ahead of the frames,
 * or a dead segment's file renamed to serve again (`spare-<sequence>.log` in between), with its
 * old frames still in it. Neither carries this segment's tag: where no frame of the segment
 * follows, the first bytes without its tag are where the segment ends, not damage.
 *
 * Journals written in format 2 (BufIO 0.2.0: a 16-byte header without directory id, tags from the
 * sequence alone, CARRY without deliveries, no LEASE) are still read: the segments a directory
 * held when it was first opened in format 3 are recorded in its id file as its own.
 */

const MAGIC = Buffer.from('BUFIOJ', 'latin1');
/** The format version this code writes. */
export const FORMAT_VERSION = 3;
/** The version of BufIO 0.2.0's journals, which this code reads. */
export const LEGACY_VERSION = 2;
export const HEADER_BYTES = 56;
export const LEGACY_HEADER_BYTES = 16;
/** Length, tag and checksum in front of every frame body. */
export const FRAME_HEAD_BYTES = 12;
export const DIRECTORY_ID_BYTES = 16;

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

/** What a segment header says. */
export interface SegmentHeader {
  readonly sequence: number;
  readonly directoryId: Buffer;
  /** The segment written before this one; 0 for none. */
  readonly previous: number;
  /** Every record id issued before this segment was created is below it. */
  readonly idFloor: number;
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
}

function readU64(buf: Uint8Array, at: number): number {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return view.readUInt32LE(at) + view.readUInt32LE(at + 4) * 2 ** 32;
}

export function encodeHeader(header: SegmentHeader): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(buf, 0);
  buf[MAGIC.length] = FORMAT_VERSION;
  writeU64(buf, header.sequence, 8);
  header.directoryId.copy(buf, 16, 0, DIRECTORY_ID_BYTES);
  writeU64(buf, header.previous, 32);
  buf.writeDoubleLE(header.idFloor, 40);
  buf.writeUInt32LE(crc32(buf, 0, 48), 48);
  return buf;
}

/** What the first bytes of a file say it is. */
export type HeaderRead =
  | { readonly kind: 'current'; readonly header: SegmentHeader }
  | { readonly kind: 'legacy'; readonly sequence: number }
  | { readonly kind: 'other-version'; readonly version: number }
  | { readonly kind: 'damaged' };

export function decodeHeader(data: Buffer): HeaderRead {
  if (data.length < LEGACY_HEADER_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC)) {
    return { kind: 'damaged' };
  }
  const version = data[MAGIC.length] as number;
  if (version !== FORMAT_VERSION) {
    // A format-3 header whose version byte was damaged still passes its checksum with a 3 there.
    if (data.length >= HEADER_BYTES) {
      const copy = Buffer.from(data.subarray(0, 48));
      copy[MAGIC.length] = FORMAT_VERSION;
      if (crc32(copy) === data.readUInt32LE(48)) return { kind: 'damaged' };
    }
    if (version === LEGACY_VERSION && data[7] === 0) {
      return { kind: 'legacy', sequence: readU64(data, 8) };
    }
    // Too short to be a whole header of any version: damage, not a stranger's format.
    if (data.length < HEADER_BYTES) return { kind: 'damaged' };
    return { kind: 'other-version', version };
  }
  if (data.length < HEADER_BYTES || data.readUInt32LE(48) !== crc32(data, 0, 48)) {
    return { kind: 'damaged' };
  }
  const idFloor = data.readDoubleLE(40);
  if (!isId(idFloor)) return { kind: 'damaged' };
  return {
    kind: 'current',
    header: {
      sequence: readU64(data, 8),
      directoryId: Buffer.from(data.subarray(16, 32)),
      previous: readU64(data, 32),
      idFloor,
    },
  };
}

/** How frames of one segment are recognized: their tag, and the layout of their version. */
export interface SegmentKind {
  readonly tag: number;
  readonly version: typeof FORMAT_VERSION | typeof LEGACY_VERSION;
  readonly headerBytes: number;
}

/**
 * The tag every frame of segment `sequence` carries: never 0, so that zeros never pass for a
 * frame, different for any two sequences of a directory less than 2^32 - 1 apart, and offset by a
 * key of the directory, so that frames of another directory do not pass for ours.
 */
export function frameTag(sequence: number, directoryId: Buffer): number {
  return ((sequence + directoryId.readUInt32LE(0)) % 0xffffffff) + 1;
}

export function currentKind(sequence: number, directoryId: Buffer): SegmentKind {
  return {
    tag: frameTag(sequence, directoryId),
    version: FORMAT_VERSION,
    headerBytes: HEADER_BYTES,
  };
}

/** Format 2 tags frames by the sequence alone. */
export function legacyKind(sequence: number): SegmentKind {
  return {
    tag: (sequence % 0xffffffff) + 1,
    version: LEGACY_VERSION,
    headerBytes: LEGACY_HEADER_BYTES,
  };
}

/** A record's payload: its serialized text, written as UTF-8, or its bytes read back. */
export type Payload = string | Uint8Array;

export function appendFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + APPEND_FIELDS + payloadBytes;
}

export function carryFrameBytes(payloadBytes: number): number {
  return FRAME_HEAD_BYTES + CARRY_FIELDS + payloadBytes;
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
    buf.writeDoubleLE(values[i] as number, p);
    buf.writeUInt32LE(values[i + 1] as number, p + 8);
    if (width === 3) buf.writeUInt32LE(values[i + 2] as number, p + 12);
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
    buf.writeDoubleLE(pairs[i] as number, p);
    buf.writeUInt32LE(pairs[i + 1] as number, p + 8);
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
  append(id: number, payloadOffset: number, payloadBytes: number): void;
  carry(state: CarriedState, payloadOffset: number, payloadBytes: number): void;
  ack(firstId: number, count: number): void;
  release(id: number, attempts: number, visibleAt: number): void;
  lease(firstId: number, count: number, deliveries: number): void;
}

export function isId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * The end of the trusted frame of `kind` at `at`, or -1 when the bytes there are not one (wrong
 * tag, a length past the end, a checksum or a field that fails). Visits nothing.
 */
export function frameEndAt(data: Buffer, at: number, kind: SegmentKind): number {
  if (data.length - at < FRAME_HEAD_BYTES || data.readUInt32LE(at + 4) !== kind.tag) return -1;
  const bodyBytes = data.readUInt32LE(at);
  const end = at + FRAME_HEAD_BYTES + bodyBytes;
  if (bodyBytes === 0 || end > data.length) return -1;
  if (frameChecksum(data, at, end) !== data.readUInt32LE(at + 8)) return -1;
  return visitFrame(data, at + FRAME_HEAD_BYTES, bodyBytes, kind, undefined) ? end : -1;
}

/** Replays the trusted frame at `at`, which `frameEndAt` accepted. */
export function replayFrame(
  data: Buffer,
  at: number,
  end: number,
  kind: SegmentKind,
  visitor: FrameVisitor,
): void {
  visitFrame(data, at + FRAME_HEAD_BYTES, end - at - FRAME_HEAD_BYTES, kind, visitor);
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
    visitor?.append(id, p + APPEND_FIELDS, bodyBytes - APPEND_FIELDS);
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
    visitor?.carry(state, p + fields, bodyBytes - fields);
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
