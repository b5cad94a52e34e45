import { describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from '../../../lib/storages/file/crc32.js';
import { abandonStorage } from '../../../lib/storages/file/file-storage.js';
import { FileStorage, type RecoveryReport } from '../../../lib/storages/file/index.js';
import { readIdentity, type DirectoryIdentity } from '../../../lib/storages/file/directory-id.js';
import { frameTag } from '../../../lib/storages/file/journal-format.js';
import { FRAME_HEAD_BYTES } from '../../../lib/storages/file/journal-frames.js';
import {
  appendedIn,
  frameOffsets,
  useSandbox,
  segmentFiles,
  sequenceOf,
  spareFiles,
  tempDir,
} from './support.js';
import { waitFor } from '../../support/wait.js';

/*
 * With durability 'fsync', FileStorage writes frames into space that already exists: zeros
 * written ahead of them, or a dead segment's file kept as a spare and reused. These tests check
 * that what was there before is never replayed nor reported, and that damage still is.
 */

interface Rec {
  readonly n: number;
  readonly text: string;
}

const rec = (n: number): Rec => ({ n, text: `record number ${n}` });
const T0 = 1_700_000_000_000;
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);

const sandbox = useSandbox('reuse');

async function open(
  options: { segmentBytes?: number; durability?: 'fsync' | 'none' } = {},
): Promise<{ storage: FileStorage<Rec>; reports: RecoveryReport[] }> {
  sandbox.directory ||= await tempDir('reuse');
  const reports: RecoveryReport[] = [];
  const storage = await FileStorage.open<Rec>({
    directory: sandbox.directory,
    ...options,
    onRecovery: (report) => reports.push(report),
  });
  sandbox.track(storage);
  return { storage, reports };
}

/** Appends `numbers`, `per` records per append (each append one burst: awaited in turn). */
async function appendAll(storage: FileStorage<Rec>, numbers: number[], per = 10): Promise<void> {
  for (let i = 0; i < numbers.length; i += per) {
    await storage.append(numbers.slice(i, i + per).map(rec));
  }
}

/** Stops a storage as a crash would: nothing more is written, trimmed or deleted. */
async function crash(storage: FileStorage<Rec>): Promise<void> {
  await storage[abandonStorage]();
  sandbox.untrack(storage);
}

/** Every record the storage holds, by number, in order, released again. */
async function numbersIn(storage: FileStorage<Rec>): Promise<number[]> {
  const batch = await storage.reserve(100_000, { now: Infinity });
  await storage.release(batch, T0);
  return batch.map((entry) => entry.record.n);
}

const inode = (file: string): number => fs.statSync(file).ino;

/** Where a file's bytes end, zeros written ahead left out. */
function withoutTrailingZeros(data: Buffer): number {
  let used = data.length;
  while (used > 0 && data[used - 1] === 0) used--;
  return used;
}
const inDir = (name: string): string => path.join(sandbox.directory, name);

/**
 * A sandbox.directory whose journal is empty and that holds two spares, each a former segment full of
 * frames (appends of 0..count-1 and the acknowledgements of some of them).
 */
async function journalWithSpares(segmentBytes: number, count: number): Promise<string[]> {
  const { storage } = await open({ segmentBytes });
  await appendAll(storage, range(0, count));
  expect((await segmentFiles(sandbox.directory)).length).toBeGreaterThanOrEqual(3);
  await storage.ack(await storage.reserve(count, { now: T0 }));
  await waitFor('two dead segments to become spares', async () => {
    return (await spareFiles(sandbox.directory)).length === 2;
  });
  await storage.close();
  sandbox.untrack();
  expect(await segmentFiles(sandbox.directory)).toEqual([]);
  return spareFiles(sandbox.directory);
}

describe('FileStorage: writing into space that exists already', () => {
  describe('zeros written ahead', () => {
    it('a burst that grows the file writes zeros ahead in the same write; later bursts fit in them', async () => {
      const { storage } = await open();
      await storage.append([rec(0)]);
      const [name] = await segmentFiles(sandbox.directory);
      const file = inDir(name as string);
      const { end } = await frameOffsets(file);
      const size = fs.statSync(file).size;
      expect(size).toBeGreaterThan(end + 64 * 1024);
      expect((await fsp.readFile(file)).subarray(end).every((byte) => byte === 0)).toBe(true);

      const writes = jest.spyOn(fs, 'writeSync');
      const asyncWrites = jest.spyOn(fs, 'write');
      await appendAll(storage, range(1, 51));
      // One write per burst, none grows the file.
      expect(writes.mock.calls.length + asyncWrites.mock.calls.length).toBe(5);
      expect(fs.statSync(file).size).toBe(size);
      expect(await numbersIn(storage)).toEqual(range(0, 51));
    });

    it('zeros after the last frame are a clean end after a crash: no cut, every record back', async () => {
      const { storage } = await open();
      await appendAll(storage, range(0, 30));
      await crash(storage);
      const [name] = await segmentFiles(sandbox.directory);
      const file = inDir(name as string);
      const size = fs.statSync(file).size;
      const { end } = await frameOffsets(file);
      expect(size).toBeGreaterThan(end);

      const { storage: next, reports } = await open();
      expect(reports[0]).toMatchObject({ records: 30, damage: [] });
      expect(await numbersIn(next)).toEqual(range(0, 30));
      // Recovery leaves the zeros alone: nothing was damaged.
      expect(fs.statSync(file).size).toBe(size);
    });

    it('close trims the zeros off a segment that keeps records', async () => {
      const { storage } = await open();
      await appendAll(storage, range(0, 5));
      await storage.close();
      const [name] = await segmentFiles(sandbox.directory);
      const file = inDir(name as string);
      expect(fs.statSync(file).size).toBe((await frameOffsets(file)).end);
      const { storage: next } = await open();
      expect(await numbersIn(next)).toEqual(range(0, 5));
    });

    it("durability 'none' writes no zeros ahead and keeps no spares", async () => {
      const { storage } = await open({ durability: 'none', segmentBytes: 1024 });
      await appendAll(storage, range(0, 60), 3);
      for (const name of await segmentFiles(sandbox.directory)) {
        const file = inDir(name);
        expect(fs.statSync(file).size).toBe((await frameOffsets(file)).end);
      }
      await storage.ack(await storage.reserve(100, { now: T0 }));
      await storage.close();
      expect((await fsp.readdir(sandbox.directory)).sort()).toEqual([
        expect.stringMatching(/^LOCK\.\d+$/),
        'journal.id',
      ]);
    });
  });

  describe('spares', () => {
    it('dead segments become spares (two at most), close leaves no segment, and the next open reuses them', async () => {
      const spares = await journalWithSpares(1024, 60);
      expect(spares).toHaveLength(2);
      const inodes = spares.map((name) => inode(inDir(name)));
      // Old bytes at the very end of the first spare (its own zeros ahead were overwritten).
      const handle = await fsp.open(inDir(spares[0]!), 'r+');
      const { size } = await handle.stat();
      await handle.write(Buffer.alloc(FRAME_HEAD_BYTES, 0xab), 0, FRAME_HEAD_BYTES, size - 12);
      await handle.close();

      const { storage, reports } = await open({ segmentBytes: 1024 });
      expect(reports[0]).toMatchObject({ records: 0, segments: 0, damage: [] });
      expect(await spareFiles(sandbox.directory)).toEqual(spares);
      const events: string[] = [];
      const realSync = fs.fdatasync;
      jest.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
        events.push('sync');
        realSync(fd, callback);
      });
      const realRename = fs.promises.rename;
      jest.spyOn(fs.promises, 'rename').mockImplementation((from, to) => {
        events.push(`rename ${path.basename(String(from))} ${path.basename(String(to))}`);
        return realRename(from, to);
      });
      await storage.append([rec(100)]);
      // The new header was on disk before the spare took a segment's name.
      expect(events.slice(0, 2)).toEqual([
        'sync',
        expect.stringMatching(new RegExp(`^rename ${spares[0]} journal-\\d+\\.log$`)),
      ]);
      // The oldest spare became the new segment: same file, a sequence above every spare's.
      const [segment] = await segmentFiles(sandbox.directory);
      expect(inode(inDir(segment as string))).toBe(inodes[0]);
      const spareSequences = spares.map((name) => Number(/\d+/.exec(name)?.[0]));
      expect(sequenceOf(segment as string)).toBeGreaterThan(Math.max(...spareSequences));
      expect(await spareFiles(sandbox.directory)).toEqual(spares.slice(1));
      expect(fs.statSync(inDir(segment as string)).mode & 0o777).toBe(0o600);
      // Its last bytes were zeroed before use, so that no frame head at its end is old bytes.
      const reused = await fsp.readFile(inDir(segment as string));
      expect(reused.subarray(-FRAME_HEAD_BYTES).every((byte) => byte === 0)).toBe(true);
      expect(reused.length).toBeGreaterThan(512);

      await storage.ack(await storage.reserve(10, { now: T0 }));
      await storage.close();
      expect(await segmentFiles(sandbox.directory)).toEqual([]);
      expect(await spareFiles(sandbox.directory)).toHaveLength(2);
    });

    it("a recycled segment's stale frames are never replayed: exactly the new records come back", async () => {
      const spares = await journalWithSpares(1024, 60);
      const oldBytes = await fsp.readFile(inDir(spares[0]!));
      const oldInode = inode(inDir(spares[0]!));

      const { storage } = await open({ segmentBytes: 1024 });
      await appendAll(storage, [500, 501, 502], 1);
      await crash(storage);
      const [segment] = await segmentFiles(sandbox.directory);
      const file = inDir(segment as string);
      expect(inode(file)).toBe(oldInode);
      // The file still holds its old frames after the new ones: appends of records 0..59.
      const { end } = await frameOffsets(file);
      const now = await fsp.readFile(file);
      expect(now.length).toBeGreaterThan(end + 200);
      expect(now.subarray(end + 100, now.length - FRAME_HEAD_BYTES)).toEqual(
        oldBytes.subarray(end + 100, now.length - FRAME_HEAD_BYTES),
      );
      expect(now.subarray(end).includes('record number')).toBe(true);

      const { storage: next, reports } = await open({ segmentBytes: 1024 });
      expect(reports[0]).toMatchObject({ records: 3, damage: [] });
      expect(await numbersIn(next)).toEqual([500, 501, 502]);
    });

    it("an open with durability 'none' removes spares", async () => {
      await journalWithSpares(1024, 60);
      const { storage } = await open({ durability: 'none', segmentBytes: 1024 });
      expect(await spareFiles(sandbox.directory)).toEqual([]);
      await storage.append([rec(1)]);
      expect(await numbersIn(storage)).toEqual([1]);
    });
  });

  describe('damage is still found', () => {
    /**
     * A recycled segment (a spare of 8 KiB) holding records 1000..1099 over its old frames,
     * left by a crash; `before` is the file as it was as a spare.
     */
    async function recycledSegment(): Promise<{ file: string; before: Buffer; frames: number[] }> {
      const spares = await journalWithSpares(8192, 400);
      const before = await fsp.readFile(inDir(spares[0]!));
      const spareInode = inode(inDir(spares[0]!));
      const { storage } = await open({ segmentBytes: 8192 });
      await appendAll(storage, range(1000, 1100));
      await crash(storage);
      const [segment] = await segmentFiles(sandbox.directory);
      const file = inDir(segment as string);
      expect(inode(file)).toBe(spareInode);
      expect(fs.statSync(file).size).toBe(before.length);
      const { frames } = await frameOffsets(file);
      expect(frames).toHaveLength(100);
      return { file, before, frames };
    }

    it('a write torn at a page boundary of a recycled segment is cut and reported as incomplete', async () => {
      const { file, before, frames } = await recycledSegment();
      const k = frames.findIndex((at, i) => at < 4096 && (frames[i + 1] ?? Infinity) > 4096);
      expect(k).toBeGreaterThan(10);
      // From the page boundary on, the file holds what it held before the write.
      const data = await fsp.readFile(file);
      before.copy(data, 4096, 4096);
      await fsp.writeFile(file, data);

      const { storage, reports } = await open({ segmentBytes: 8192 });
      expect(reports[0]?.damage).toEqual([
        {
          segment: path.basename(file),
          offset: frames[k],
          bytes: withoutTrailingZeros(data) - frames[k]!,
          reason: 'incomplete',
          repair: 'cut',
          quarantined: `${inDir('quarantine.log')} at offset 0`,
        },
      ]);
      expect(await numbersIn(storage)).toEqual(range(1000, 1000 + k));
      expect(fs.statSync(file).size).toBe(frames[k]);
    });

    it('a damaged last frame of a recycled segment is cut and reported', async () => {
      const { file, frames } = await recycledSegment();
      const data = await fsp.readFile(file);
      const last = frames[99]!;
      data[last + FRAME_HEAD_BYTES + 20] = data[last + FRAME_HEAD_BYTES + 20]! ^ 0x04;
      await fsp.writeFile(file, data);

      const { storage, reports } = await open({ segmentBytes: 8192 });
      expect(reports[0]?.damage).toEqual([
        {
          segment: path.basename(file),
          offset: last,
          bytes: withoutTrailingZeros(data) - last,
          reason: 'checksum',
          repair: 'cut',
          quarantined: `${inDir('quarantine.log')} at offset 0`,
        },
      ]);
      expect(await numbersIn(storage)).toEqual(range(1000, 1099));
    });

    it.each([
      ['a valid frame of another segment (a stale frame)', 'stale'],
      ['zeros', 'zeros'],
    ] as const)(
      'in the middle of an older segment, %s where a frame was is damage: skipped, padded over and reported; later frames kept',
      async (_label, kind) => {
        const { storage } = await open({ segmentBytes: 1024 });
        await appendAll(storage, range(0, 60), 3);
        await storage.close();
        sandbox.untrack();
        const files = await segmentFiles(sandbox.directory);
        expect(files.length).toBeGreaterThanOrEqual(3);
        const file = inDir(files[1]!);
        const inFile = (await appendedIn(file)) as Rec[];
        const { frames } = await frameOffsets(file);
        const at = frames[2]!;
        const data = await fsp.readFile(file);
        const end = at + FRAME_HEAD_BYTES + data.readUInt32LE(at);
        if (kind === 'zeros') data.fill(0, at, end);
        else {
          // Sealed as a frame of the segment before: it passes every check but the tag.
          const identity = (await readIdentity(sandbox.directory)) as DirectoryIdentity;
          data.writeUInt32LE(frameTag(sequenceOf(file) - 1, identity.id), at + 4);
          const crc = crc32(data, at + FRAME_HEAD_BYTES, end, crc32(data, at, at + 8));
          data.writeUInt32LE(crc, at + 8);
        }
        await fsp.writeFile(file, data);

        const { storage: next, reports } = await open({ segmentBytes: 1024 });
        expect(reports[0]?.damage).toEqual([
          {
            segment: files[1],
            offset: at,
            bytes: end - at,
            reason: 'checksum',
            repair: 'padded',
            quarantined: `${inDir('quarantine.log')} at offset 0`,
          },
        ]);
        const lost = inFile[2]!.n;
        expect(await numbersIn(next)).toEqual(range(0, 60).filter((n) => n !== lost));
      },
    );
  });
});
