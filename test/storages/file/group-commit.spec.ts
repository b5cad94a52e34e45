import { describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs';
import { StorageError } from '../../../lib/core/errors.js';
import { waitFor } from '../../support/wait.js';
import { T0, numbersIn, range, rec, useSandbox, type Rec } from './support.js';

/*
 * FileStorage: appends that arrive together share one write and one fdatasync.
 */

const sandbox = useSandbox('group-commit');

describe('FileStorage group commit', () => {
  it('one write and one fdatasync for a burst of concurrent appends', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append([rec(0)]); // creates the segment
    const syncs = jest.spyOn(fs, 'fdatasync');
    const writes = jest.spyOn(fs, 'writeSync');
    const asyncWrites = jest.spyOn(fs, 'write');
    const ids = await Promise.all(range(1, 201).map((n) => storage.append([rec(n)])));
    expect(syncs).toHaveBeenCalledTimes(1);
    expect(writes.mock.calls.length + asyncWrites.mock.calls.length).toBe(1);
    expect(new Set(ids.flat()).size).toBe(200);
    expect(storage.size()).toBe(201);
  });

  it('appends arriving during a sync are written together and share the next sync', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append([rec(0)]);
    const realSync = fs.fdatasync;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let calls = 0;
    jest.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
      calls++;
      if (calls === 1) void gate.then(() => realSync(fd, callback));
      else realSync(fd, callback);
    });
    const writes = jest.spyOn(fs, 'writeSync');
    let firstDone = false;
    const first = storage.append([rec(1)]).then(() => (firstDone = true));
    await waitFor('the first sync', () => calls === 1);
    const during = range(2, 52).map((n) => storage.append([rec(n)]));
    await new Promise((resolve) => setTimeout(resolve, 30));
    // The first append waits for its sync; nothing else is written or synced meanwhile.
    expect(firstDone).toBe(false);
    expect(calls).toBe(1);
    expect(writes).toHaveBeenCalledTimes(1);
    open();
    await first;
    await Promise.all(during);
    expect(calls).toBe(2);
    expect(writes).toHaveBeenCalledTimes(2);
    expect(await numbersIn(storage)).toEqual(range(0, 52));
  });

  it('a large backlog is written in bursts of a few MiB, in order', async () => {
    const storage = await sandbox.open<Rec>({ segmentBytes: 8 * 1024 * 1024 });
    await storage.append([rec(0)]);
    const writes = jest.spyOn(fs, 'write');
    const syncs = jest.spyOn(fs, 'fdatasync');
    const big = 'z'.repeat(200_000);
    await Promise.all(range(1, 51).map((n) => storage.append([{ n, text: big }])));
    // 10 MB queued at once: three bursts of at most 4 MiB, each synced.
    const lengths = writes.mock.calls.map((call) => (call as unknown[])[3] as number);
    const bursts = lengths.filter((n) => n > 1e6);
    expect(bursts).toHaveLength(3);
    for (const length of bursts) expect(length).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(syncs.mock.calls.length).toBeGreaterThanOrEqual(3);
    const next = await sandbox.reopen(storage);
    expect(await numbersIn(next)).toEqual(range(0, 51));
  });

  it("durability 'none' resolves appends without fdatasync", async () => {
    const storage = await sandbox.open<Rec>({ durability: 'none' });
    await storage.append([rec(0)]);
    const syncs = jest.spyOn(fs, 'fdatasync');
    for (let n = 1; n <= 20; n++) await storage.append([rec(n)]);
    await Promise.all(range(21, 100).map((n) => storage.append([rec(n)])));
    expect(syncs).not.toHaveBeenCalled();
    const next = await sandbox.reopen(storage);
    expect(await numbersIn(next)).toEqual(range(0, 100));
  });

  it('an I/O failure rejects the burst, leaves it out of the journal, and stops the storage', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append([rec(0)]);
    jest.spyOn(fs, 'fdatasync').mockImplementationOnce((_fd, callback) => {
      callback(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    });
    const failure = await storage.append([rec(1)]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StorageError);
    expect((failure as Error).message).toMatch(/journal in ".*" failed .*EIO/);
    await expect(storage.append([rec(2)])).rejects.toBe(failure);
    expect(() => storage.reserve(1, { now: T0 })).toThrow(failure as Error);
    await storage.close();
    const next = await sandbox.open<Rec>();
    expect(await numbersIn(next)).toEqual([0]);
  });
});
