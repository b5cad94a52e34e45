import { describe, expect, it } from '@jest/globals';
import { crc32 } from '../../../lib/storages/file/crc32.js';
import {
  FRAME_HEAD_BYTES,
  HEADER_BYTES,
  appendFrameBytes,
  frameTag,
  writeAppendFrame,
  readSegment,
  segmentHeader,
  type SegmentRead,
} from '../../../lib/storages/file/journal-format.js';

/*
 * The reading rules of journal format 2 on hand-built segments: where a segment's frames end
 * cleanly (end of file, zeros written ahead, frames of the file's earlier life) and what is
 * damage (a frame of this segment that fails, or frames of this segment after a gap).
 */

const SEQUENCE = 7;

/** Writes frames of segment `sequence` into `into` from `at`, one APPEND per payload; returns their starts and end. */
function framesAt(into: Buffer, at: number, sequence: number, payloads: string[]): number[] {
  const starts: number[] = [];
  for (const [i, text] of payloads.entries()) {
    starts.push(at);
    const bytes = Buffer.byteLength(text);
    const body = appendFrameBytes(bytes) - FRAME_HEAD_BYTES;
    // Written through a scratch buffer, since the frame writers need the whole frame's room.
    const scratch = Buffer.alloc(FRAME_HEAD_BYTES + body);
    writeAppend(scratch, sequence, 100 + i, text, bytes);
    scratch.copy(into, at);
    at += scratch.length;
  }
  starts.push(at);
  return starts;
}

function writeAppend(buf: Buffer, sequence: number, id: number, text: string, bytes: number): void {
  // Same layout as writeAppendFrame, spelled out here so that the test checks the format too.
  const tag = frameTag(sequence);
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

/** A segment file: header, then `payloads` as frames, in a file of `size` bytes (zeros after). */
function segment(
  payloads: string[],
  size?: number,
  sequence = SEQUENCE,
): { data: Buffer; starts: number[] } {
  let bytes = HEADER_BYTES;
  for (const text of payloads) bytes += appendFrameBytes(Buffer.byteLength(text));
  const data = Buffer.alloc(Math.max(size ?? bytes, bytes));
  segmentHeader(sequence).copy(data, 0);
  return { data, starts: framesAt(data, HEADER_BYTES, sequence, payloads) };
}

function read(data: Buffer, sequence = SEQUENCE): SegmentRead & { ids: number[] } {
  const ids: number[] = [];
  const result = readSegment(data, sequence, {
    append: (id) => void ids.push(id),
    carry: () => undefined,
    ack: () => undefined,
    release: () => undefined,
  });
  return { ...result, ids };
}

const texts = (n: number, pad = 0): string[] =>
  Array.from({ length: n }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(pad)}"}`);

describe('journal format 2: where a segment ends', () => {
  it('the header carries the magic, the version and the sequence', () => {
    const header = segmentHeader(2 ** 40 + 5);
    expect(header.subarray(0, 8).toString('latin1')).toBe('BUFIOJ\x02\x00');
    expect(header.readUInt32LE(8) + header.readUInt32LE(12) * 2 ** 32).toBe(2 ** 40 + 5);
    expect(HEADER_BYTES).toBe(16);
  });

  it('a frame is length, tag, checksum, body (the layout the tests below build by hand)', () => {
    const text = '{"a":1}';
    const bytes = Buffer.byteLength(text);
    const expected = Buffer.alloc(appendFrameBytes(bytes));
    writeAppend(expected, SEQUENCE, 42, text, bytes);
    const actual = Buffer.alloc(appendFrameBytes(bytes));
    const payloadAt = writeAppendFrame(actual, 0, frameTag(SEQUENCE), 42, text, bytes);
    expect(actual).toEqual(expected);
    expect(payloadAt).toBe(FRAME_HEAD_BYTES + 9);
  });

  it('frame tags are never 0 and differ between neighbouring sequences', () => {
    expect(frameTag(0xffffffff - 1)).not.toBe(0);
    expect(frameTag(0xffffffff)).not.toBe(0);
    const tags = new Set(Array.from({ length: 1000 }, (_, i) => frameTag(i + 1)));
    expect(tags.size).toBe(1000);
    expect(tags.has(0)).toBe(false);
  });

  it('frames up to the end of the file: every frame, clean end', () => {
    const { data, starts } = segment(texts(5));
    expect(read(data)).toEqual({ end: starts[5], ids: [100, 101, 102, 103, 104] });
  });

  it.each([1, 5, FRAME_HEAD_BYTES - 1, FRAME_HEAD_BYTES, 4096])(
    'zeros after the frames (%i bytes) are a clean end, not damage',
    (zeros) => {
      const clean = segment(texts(3));
      const { data, starts } = segment(texts(3), clean.data.length + zeros);
      expect(read(data)).toEqual({ end: starts[3], ids: [100, 101, 102] });
    },
  );

  it("an earlier life's frames after the frames are a clean end; none of them is replayed", () => {
    // The file was segment 3, with 8 frames; now segment 7 wrote 2 frames over its start.
    const old = segment(texts(8, 20), undefined, 3);
    const data = Buffer.from(old.data);
    segmentHeader(SEQUENCE).copy(data, 0);
    const starts = framesAt(data, HEADER_BYTES, SEQUENCE, ['{"new":0}', '{"new":1}']);
    const result = read(data);
    expect(result).toEqual({ end: starts[2], ids: [100, 101] });
    // The stale frames are intact frames of segment 3: read as such, they all pass.
    expect(read(old.data, 3).ids).toHaveLength(8);
  });

  it('a frame of the previous sequence is not taken for one of this segment', () => {
    const { data } = segment(texts(4), undefined, SEQUENCE - 1);
    segmentHeader(SEQUENCE).copy(data, 0);
    expect(read(data)).toEqual({ end: HEADER_BYTES, ids: [] });
  });

  it('a frame head cut short by the end of the file, not zeros, is incomplete', () => {
    const { data, starts } = segment(texts(3));
    const torn = Buffer.concat([data, Buffer.from([9, 0, 0, 0, 7])]);
    expect(read(torn)).toEqual({
      end: starts[3],
      damage: { offset: starts[3], reason: 'incomplete' },
      ids: [100, 101, 102],
    });
  });

  it('zeros followed by a frame of this segment are damage: something in the middle was lost', () => {
    const { data, starts } = segment(texts(5));
    const at = starts[2] as number;
    data.fill(0, at, starts[3]);
    expect(read(data)).toEqual({
      end: at,
      damage: { offset: at, reason: 'checksum' },
      ids: [100, 101],
    });
  });

  it('a damaged tag on the last frame is damage, not a clean end', () => {
    const { data, starts } = segment(texts(3));
    const last = starts[2] as number;
    data[last + 5] = (data[last + 5] as number) ^ 0x40;
    expect(read(data)).toEqual({
      end: last,
      damage: { offset: last, reason: 'checksum' },
      ids: [100, 101],
    });
  });

  it('a last frame that fails its checksum within one page is a checksum cut', () => {
    const { data, starts } = segment(texts(3));
    const last = starts[2] as number;
    data[last + FRAME_HEAD_BYTES + 12] = 0x21;
    expect(read(data).damage).toEqual({ offset: last, reason: 'checksum' });
  });

  it('a last frame that fails across a 4 KiB boundary is what a torn write leaves: incomplete', () => {
    // Frames of ~300 bytes: some frame crosses offset 4096.
    const { data, starts } = segment(texts(20, 280), 8192);
    const k = starts.findIndex((start, i) => start < 4096 && (starts[i + 1] as number) > 4096);
    expect(k).toBeGreaterThan(0);
    // The write stopped at the page boundary: what follows is what was there before (zeros).
    data.fill(0, 4096);
    expect(read(data)).toEqual({
      end: starts[k],
      damage: { offset: starts[k], reason: 'incomplete' },
      ids: Array.from({ length: k }, (_, i) => 100 + i),
    });
  });

  it('a frame that fails across a 4 KiB boundary with frames of this segment after it is a checksum cut', () => {
    const { data, starts } = segment(texts(20, 280), 8192);
    const k = starts.findIndex((start, i) => start < 4096 && (starts[i + 1] as number) > 4096);
    data[4100] = (data[4100] as number) ^ 0x01;
    expect(read(data).damage).toEqual({ offset: starts[k], reason: 'checksum' });
  });

  it('a header naming another sequence is malformed: the file is not this segment', () => {
    const { data } = segment(texts(2), undefined, SEQUENCE + 1);
    expect(read(data)).toEqual({ end: 0, damage: { offset: 0, reason: 'malformed' }, ids: [] });
  });
});
