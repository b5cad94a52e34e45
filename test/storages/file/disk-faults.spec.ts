import { afterAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { StorageAccessError, StorageFullError } from '../../../lib/core/errors.js';
import { FileStorage, type Durability } from '../../../lib/storages/file/index.js';
import { killFixtures, startFixture } from '../../support/child-process.js';
import { removeDir, tempDir } from './support.js';
import { canMount, mountTmpfs, remount, unmount } from './mount-support.js';

/*
 * Faults of the file system while FileStorage runs, on real file systems: a small tmpfs that
 * fills up, one remounted read-only, and a directory an unprivileged user may not write.
 */

interface Rec {
  readonly n: number;
  readonly pad: string;
}

const rec = (n: number): Rec => ({ n, pad: 'x'.repeat(200) });
const T0 = 1_700_000_000_000;
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);

const mountable = await canMount();
const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];
const directories: string[] = [];

afterAll(async () => {
  killFixtures();
  for (const mount of mounts) await unmount(mount).catch(() => undefined);
  for (const directory of directories) await removeDir(directory);
});

async function numbersIn(storage: FileStorage<Rec>): Promise<number[]> {
  const batch = await storage.reserve(1_000_000, { now: Infinity });
  await storage.release(batch, T0);
  return batch.map((entry) => entry.record.n).sort((a, b) => a - b);
}

(mountable ? describe : describe.skip)('FileStorage on a full disk (a small tmpfs)', () => {
  it.each(['fsync', 'none'] as Durability[])(
    "durability '%s': pushes reject with StorageFullError while it is full; the same instance accepts again once space is freed; nothing acknowledged is lost, nothing refused is replayed",
    async (durability) => {
      const mount = await mountTmpfs('full', 768);
      mounts.push(mount);
      const directory = path.join(mount, 'journal');
      const storage = await FileStorage.open<Rec>({
        directory,
        durability,
        segmentBytes: 64 * 1024,
        onError: () => undefined,
      });
      const filler = path.join(mount, 'filler');
      await fsp.writeFile(filler, Buffer.alloc(256 * 1024, 1));

      const accepted = new Set<number>();
      let refused = 0;
      let firstError: unknown;
      let n = 0;
      // Bursts of concurrent pushes, until whole bursts are refused.
      while (refused < 60 && n < 20_000) {
        const results = await Promise.allSettled(
          range(n, n + 20).map((i) => storage.append([rec(i)])),
        );
        for (const [j, result] of results.entries()) {
          if (result.status === 'fulfilled') accepted.add(n + j);
          else {
            refused++;
            firstError ??= result.reason;
          }
        }
        n += 20;
      }
      expect(firstError).toBeInstanceOf(StorageFullError);
      expect(firstError).toMatchObject({
        code: 'BUFIO_STORAGE_FULL',
        path: expect.stringContaining(directory),
        cause: expect.objectContaining({ code: 'ENOSPC' }),
      });
      expect(accepted.size).toBeGreaterThan(500);
      // Filled to the last byte one record at a time: then refused again, and not stopped for good.
      for (;;) {
        const outcome = await storage.append([rec(n)]).then(
          () => accepted.add(n),
          (error: unknown) => error,
        );
        n++;
        if (outcome instanceof StorageFullError) break;
      }
      await expect(storage.append([rec(n++)])).rejects.toBeInstanceOf(StorageFullError);

      await fsp.unlink(filler);
      await storage.append([rec(n)]);
      accepted.add(n);
      expect(await numbersIn(storage)).toEqual([...accepted].sort((a, b) => a - b));
      await storage.close();

      // After a restart: the same records, and no half-written frame to cut or skip.
      const next = await FileStorage.open<Rec>({ directory, onError: () => undefined });
      expect(next.recovery).toMatchObject({ damage: [], framesSkipped: 0 });
      expect(await numbersIn(next)).toEqual([...accepted].sort((a, b) => a - b));
      await next.close();
    },
    60_000,
  );

  it('a read-only file system refuses the open with StorageAccessError (EROFS, naming the path); read-write again, every record is there', async () => {
    const mount = await mountTmpfs('readonly', 512);
    mounts.push(mount);
    const directory = path.join(mount, 'journal');
    const storage = await FileStorage.open<Rec>({ directory });
    await storage.append(range(0, 10).map(rec));
    await storage.close();
    remount(mount, true);
    try {
      const error = await FileStorage.open<Rec>({ directory }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageAccessError);
      expect(error).toMatchObject({
        code: 'BUFIO_STORAGE_ACCESS',
        path: expect.stringContaining(directory),
        cause: expect.objectContaining({ code: 'EROFS' }),
        message: expect.stringContaining('the file system is read-only (EROFS)'),
      });
    } finally {
      remount(mount, false);
    }
    const again = await FileStorage.open<Rec>({ directory });
    expect(await numbersIn(again)).toEqual(range(0, 10));
    await again.close();
  });
});

(isRoot ? describe : describe.skip)('FileStorage as an unprivileged user (uid 65534)', () => {
  /** A directory `journal` owned by 65534 with `mode`, in a parent others may traverse. */
  async function ownedDirectory(mode: number, owner = 65534): Promise<string> {
    const parent = await tempDir('access');
    directories.push(parent);
    fs.chmodSync(parent, 0o755);
    const directory = path.join(parent, 'journal');
    fs.mkdirSync(directory);
    fs.chownSync(directory, owner, owner);
    fs.chmodSync(directory, mode);
    return directory;
  }

  async function run(directory: string, scenario: string): Promise<Record<string, unknown>[]> {
    const child = startFixture('file/access-child', { args: [directory, scenario] });
    const exit = await child.exited;
    expect([exit, child.stderr]).toEqual([{ code: 0, signal: null }, []]);
    return child.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  it('a directory it may not write: the open fails with StorageAccessError (EACCES), naming the path', async () => {
    const directory = await ownedDirectory(0o500);
    expect(await run(directory, 'open')).toEqual([
      {
        step: 'open',
        ok: false,
        name: 'StorageAccessError',
        code: 'BUFIO_STORAGE_ACCESS',
        path: expect.stringContaining(directory),
        cause: 'EACCES',
      },
    ]);
  });

  it('a directory of another user is refused with UnsafeDirectoryError', async () => {
    const directory = await ownedDirectory(0o755, 0);
    expect(await run(directory, 'open')).toEqual([
      {
        step: 'open',
        ok: false,
        name: 'UnsafeDirectoryError',
        code: 'BUFIO_UNSAFE_DIRECTORY',
        path: directory,
      },
    ]);
  });

  it('refused at run time: appends reject with StorageAccessError; the same instance accepts again, every accepted record kept', async () => {
    const directory = await ownedDirectory(0o700);
    expect(await run(directory, 'runtime')).toEqual([
      { step: 'open', ok: true, uid: 65534 },
      {
        step: 'refused',
        ok: false,
        name: 'StorageAccessError',
        code: 'BUFIO_STORAGE_ACCESS',
        path: expect.stringContaining(directory),
        cause: 'EACCES',
      },
      { step: 'again', ok: true },
      { step: 'records', ok: true, count: expect.any(Number) },
    ]);
  });
});
