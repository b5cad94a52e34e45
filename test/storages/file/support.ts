import { afterAll, afterEach, jest } from '@jest/globals';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readIdentity } from '../../../lib/storages/file/directory-id.js';
import type { FileStorageSettings } from '../../../lib/storages/file/file-storage-options.js';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { killFixtures } from '../../support/child-process.js';
import {
  currentKind,
  parseSegmentName,
  type SegmentKind,
} from '../../../lib/storages/file/journal-format.js';
import { replayFrame, type FrameVisitor } from '../../../lib/storages/file/journal-frames.js';
import { scanSegment } from '../../../lib/storages/file/segment-reader.js';

/*
 * What the FileStorage specs share: a sandbox (a directory per test and the storages opened in
 * it, closed and removed after each test), helpers that read and damage segment files, and the
 * record most tests store.
 */

/** FileStorage's options without `directory` (the sandbox's), internal ones included. */
export type SandboxOptions<T> = Omit<FileStorageSettings<T>, 'directory'>;

/** A test's journal directory and the storages opened in it; see `useSandbox`. */
export interface Sandbox {
  /** The directory: made by the first `open` (or set by the test), '' before. */
  directory: string;
  /** Opens a FileStorage on the directory, made first if need be. */
  open<T = Rec>(options?: SandboxOptions<T>): Promise<FileStorage<T>>;
  /** Closes `storage` and opens the same directory again. */
  reopen<T>(storage: FileStorage<T>, options?: SandboxOptions<T>): Promise<FileStorage<T>>;
  /** Closes `storage` after the test, as those `open` returns are. */
  track<T>(...storages: FileStorage<T>[]): FileStorage<T>;
  /** No longer closes `storage` (every storage, without one) after the test: it is closed or abandoned. */
  untrack<T>(storage?: FileStorage<T>): void;
  /** Closes every storage opened so far (the directory stays). */
  closeAll(): Promise<void>;
}

/**
 * A sandbox for the tests of the calling spec file: after each test, mocks are restored, every
 * storage it opened is closed and its directory is removed. Call at the top level of a spec.
 */
export function useSandbox(label: string): Sandbox {
  const opened: FileStorage<unknown>[] = [];
  const sandbox: Sandbox = {
    directory: '',
    async open<T>(options: SandboxOptions<T> = {}) {
      sandbox.directory ||= await tempDir(label);
      return sandbox.track(await FileStorage.open<T>({ ...options, directory: sandbox.directory }));
    },
    async reopen<T>(storage: FileStorage<T>, options: SandboxOptions<T> = {}) {
      await storage.close();
      return sandbox.open<T>(options);
    },
    track<T>(...storages: FileStorage<T>[]) {
      opened.push(...(storages as FileStorage<unknown>[]));
      return storages[0]!;
    },
    async closeAll() {
      for (const storage of opened.splice(0)) await storage.close();
    },
    untrack<T>(storage?: FileStorage<T>) {
      const at = storage === undefined ? 0 : opened.indexOf(storage as FileStorage<unknown>);
      if (at >= 0) opened.splice(at, storage === undefined ? opened.length : 1);
    },
  };
  afterEach(async () => {
    jest.restoreAllMocks();
    await sandbox.closeAll();
    if (sandbox.directory) await removeDir(sandbox.directory);
    sandbox.directory = '';
  });
  return sandbox;
}

/**
 * For a spec whose tests run child processes on a directory: returns what makes that directory
 * (one per spec file); after all its tests, the children still running are killed and the
 * directory is removed.
 */
export function useChildDirectory(label: string): () => Promise<string> {
  let directory = '';
  afterAll(async () => {
    killFixtures();
    if (directory) await removeDir(directory);
  });
  return async () => (directory ||= await tempDir(label));
}

/** Flips the bits of `mask` in the byte at `at` of `file`, as damage on disk would. */
export async function flipByte(file: string, at: number, mask = 0xff): Promise<void> {
  const data = await fs.readFile(file);
  data[at] = data[at]! ^ mask;
  await fs.writeFile(file, data);
}

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

/** How the frames of a segment file are recognized (its directory's id, its sequence). */
export async function kindOf(file: string): Promise<SegmentKind> {
  const identity = await readIdentity(path.dirname(file));
  if (typeof identity !== 'object') throw new Error(`no id file beside ${file}`);
  return currentKind(sequenceOf(file), identity.id);
}

/** Where each frame of a segment starts, and the payload offsets of its APPEND frames. */
export async function frameOffsets(
  file: string,
): Promise<{ frames: number[]; payloads: number[]; end: number }> {
  const data = await fs.readFile(file);
  const kind = await kindOf(file);
  const scan = scanSegment(data, kind);
  const frames: number[] = [];
  const payloads: number[] = [];
  for (let i = 0; i < scan.frames.length; i += 2) {
    const at = scan.frames[i]!;
    frames.push(at);
    replayFrame(data, at, scan.frames[i + 1]!, kind, {
      ...ignoreFrames,
      append: (_id, offset) => void payloads.push(offset),
    });
  }
  return { frames, payloads, end: scan.end };
}

/** A visitor that ignores every frame, to override one kind of. */
export const ignoreFrames: FrameVisitor = {
  append: () => undefined,
  carry: () => undefined,
  ack: () => undefined,
  release: () => undefined,
  lease: () => undefined,
};

/** The sequence number in a segment file's name. */
export function sequenceOf(file: string): number {
  const sequence = parseSegmentName(path.basename(file));
  if (sequence === undefined) throw new Error(`${file} is not a journal segment`);
  return sequence;
}

/** The payloads of a segment's APPEND frames, parsed as JSON, in file order. */
export async function appendedIn(file: string): Promise<unknown[]> {
  const data = await fs.readFile(file);
  const kind = await kindOf(file);
  const scan = scanSegment(data, kind);
  const records: unknown[] = [];
  for (let i = 0; i < scan.frames.length; i += 2) {
    replayFrame(data, scan.frames[i]!, scan.frames[i + 1]!, kind, {
      ...ignoreFrames,
      append: (_id, offset, bytes) => {
        records.push(JSON.parse(data.toString('utf8', offset, offset + bytes)));
      },
    });
  }
  return records;
}

/** The record most FileStorage tests store. */
export interface Rec {
  readonly n: number;
  readonly text: string;
}

export const rec = (n: number): Rec => ({ n, text: `record ${n}` });

/** The `n` of every record waiting in `storage`, which are released again, so still waiting. */
export async function numbersIn(storage: FileStorage<Rec>): Promise<number[]> {
  const batch = await storage.reserve(100_000, { now: Infinity });
  await storage.release(batch, 0);
  return batch.map((entry) => entry.record.n);
}

/** A fixed engine clock for `reserve`. */
export const T0 = 1_700_000_000_000;

export const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);
