import { describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { FileStorage } from '../../../lib/storages/file/index.js';
import {
  T0,
  lockFiles,
  range,
  rec,
  segmentFiles,
  tempDir,
  useSandbox,
  type Rec,
} from './support.js';

/*
 * FileStorage: the files it creates (modes), opening lazily, and closing.
 */

const mode = (file: string): number => fs.statSync(file).mode & 0o777;

const sandbox = useSandbox('files');

describe('FileStorage files', () => {
  it('creates the directory 0700 and the journal and lock files 0600', async () => {
    const parent = await tempDir('modes');
    sandbox.directory = parent;
    const nested = path.join(parent, 'app', 'buffer');
    const storage = new FileStorage<Rec>({ directory: nested });
    sandbox.track(storage);
    await storage.append([rec(1)]);
    expect(mode(nested)).toBe(0o700);
    const journal = await segmentFiles(nested);
    const locks = await lockFiles(nested);
    expect(journal).toHaveLength(1);
    expect(locks).toHaveLength(1);
    for (const name of [...journal, ...locks]) expect(mode(path.join(nested, name))).toBe(0o600);
    await storage.close();
    const after = await lockFiles(nested);
    expect(after).toHaveLength(1);
    expect(mode(path.join(nested, after[0]!))).toBe(0o600);
  });

  it('close flushes queued acknowledgements and releases; calls after close fail clearly', async () => {
    const storage = await sandbox.open<Rec>();
    await storage.append(range(0, 5).map(rec));
    const batch = await storage.reserve(5, { now: T0 });
    await storage.ack(batch.slice(0, 2));
    await storage.release(batch.slice(2), T0 + 5);
    await storage.close();
    await expect(storage.append([rec(9)])).rejects.toMatchObject({
      code: 'BUFIO_STORAGE_FAILED',
      message: expect.stringContaining('is closed'),
    });
    expect(() => storage.ack(batch)).toThrow(/is closed/);
    await storage.close(); // twice is fine
    const next = await sandbox.open<Rec>();
    const again = await next.reserve(10, { now: T0 + 5 });
    expect(again.map((r) => [r.record.n, r.attempts])).toEqual([
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
  });

  it('opens lazily: the first operation opens the journal', async () => {
    sandbox.directory = await tempDir('storage');
    const storage = new FileStorage<Rec>({ directory: sandbox.directory });
    sandbox.track(storage);
    expect(storage.recovery).toBeUndefined();
    expect(await storage.size()).toBe(0);
    expect(storage.recovery).toMatchObject({ records: 0, damage: [], identity: 'created' });
  });
});
