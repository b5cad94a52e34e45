import { describe, expect, it, jest } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { waitFor } from '../../support/wait.js';
import { T0, rec, segmentFiles, tempDir, useSandbox, type Rec } from './support.js';

/*
 * FileStorage: the journal rotates into segment files, which go once every record in them is
 * acknowledged; a journal of another format is refused untouched.
 */

const sandbox = useSandbox('segments');

describe('FileStorage segments', () => {
  it('rotates at segmentBytes and deletes segments once every record is acknowledged, after a sync', async () => {
    const storage = await sandbox.open<Rec>({ durability: 'none', segmentBytes: 1024 });
    for (let n = 0; n < 60; n++) await storage.append([rec(n)]);
    const before = await segmentFiles(sandbox.directory);
    expect(before.length).toBeGreaterThanOrEqual(3);
    for (const name of before) {
      expect(fs.statSync(path.join(sandbox.directory, name)).size).toBeLessThanOrEqual(1024);
    }
    const events: string[] = [];
    const realSync = fs.fdatasync;
    jest.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
      events.push('sync');
      realSync(fd, callback);
    });
    const realUnlink = fs.promises.unlink;
    jest.spyOn(fs.promises, 'unlink').mockImplementation((file) => {
      events.push(`unlink ${path.basename(String(file))}`);
      return realUnlink(file);
    });
    const batch = await storage.reserve(1000, { now: T0 });
    await storage.ack(batch);
    await waitFor(
      'acknowledged segments to be deleted',
      async () => (await segmentFiles(sandbox.directory)).length === 1,
    );
    // The acknowledgements were synced before the first segment went.
    expect(events[0]).toBe('sync');
    // Oldest first: every segment but the head, which may be a new one.
    const after = await segmentFiles(sandbox.directory);
    expect(after).toHaveLength(1);
    expect(events.filter((e) => e.startsWith('unlink journal-'))).toEqual(
      before.filter((name) => !after.includes(name)).map((name) => `unlink ${name}`),
    );
    expect(before.filter((name) => !after.includes(name)).length).toBeGreaterThanOrEqual(2);
    // A clean close of an empty storage leaves no segment at all.
    await storage.close();
    expect(await segmentFiles(sandbox.directory)).toEqual([]);
  });

  it('copies a straggler forward so its old segment can go; it keeps its attempts and retry time', async () => {
    const storage = await sandbox.open<Rec>({ segmentBytes: 1024 });
    for (let n = 0; n < 80; n++) await storage.append([rec(n)]);
    const segments = (await segmentFiles(sandbox.directory)).length;
    expect(segments).toBeGreaterThanOrEqual(4);
    const batch = await storage.reserve(1000, { now: T0 });
    await storage.release(batch.slice(0, 1), T0 + 60_000);
    await storage.ack(batch.slice(1));
    await waitFor(
      'the straggler to be carried and old segments deleted',
      async () => (await segmentFiles(sandbox.directory)).length === 1,
    );
    const next = await sandbox.reopen(storage);
    expect(next.recovery).toMatchObject({ records: 1, retries: 1, segments: 1 });
    expect(await next.reserve(10, { now: T0 + 59_999 })).toEqual([]);
    const retry = await next.reserve(10, { now: T0 + 60_000 });
    expect(retry.map((r) => [r.record, r.attempts])).toEqual([[rec(0), 1]]);
  });

  it('refuses a journal written by another format version, without touching it', async () => {
    sandbox.directory = await tempDir('storage');
    const file = path.join(sandbox.directory, 'journal-000000000001.log');
    // Version 1: 8-byte header, frames without a tag.
    const bytes = Buffer.concat([Buffer.from('BUFIOJ\x01\x00', 'latin1'), Buffer.alloc(60, 7)]);
    fs.writeFileSync(file, bytes);
    const storage = new FileStorage<Rec>({ directory: sandbox.directory });
    await expect(storage.open()).rejects.toMatchObject({
      code: 'BUFIO_STORAGE_FAILED',
      message: expect.stringContaining('journal format version 1, this version reads 3'),
    });
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });
});
