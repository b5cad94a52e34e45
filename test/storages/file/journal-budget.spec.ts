import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { BufIO } from '../../../lib/index.js';
import { InvalidOptionsError, StorageError, StorageFullError } from '../../../lib/core/errors.js';
import { FileStorage, type FileStorageOptions } from '../../../lib/storages/file/index.js';
import { waitFor } from '../../support/wait.js';
import { range, segmentFiles, tempDir, useSandbox } from './support.js';

/*
 * maxJournalBytes: a budget on the journal's size on disk. Appends that do not fit are refused
 * with StorageFullError, as on a full disk; acknowledgements free room, and watchRoom says so.
 */

interface Big {
  readonly n: number;
  readonly pad: string;
}

const SEGMENT = 64 * 1024;
const BUDGET = 4 * SEGMENT;
const big = (n: number): Big => ({ n, pad: 'x'.repeat(1000) });

const sandbox = useSandbox('budget');

async function openStorage(
  options: Omit<FileStorageOptions<Big>, 'directory'> = {},
): Promise<FileStorage<Big>> {
  sandbox.directory ||= await tempDir('budget');
  const storage = await FileStorage.open<Big>({ ...options, directory: sandbox.directory });
  sandbox.track(storage as FileStorage<unknown>);
  return storage;
}

/** Bytes of the journal's files: segments and spares. */
function journalBytes(): number {
  let total = 0;
  for (const name of fs.readdirSync(sandbox.directory)) {
    if (/^(journal|spare)-\d+\.log$/.test(name))
      total += fs.statSync(path.join(sandbox.directory, name)).size;
  }
  return total;
}

/** Appends records one by one until one is refused; returns how many went in, and the error. */
async function fill(storage: FileStorage<Big>, from: number): Promise<[number, unknown]> {
  for (let n = from; ; n++) {
    const error = await storage.append([big(n)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (error !== undefined) return [n - from, error];
  }
}

describe('FileStorage maxJournalBytes', () => {
  it('must leave room for two segments, and be an integer', () => {
    for (const value of [2 * SEGMENT - 1, BUDGET + 0.5, -1, '1000000']) {
      expect(
        () =>
          new FileStorage({
            directory: '/tmp/x',
            segmentBytes: SEGMENT,
            maxJournalBytes: value as number,
          }),
      ).toThrow(InvalidOptionsError);
    }
    expect(() => new FileStorage({ directory: '/tmp/x', maxJournalBytes: 1024 })).toThrow(
      /invalid option "maxJournalBytes": got 1024, expected an integer of at least twice segmentBytes \(33554432\)/,
    );
    expect(
      () =>
        new FileStorage({
          directory: '/tmp/x',
          segmentBytes: SEGMENT,
          maxJournalBytes: 2 * SEGMENT,
        }),
    ).not.toThrow();
  });

  it.each(['fsync', 'none'] as const)(
    "durability '%s': an append that does not fit is refused with StorageFullError, nothing of it stored; the files stay within the budget",
    async (durability) => {
      const storage = await openStorage({
        durability,
        segmentBytes: SEGMENT,
        maxJournalBytes: BUDGET,
      });
      const [accepted, error] = await fill(storage, 0);
      expect(error).toBeInstanceOf(StorageFullError);
      expect(error).toMatchObject({
        code: 'BUFIO_STORAGE_FULL',
        path: storage.recovery?.directory,
        message: expect.stringContaining(`maxJournalBytes is ${BUDGET} bytes`),
      });
      // Most of the budget holds records (a record and its frame are about 1 KiB).
      expect(accepted).toBeGreaterThan((BUDGET / 1040) * 0.75);
      expect(storage.size()).toBe(accepted);
      expect(journalBytes()).toBeLessThanOrEqual(BUDGET);
      // Refused again, not stopped for good: a smaller record may still fit, a larger never.
      await expect(storage.append([{ n: -1, pad: 'x'.repeat(5000) }])).rejects.toBeInstanceOf(
        StorageFullError,
      );
      expect(storage.size()).toBe(accepted);
    },
  );

  it('acknowledgements free room: watchRoom is called once segments go, and appends are accepted again', async () => {
    const storage = await openStorage({ segmentBytes: SEGMENT, maxJournalBytes: BUDGET });
    const rooms: number[] = [];
    const stop = storage.watchRoom(() => rooms.push(storage.size() as number));
    const [accepted] = await fill(storage, 0);
    expect(rooms).toEqual([]);
    const batch = await storage.reserve(accepted, { now: Date.now() });
    storage.ack(batch.slice(0, Math.floor(accepted / 2)));
    await waitFor('room to be announced', () => rooms.length > 0);
    const [more, error] = await fill(storage, accepted);
    expect(error).toBeInstanceOf(StorageFullError);
    expect(more).toBeGreaterThan(SEGMENT / 1040);
    expect(journalBytes()).toBeLessThanOrEqual(BUDGET);
    // Once told, a listener is told again only after another refusal.
    storage.ack(batch.slice(Math.floor(accepted / 2)));
    await waitFor('room to be announced again', () => rooms.length > 1);
    stop();
    const told = rooms.length;
    const again = await storage.reserve(10_000, { now: Date.now() });
    await fill(storage, 100_000);
    storage.ack(again);
    const [, refused] = await fill(storage, 200_000);
    expect(refused).toBeInstanceOf(StorageFullError);
    expect(rooms).toHaveLength(told);
  });

  it('the budget holds across a restart: what the journal holds counts against it', async () => {
    const first = await openStorage({ segmentBytes: SEGMENT, maxJournalBytes: BUDGET });
    const [accepted] = await fill(first, 0);
    await first.close();
    sandbox.untrack();
    const next = await openStorage({ segmentBytes: SEGMENT, maxJournalBytes: BUDGET });
    expect(next.recovery?.records).toBe(accepted);
    expect(next.recovery?.journalBytes).toBeGreaterThan(BUDGET / 2);
    const [more, error] = await fill(next, accepted);
    expect(error).toBeInstanceOf(StorageFullError);
    expect(more).toBeLessThan(SEGMENT / 1000);
  });

  it('reports the free space at open, and warns (onError) when the budget cannot fit on the disk', async () => {
    const errors: Error[] = [];
    const storage = await openStorage({
      maxJournalBytes: Number.MAX_SAFE_INTEGER,
      onError: (error) => errors.push(error),
    });
    const free = storage.recovery?.freeBytes as number;
    const stats = fs.statfsSync(sandbox.directory);
    expect(Math.abs(free - stats.bavail * stats.bsize)).toBeLessThan(256 * 1024 * 1024);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(StorageError);
    expect(errors[0]?.message).toMatch(
      new RegExp(`journal in ".*" may not reach its budget: .* but the file system has \\d+ free`),
    );
    await storage.close();
    sandbox.untrack();
    const fits: Error[] = [];
    await openStorage({ maxJournalBytes: 64 * 1024 * 1024, onError: (error) => fits.push(error) });
    expect(fits).toEqual([]);
  });
});

describe('FileStorage maxJournalBytes with BufIO', () => {
  it("onFull 'block': pushes into a full journal wait, and go in once the worker's acks free segments; each record processed once", async () => {
    sandbox.directory = await tempDir('budget');
    const storage = new FileStorage<Big>({
      directory: sandbox.directory,
      segmentBytes: SEGMENT,
      maxJournalBytes: BUDGET,
    });
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const seen: number[] = [];
    const bufio = new BufIO<Big>({
      storage,
      batchSize: 50,
      flushInterval: 5,
      maxBufferedRecords: 1_000_000,
      onFull: 'block',
      worker: async (records) => {
        await gate;
        for (const record of records) seen.push(record.n);
      },
    });
    bufio.start();
    const total = 1000; // about 4 times what the journal holds
    let resolved = 0;
    const pushes = range(0, total).map((n) => bufio.push(big(n)).then(() => resolved++));
    await waitFor('the journal to fill', () => bufio.stats().blockedPushes > 0);
    const held = resolved;
    expect(held).toBeLessThan(total / 2);
    expect(journalBytes()).toBeLessThanOrEqual(BUDGET);
    open();
    await Promise.all(pushes);
    await bufio.stop();
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
    // Drained: no segment left (spares may stay, to serve the next open).
    expect(await segmentFiles(sandbox.directory)).toEqual([]);
  });
});
