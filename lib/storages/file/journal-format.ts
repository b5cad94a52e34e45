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
 *   RELEASE  visibleAt, count u32, count x (id, attempts u32)      records back for a retry
 *   LEASE    count u32, count x (first id, n u32, deliveries u32)  records handed to a worker
 *   PAD      anything                                              written over damaged bytes
 *
 * A record released for a retry stays where it is; the RELEASE frame gives its new state (12
 * bytes a record, however often a failing worker releases it). A record copied out of a mostly
 * dead segment, so that the segment can go, is a CARRY frame with its state; its newest copy is
 * the record, older ones are stale. Replaying the frames rebuilds the live records (see
 * `journal-replay.ts`); every field a frame sets is absolute (attempts, deliveries), so that
 * replaying a frame twice (a duplicated segment) changes nothing.
 *
 * A frame is trusted only whole: its tag, a length that fits in the file, its checksum and its
 * fields (see `journal-frames.ts`). Reading (see `segment-reader.ts`) skips what is not a trusted frame and goes on at the
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
export const DIRECTORY_ID_BYTES = 16;

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
  const version = data[MAGIC.length]!;
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

export function isId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
