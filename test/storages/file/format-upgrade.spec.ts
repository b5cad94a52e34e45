import { afterEach, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { T0, range, removeDir, segmentFiles, tempDir, type Rec } from './support.js';

/*
 * Journals written by BufIO 0.2.0 (format 2): `fixtures/format-2` was written by that version
 * (records 0..99 in 1 KiB segments; 0..39 acknowledged, 40..49 released for a retry at T0 + 5000,
 * then the process stopped as by a crash). Upgrading loses nothing: the segments are read as they
 * are and replaced as they empty. A format-2 segment that turns up later is not replayed.
 */

const FIXTURE = fileURLToPath(new URL('./fixtures/format-2', import.meta.url));

let directory = '';
afterEach(async () => {
  if (directory) await removeDir(directory);
  directory = '';
});

async function copyFixture(): Promise<string> {
  directory = await tempDir('upgrade');
  for (const name of fs.readdirSync(FIXTURE)) {
    fs.copyFileSync(path.join(FIXTURE, name), path.join(directory, name));
    fs.chmodSync(path.join(directory, name), 0o600);
  }
  return directory;
}

describe('FileStorage: journals of BufIO 0.2.0 (format 2)', () => {
  it('opens with every record, its attempts and retry time; the old segments go as they empty', async () => {
    await copyFixture();
    const legacy = await segmentFiles(directory);
    expect(legacy.length).toBeGreaterThan(2);
    const storage = await FileStorage.open<Rec>({ directory, segmentBytes: 1024 });
    expect(storage.recovery).toMatchObject({
      identity: 'created',
      legacySegments: legacy.length,
      records: 60,
      retries: 10,
      damage: [],
      ignored: [],
    });
    const fresh = await storage.reserve(100, { now: T0 });
    expect(fresh.map((entry) => [entry.record.n, entry.attempts, entry.deliveries])).toEqual(
      range(50, 100).map((n) => [n, 0, 1]),
    );
    expect(fresh[0]?.record).toEqual({ n: 50, text: 'record 50' });
    const retries = await storage.reserve(100, { now: T0 + 5000 });
    expect(retries.map((entry) => [entry.record.n, entry.attempts, entry.deliveries])).toEqual(
      range(40, 50).map((n) => [n, 1, 2]),
    );
    // Ids go on from the old journal's: a new record takes none of theirs.
    const [newId] = await storage.append([{ n: 1000, text: 'new' }]);
    expect(Number(newId)).toBeGreaterThan(99);
    storage.ack(fresh.slice(0, 30));
    storage.release([...fresh.slice(30), ...retries], T0);
    await storage.close();

    const next = await FileStorage.open<Rec>({ directory, segmentBytes: 1024 });
    expect(next.recovery).toMatchObject({ identity: 'read', records: 31, damage: [] });
    const all = await next.reserve(1000, { now: T0 });
    expect(all.map((entry) => entry.record.n).sort((a, b) => a - b)).toEqual([
      ...range(40, 50),
      ...range(80, 100),
      1000,
    ]);
    next.ack(all);
    await next.close();
    // Emptied: no segment is left, old or new; the id file stays.
    expect(await segmentFiles(directory)).toEqual([]);
    expect(fs.readdirSync(directory)).toContain('journal.id');
  });

  it('a format-2 segment that turns up after the upgrade is not replayed: moved to quarantine and reported', async () => {
    directory = await tempDir('upgrade');
    const storage = await FileStorage.open<Rec>({ directory });
    await storage.append([{ n: 1, text: 'one' }]);
    await storage.close();
    const planted = 'journal-000000000006.log';
    fs.copyFileSync(path.join(FIXTURE, planted), path.join(directory, planted));
    const next = await FileStorage.open<Rec>({ directory, onError: () => undefined });
    const batch = await next.reserve(100, { now: Infinity });
    expect(batch.map((entry) => entry.record.n)).toEqual([1]);
    expect(next.recovery?.ignored).toEqual([
      {
        file: planted,
        reason: 'foreign',
        detail: 'a format-2 segment that was not in the directory when it was upgraded',
        quarantined: expect.stringContaining(`quarantine-${planted}-`),
      },
    ]);
    await next.close();
  });
});
