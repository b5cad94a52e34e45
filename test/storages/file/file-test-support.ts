import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readSegment } from '../../../lib/storages/file/journal-format.js';

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

/** Lock file names (`LOCK.<generation>`) in a directory. */
export async function lockFiles(directory: string): Promise<string[]> {
  return (await fs.readdir(directory)).filter((name) => /^LOCK\.\d+$/.test(name));
}

/** Where each frame of a segment starts, and the payload offsets of its APPEND frames. */
export async function frameOffsets(
  file: string,
): Promise<{ frames: number[]; payloads: number[] }> {
  const data = await fs.readFile(file);
  const payloads: number[] = [];
  readSegment(data, {
    append: (_id, offset) => void payloads.push(offset),
    carry: () => undefined,
    ack: () => undefined,
    release: () => undefined,
  });
  // Walk the length fields to find frame starts.
  const frames: number[] = [];
  let at = 8;
  while (at + 8 <= data.length) {
    frames.push(at);
    at += 8 + data.readUInt32LE(at);
  }
  return { frames, payloads };
}
