import { describe, expect, it } from '@jest/globals';
import { crc32 } from '../../../lib/storages/file/crc32.js';
import {
  HEADER_BYTES,
  currentKind,
  decodeHeader,
  encodeHeader,
  frameTag,
  type SegmentKind,
} from '../../../lib/storages/file/journal-format.js';
import {
  FRAME_HEAD_BYTES,
  appendFrameBytes,
  replayFrame,
  writeAppendFrame,
} from '../../../lib/storages/file/journal-frames.js';
import { scanSegment, type SegmentScan } from '../../../lib/storages/file/segment-reader.js';
import { ignoreFrames } from './support.js';

/*
 * The reading rules of journal format 3 on hand-built segments: where a segment's frames end
 * cleanly (end of file, zeros written ahead, frames of the file's earlier life), and how damage is
 * skipped: reading goes on at the next trusted frame.
 */

const SEQUENCE = 7;
const DIRECTORY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const KIND = currentKind(SEQUENCE, DIRECTORY);

function writeAppend(buf: Buffer, tag: number, id: number, text: string, bytes: number): void {
  // Same layout as writeAppendFrame, spelled out here so that the test checks the format too.
  let p = FRAME_HEAD_BYTES;
  buf[p++] = 1;
  buf.writeDoubleLE(id, p);
  p += 8;
  buf.write(text, p, bytes, 'utf8');
  p += bytes;
  buf.writeUInt32LE(p - FRAME_HEAD_BYTES, 0);
  buf.writeUInt32LE(tag, 4);
  buf.writeUInt32LE(crc32(buf, FRAME_HEAD_BYTES, p, crc32(buf, 0, 8)), 8);
}

/** Writes APPEND frames of segment `sequence` into `into` from `at`; returns their starts and end. */
function framesAt(into: Buffer, at: number, sequence: number, payloads: string[]): number[] {
  const starts: number[] = [];
  const tag = frameTag(sequence, DIRECTORY);
  for (const [i, text] of payloads.entries()) {
    starts.push(at);
    const bytes = Buffer.byteLength(text);
    const scratch = Buffer.alloc(appendFrameBytes(bytes));
    writeAppend(scratch, tag, 100 + i, text, bytes);
    scratch.copy(into, at);
    at += scratch.length;
  }
  starts.push(at);
  return starts;
}

function header(sequence: number): Buffer {
  return encodeHeader({ sequence, directoryId: DIRECTORY, previous: sequence - 1, idFloor: 50 });
}

/** A segment file: header, then `payloads` as frames, in a file of `size` bytes (zeros after). */
function segment(
  payloads: string[],
  size?: number,
  sequence = SEQUENCE,
): { data: Buffer; starts: number[] } {
  let bytes = HEADER_BYTES;
  for (const text of payloads) bytes += appendFrameBytes(Buffer.byteLength(text));
  const data = Buffer.alloc(Math.max(size ?? bytes, bytes));
  header(sequence).copy(data, 0);
  return { data, starts: framesAt(data, HEADER_BYTES, sequence, payloads) };
}

function read(
  data: Buffer,
  kind: SegmentKind = KIND,
): Omit<SegmentScan, 'frames'> & { ids: number[] } {
  const ids: number[] = [];
  const { frames, ...rest } = scanSegment(data, kind);
  for (let i = 0; i < frames.length; i += 2) {
    replayFrame(data, frames[i]!, frames[i + 1]!, kind, {
      ...ignoreFrames,
      append: (id) => void ids.push(id),
    });
  }
  return { ...rest, ids };
}

const texts = (n: number, pad = 0): string[] =>
  Array.from({ length: n }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(pad)}"}`);
const ids = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => 100 + from + i);

describe('journal format 3', () => {
  describe('header', () => {
    it('carries the magic, the version, the sequence, the directory id, the previous sequence and the id floor, under a checksum', () => {
      const bytes = encodeHeader({
        sequence: 2 ** 40 + 5,
        directoryId: DIRECTORY,
        previous: 2 ** 40 + 4,
        idFloor: 1234,
      });
      expect(bytes.length).toBe(HEADER_BYTES);
      expect(bytes.subarray(0, 8).toString('latin1')).toBe('BUFIOJ\x03\x00');
      expect(bytes.subarray(16, 32)).toEqual(DIRECTORY);
      expect(decodeHeader(bytes)).toEqual({
        kind: 'current',
        header: {
          sequence: 2 ** 40 + 5,
          directoryId: DIRECTORY,
          previous: 2 ** 40 + 4,
          idFloor: 1234,
        },
      });
    });

    it.each([0, 6, 9, 20, 33, 41, 49])(
      'a flipped byte at %i makes it damaged, not another version',
      (at) => {
        const bytes = header(3);
        bytes[at] = bytes[at]! ^ 0x10;
        expect(decodeHeader(bytes)).toEqual({ kind: 'damaged' });
      },
    );

    it('a header of another version is told apart from damage', () => {
      const bytes = header(3);
      bytes[6] = 9;
      bytes.writeUInt32LE(crc32(bytes, 0, 48), 48);
      expect(decodeHeader(bytes)).toEqual({ kind: 'other-version', version: 9 });
    });

    it('a format-2 header (BufIO 0.2.0) is read as legacy', () => {
      const bytes = Buffer.alloc(16);
      bytes.write('BUFIOJ\x02\x00', 0, 'latin1');
      bytes.writeUInt32LE(12, 8);
      expect(decodeHeader(bytes)).toEqual({ kind: 'legacy', sequence: 12 });
    });
  });

  it('a frame is length, tag, checksum, body (the layout the tests below build by hand)', () => {
    const text = '{"a":1}';
    const bytes = Buffer.byteLength(text);
    const expected = Buffer.alloc(appendFrameBytes(bytes));
    writeAppend(expected, KIND.tag, 42, text, bytes);
    const actual = Buffer.alloc(appendFrameBytes(bytes));
    const payloadAt = writeAppendFrame(actual, 0, KIND.tag, 42, text, bytes);
    expect(actual).toEqual(expected);
    expect(payloadAt).toBe(FRAME_HEAD_BYTES + 9);
  });

  it('frame tags are never 0, differ between neighbouring sequences, and between directories', () => {
    expect(frameTag(0xffffffff - 1, Buffer.alloc(16))).not.toBe(0);
    expect(frameTag(0xfffffffe, Buffer.alloc(16, 0xff))).not.toBe(0);
    const tags = new Set(Array.from({ length: 1000 }, (_, i) => frameTag(i + 1, DIRECTORY)));
    expect(tags.size).toBe(1000);
    expect(tags.has(0)).toBe(false);
    const other = Buffer.from(DIRECTORY);
    other[0] = other[0]! ^ 1;
    expect(frameTag(SEQUENCE, other)).not.toBe(frameTag(SEQUENCE, DIRECTORY));
  });

  describe('where a segment ends', () => {
    it('frames up to the end of the file: every frame, clean end', () => {
      const { data, starts } = segment(texts(5));
      expect(read(data)).toEqual({ end: starts[5], damage: [], ids: ids(0, 5) });
    });

    it.each([1, 5, FRAME_HEAD_BYTES - 1, FRAME_HEAD_BYTES, 4096])(
      'zeros after the frames (%i bytes) are a clean end, not damage',
      (zeros) => {
        const clean = segment(texts(3));
        const { data, starts } = segment(texts(3), clean.data.length + zeros);
        expect(read(data)).toEqual({ end: starts[3], damage: [], ids: ids(0, 3) });
      },
    );

    it("an earlier life's frames after the frames are a clean end; none of them is replayed", () => {
      const old = segment(texts(8, 20), undefined, 3);
      const data = Buffer.from(old.data);
      header(SEQUENCE).copy(data, 0);
      const starts = framesAt(data, HEADER_BYTES, SEQUENCE, ['{"new":0}', '{"new":1}']);
      expect(read(data)).toEqual({ end: starts[2], damage: [], ids: ids(0, 2) });
      expect(read(old.data, currentKind(3, DIRECTORY)).ids).toHaveLength(8);
    });

    it('frames of the previous sequence, or of another directory, are not taken for ours', () => {
      const { data } = segment(texts(4), undefined, SEQUENCE - 1);
      header(SEQUENCE).copy(data, 0);
      expect(read(data)).toEqual({ end: HEADER_BYTES, damage: [], ids: [] });
      const other = Buffer.from(DIRECTORY);
      other[1] = other[1]! ^ 1;
      expect(read(segment(texts(4)).data, currentKind(SEQUENCE, other)).ids).toEqual([]);
    });
  });

  describe('damage', () => {
    it('a frame head cut short by the end of the file, not zeros, is an incomplete tail', () => {
      const { data, starts } = segment(texts(3));
      const torn = Buffer.concat([data, Buffer.from([9, 0, 0, 0, 7])]);
      expect(read(torn)).toEqual({
        end: starts[3],
        damage: [{ offset: starts[3], bytes: 5, reason: 'incomplete', tail: true }],
        ids: ids(0, 3),
      });
    });

    it('zeros where a frame was, with frames after: skipped, and every later frame kept', () => {
      const { data, starts } = segment(texts(5));
      const at = starts[2]!;
      data.fill(0, at, starts[3]);
      expect(read(data)).toEqual({
        end: starts[5],
        damage: [{ offset: at, bytes: starts[3]! - at, reason: 'checksum', tail: false }],
        ids: [100, 101, 103, 104],
      });
    });

    it.each([
      ['its length', 1],
      ['its tag', 5],
      ['its checksum', 9],
      ['its type', FRAME_HEAD_BYTES],
      ['its payload', FRAME_HEAD_BYTES + 12],
    ])('a flipped byte in %s costs that frame only', (_label, delta) => {
      const { data, starts } = segment(texts(6, 10));
      const at = starts[2]!;
      data[at + delta] = data[at + delta]! ^ 0x40;
      const result = read(data);
      expect(result.ids).toEqual([100, 101, 103, 104, 105]);
      expect(result.damage).toEqual([
        { offset: at, bytes: starts[3]! - at, reason: 'checksum', tail: false },
      ]);
    });

    it('a damaged tag on the last frame is damage, not a clean end', () => {
      const { data, starts } = segment(texts(3));
      const last = starts[2]!;
      data[last + 5] = data[last + 5]! ^ 0x40;
      expect(read(data)).toEqual({
        end: last,
        damage: [{ offset: last, bytes: data.length - last, reason: 'checksum', tail: true }],
        ids: ids(0, 2),
      });
    });

    it('a last frame that fails within one page is checksum damage; across a 4 KiB boundary, incomplete', () => {
      const small = segment(texts(3));
      small.data[small.starts[2]! + FRAME_HEAD_BYTES + 12] = 0x21;
      expect(read(small.data).damage).toEqual([
        expect.objectContaining({ offset: small.starts[2], reason: 'checksum', tail: true }),
      ]);
      const { data, starts } = segment(texts(20, 280), 8192);
      const k = starts.findIndex((start, i) => start < 4096 && starts[i + 1]! > 4096);
      expect(k).toBeGreaterThan(0);
      data.fill(0, 4096);
      expect(read(data)).toEqual({
        end: starts[k],
        damage: [
          {
            offset: starts[k],
            bytes: 4096 - starts[k]!,
            reason: 'incomplete',
            tail: true,
          },
        ],
        ids: ids(0, k),
      });
    });

    it('a frame head inside a payload is not taken for a frame unless its checksum holds', () => {
      // A payload that holds this segment's tag, a plausible length and a wrong checksum.
      const fake = Buffer.alloc(24);
      fake.writeUInt32LE(8, 0);
      fake.writeUInt32LE(KIND.tag, 4);
      fake.writeUInt32LE(0xdeadbeef, 8);
      const { data, starts } = segment(['{"a":0}', 'x'.repeat(40), '{"a":2}']);
      const payload = starts[1]! + FRAME_HEAD_BYTES + 9;
      fake.copy(data, payload + 4);
      const end = starts[2]!;
      data.writeUInt32LE(
        crc32(data, starts[1]! + FRAME_HEAD_BYTES, end, crc32(data, starts[1], starts[1]! + 8)),
        starts[1]! + 8,
      );
      expect(read(data).ids).toEqual([100, 101, 102]);
      // Damage the frame holding it: reading resynchronizes past the fake head, on the next frame.
      data[starts[1]! + 1]! ^= 0x7f;
      expect(read(data).ids).toEqual([100, 102]);
    });
  });
});
