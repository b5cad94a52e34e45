import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  FRAME_HEAD_BYTES,
  HEADER_BYTES,
  parseSegmentName,
  readSegment,
} from '../../../lib/storages/file/journal-format.js';

/** A fresh directory under the system's temp directory; remove it with `removeDir`. */
export function tempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `bufio-file-${label}-`));
}

export async function removeDir(directory: string): Promise<void> {
  await fs.rm(directory, { recursive: true, force: true });
}

/** Journal segment file names in a directory, oldest first. */
export async function segmentFiles(directory: string): Promise<string[]> {
  return (await fs.readdir(directory)).filter((name) => /^journal-\d+\.log$/.test(name)).sort();
}

/** Spare file names (dead segments kept for reuse) in a directory, oldest first. */
export async function spareFiles(directory: string): Promise<string[]> {
  return (await fs.readdir(directory)).filter((name) => /^spare-\d+\.log$/.test(name)).sort();
}

/** Lock file names (`LOCK.<generation>`) in a directory. */
export async function lockFiles(directory: string): Promise<string[]> {
  return (await fs.readdir(directory)).filter((name) => /^LOCK\.\d+$/.test(name));
}

/** Where each frame of a segment starts, and the payload offsets of its APPEND frames. */
export async function frameOffsets(
  file: string,
): Promise<{ frames: number[]; payloads: number[]; end: number }> {
  const data = await fs.readFile(file);
  const payloads: number[] = [];
  const { end } = readSegment(data, sequenceOf(file), {
    append: (_id, offset) => void payloads.push(offset),
    carry: () => undefined,
    ack: () => undefined,
    release: () => undefined,
  });
  // Walk the length fields to find frame starts, up to where the segment's frames end.
  const frames: number[] = [];
  let at = HEADER_BYTES;
  while (at < end) {
    frames.push(at);
    at += FRAME_HEAD_BYTES + data.readUInt32LE(at);
  }
  return { frames, payloads, end };
}

/** The sequence number in a segment file's name. */
export function sequenceOf(file: string): number {
  const sequence = parseSegmentName(path.basename(file));
  if (sequence === undefined) throw new Error(`${file} is not a journal segment`);
  return sequence;
}

/** The payloads of a segment's APPEND frames, parsed as JSON, in file order. */
export async function appendedIn(file: string): Promise<unknown[]> {
  const data = await fs.readFile(file);
  const records: unknown[] = [];
  readSegment(data, sequenceOf(file), {
    append: (_id, offset, bytes) => {
      records.push(JSON.parse(data.toString('utf8', offset, offset + bytes)));
    },
    carry: () => undefined,
    ack: () => undefined,
    release: () => undefined,
  });
  return records;
}
