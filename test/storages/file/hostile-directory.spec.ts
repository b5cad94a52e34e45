import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UnsafeDirectoryError } from '../../../lib/core/errors.js';
import { readIdentity, type DirectoryIdentity } from '../../../lib/storages/file/directory-id.js';
import { FileStorage, type RecoveryReport } from '../../../lib/storages/file/index.js';
import {
  HEADER_BYTES,
  encodeHeader,
  frameTag,
  segmentName,
} from '../../../lib/storages/file/journal-format.js';
import { appendFrameBytes, writeAppendFrame } from '../../../lib/storages/file/journal-frames.js';
import {
  T0,
  range,
  rec,
  removeDir,
  segmentFiles,
  spareFiles,
  tempDir,
  type Rec,
} from './support.js';

/*
 * A directory others could write into: FileStorage refuses it unless told otherwise, never
 * follows a link planted under any name it uses, and never replays a segment it did not write.
 */

let root = '';
const opened: FileStorage<Rec>[] = [];

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close().catch(() => undefined);
  if (root) await removeDir(root);
  root = '';
});

/** A parent directory for the test, the journal directory `journal` inside it (0700). */
async function setUp(): Promise<{ directory: string; outside: string }> {
  root = await tempDir('hostile');
  const directory = path.join(root, 'journal');
  fs.mkdirSync(directory, { mode: 0o700 });
  const outside = path.join(root, 'outside');
  fs.mkdirSync(outside);
  return { directory, outside };
}

/** A file outside the journal with known content, to plant links to. */
function precious(outside: string, name: string): { file: string; check(): void } {
  const file = path.join(outside, name);
  const content = `precious ${name} ${randomBytes(8).toString('hex')}`;
  fs.writeFileSync(file, content, { mode: 0o644 });
  const before = fs.statSync(file);
  return {
    file,
    check() {
      expect(fs.readFileSync(file, 'utf8')).toBe(content);
      const after = fs.statSync(file);
      expect([after.size, after.mode, after.mtimeMs]).toEqual([
        before.size,
        before.mode,
        before.mtimeMs,
      ]);
    },
  };
}

async function open(
  directory: string,
  options: { segmentBytes?: number; allowUnsafeDirectory?: boolean } = {},
): Promise<{ storage: FileStorage<Rec>; report: RecoveryReport }> {
  const storage = await FileStorage.open<Rec>({
    directory,
    segmentBytes: 1024,
    onError: () => undefined,
    ...options,
  });
  opened.push(storage);
  return { storage, report: storage.recovery as RecoveryReport };
}

/** Uses a storage through every path that creates, renames or removes files. */
async function exercise(storage: FileStorage<Rec>, from: number): Promise<void> {
  for (let n = from; n < from + 80; n += 4) {
    await storage.append(range(n, n + 4).map(rec));
  }
  const batch = await storage.reserve(1000, { now: T0 });
  await storage.release(batch.slice(0, 3), T0 + 60_000);
  await storage.ack(batch.slice(3));
  await new Promise((resolve) => setTimeout(resolve, 50));
}

async function numbersIn(storage: FileStorage<Rec>): Promise<number[]> {
  const batch = await storage.reserve(100_000, { now: Infinity });
  await storage.release(batch, T0);
  return batch.map((entry) => entry.record.n);
}

describe('FileStorage in a hostile directory', () => {
  describe('modes and owners', () => {
    it('creates its directory 0700 and its files 0600', async () => {
      const { directory } = await setUp();
      const nested = path.join(directory, 'a', 'b');
      const { storage } = await open(nested);
      await exercise(storage, 0);
      await storage.close();
      expect(fs.statSync(nested).mode & 0o777).toBe(0o700);
      for (const name of fs.readdirSync(nested)) {
        expect([name, fs.statSync(path.join(nested, name)).mode & 0o777]).toEqual([name, 0o600]);
      }
    });

    it.each([
      ['777', 0o777],
      ['770', 0o770],
      ['722', 0o722],
      ['1777', 0o1777],
    ])('refuses a directory with mode %s, naming the mode and the owner', async (_label, mode) => {
      const { directory } = await setUp();
      fs.chmodSync(directory, mode);
      const error = await FileStorage.open<Rec>({ directory }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnsafeDirectoryError);
      expect(error).toMatchObject({
        code: 'BUFIO_UNSAFE_DIRECTORY',
        path: directory,
        mode,
        owner: process.getuid?.(),
      });
      expect((error as Error).message).toMatch(
        new RegExp(`(world|group)-writable \\(mode 0${mode.toString(8)}\\).*allowUnsafeDirectory`),
      );
      // Nothing was written into it.
      expect(fs.readdirSync(directory)).toEqual([]);
      // Accepted when the option says so.
      const { storage } = await open(directory, { allowUnsafeDirectory: true });
      await storage.append([rec(1)]);
      expect(await numbersIn(storage)).toEqual([1]);
    });
  });

  describe('planted links', () => {
    it('a link under every name it uses leaves the target untouched', async () => {
      const { directory, outside } = await setUp();
      // A journal with damage (so that quarantine is written), closed, with two spares.
      {
        const { storage } = await open(directory);
        await exercise(storage, 0);
        await storage.ack(await storage.reserve(1000, { now: Infinity }));
        await storage.close();
      }
      const spares = await spareFiles(directory);
      const identity = (await readIdentity(directory)) as DirectoryIdentity;
      const locks = fs.readdirSync(directory).filter((name) => /^LOCK\.\d+$/.test(name));
      const generation = Math.max(...locks.map((name) => Number(name.slice(5))));
      const planted = [
        'journal.id',
        'quarantine.log',
        `LOCK.${generation + 1}`,
        `LOCK.${generation + 2}`,
        ...spares,
        'spare-000000000999.log',
        'journal-000000001000.log',
      ];
      const targets = new Map<string, ReturnType<typeof precious>>();
      for (const name of planted) {
        const target = precious(outside, name);
        targets.set(name, target);
        fs.rmSync(path.join(directory, name), { force: true });
        fs.symlinkSync(target.file, path.join(directory, name));
      }
      // A segment with a damaged frame, so that the open quarantines bytes.
      fs.writeFileSync(path.join(directory, segmentName(900)), forgedSegment(900, identity.id, 3));
      const damaged = fs.readFileSync(path.join(directory, segmentName(900)));
      damaged[HEADER_BYTES + 20]! ^= 0xff;
      fs.writeFileSync(path.join(directory, segmentName(900)), damaged);

      const { storage, report } = await open(directory);
      expect(report.framesSkipped).toBe(1);
      await exercise(storage, 1000);
      await storage.close();
      const { storage: again } = await open(directory);
      await exercise(again, 2000);
      await again.close();

      for (const target of targets.values()) target.check();
      // The links were ignored or moved aside, never written through; the journal works.
      const ignored = report.ignored.map((entry) => [entry.file, entry.reason]);
      expect(ignored).toEqual(
        expect.arrayContaining([
          ['journal.id', 'foreign'],
          ['journal-000000001000.log', 'untrusted'],
          ['spare-000000000999.log', 'untrusted'],
        ]),
      );
    });

    it('a hard link or a FIFO under a journal name is not used (no write into it, no hang)', async () => {
      const { directory, outside } = await setUp();
      const target = precious(outside, 'hard');
      fs.linkSync(target.file, path.join(directory, 'spare-000000000001.log'));
      execFileSync('mkfifo', [path.join(directory, segmentName(2))]);
      const { storage, report } = await open(directory);
      expect(report.ignored.map((entry) => [entry.file, entry.reason, entry.detail])).toEqual([
        ['journal-000000000002.log', 'untrusted', 'it is not a regular file'],
        ['spare-000000000001.log', 'untrusted', 'it has 2 names (hard links)'],
      ]);
      await exercise(storage, 0);
      expect(await numbersIn(storage)).toHaveLength(3);
      await storage.close();
      target.check();
    });
  });

  describe('files it did not write', () => {
    it('a forged segment (valid, with another directory id) is not replayed: moved to quarantine and reported', async () => {
      const { directory } = await setUp();
      {
        const { storage } = await open(directory);
        await storage.append(range(0, 5).map(rec));
        await storage.close();
      }
      const forged = segmentName(2);
      const bytes = forgedSegment(2, randomBytes(16), 4);
      fs.writeFileSync(path.join(directory, forged), bytes, { mode: 0o600 });
      const errors: Error[] = [];
      const storage = await FileStorage.open<Rec>({ directory, onError: (e) => errors.push(e) });
      opened.push(storage);
      expect(await numbersIn(storage)).toEqual(range(0, 5));
      const report = storage.recovery as RecoveryReport;
      expect(report.ignored).toEqual([
        {
          file: forged,
          reason: 'foreign',
          detail: expect.stringMatching(
            /^its header names directory id [0-9a-f]{32}, not this directory's/,
          ),
          quarantined: expect.stringMatching(new RegExp(`quarantine-${forged}-\\d+$`)),
        },
      ]);
      expect(fs.readFileSync(report.ignored[0]?.quarantined as string)).toEqual(bytes);
      expect(await segmentFiles(directory)).not.toContain(forged);
      expect(errors.map((e) => e.message)).toEqual([
        expect.stringContaining(`${forged} ignored (foreign: its header names directory id`),
      ]);
    });

    it("a segment that claims this directory's id in the header but whose frames carry another key is not replayed", async () => {
      const { directory } = await setUp();
      {
        const { storage } = await open(directory);
        await storage.append([rec(1)]);
        await storage.close();
      }
      const identity = (await readIdentity(directory)) as DirectoryIdentity;
      const bytes = forgedSegment(2, randomBytes(16), 4);
      encodeHeader({ sequence: 2, directoryId: identity.id, previous: 1, idFloor: 0 }).copy(
        bytes,
        0,
      );
      fs.writeFileSync(path.join(directory, segmentName(2)), bytes, { mode: 0o600 });
      const { storage } = await open(directory);
      expect(await numbersIn(storage)).toEqual([1]);
    });
  });
});

/** A well-formed segment of directory `id` holding `count` records numbered from 500. */
function forgedSegment(sequence: number, id: Buffer, count: number): Buffer {
  const parts = [encodeHeader({ sequence, directoryId: id, previous: sequence - 1, idFloor: 0 })];
  for (let i = 0; i < count; i++) {
    const text = JSON.stringify(rec(500 + i));
    const frame = Buffer.alloc(appendFrameBytes(Buffer.byteLength(text)));
    writeAppendFrame(frame, 0, frameTag(sequence, id), 10_000 + i, text, Buffer.byteLength(text));
    parts.push(frame);
  }
  return Buffer.concat(parts);
}
