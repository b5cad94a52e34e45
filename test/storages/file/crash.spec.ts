import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { startFixture } from '../../support/child-process.js';
import { crashAndDrain } from '../../support/crash-rounds.js';
import { useChildDirectory } from './support.js';

const ROUNDS = 8;

const childDirectory = useChildDirectory('crash');

describe('FileStorage under SIGKILL', () => {
  it('loses no acknowledged record across random kills, and drains them all after', async () => {
    const directory = await childDirectory();
    const journal = path.join(directory, 'journal');
    const outcome = await crashAndDrain({
      label: 'FileStorage crash test',
      rounds: ROUNDS,
      // Small segments, so that rotation, deletion and carrying forward all happen under the
      // kills; every third round without fsync (what a killed process wrote survives it).
      storage: (round) => ({
        kind: 'file',
        directory: journal,
        durability: round % 3 === 2 ? 'none' : 'fsync',
        segmentBytes: 16 * 1024,
      }),
      killAfterMs: [100, 800],
      producers: 40,
    });
    expect(outcome.exits).toEqual([...Array<string>(ROUNDS).fill('SIGKILL'), 'exit 0']);
    // A kill may tear the write under way: its cut at the next open is reported, and is the only
    // thing any process may report.
    const torn =
      /^storage: FileStorage found damage in journal .*\(incomplete\), cut, kept in [^;]*$/;
    expect(outcome.stderr.filter((line) => !torn.test(line))).toEqual([]);
    // stop() right after start() drained every record the journal held.
    expect(outcome.drain).toMatchObject({ remaining: 0, inFlight: 0, timedOut: false });
    expect(outcome.acknowledged.size).toBeGreaterThan(ROUNDS * 100);
    expect(outcome.lost).toEqual([]);
    // Every processed id was pushed by some round (no record made up or mangled).
    for (const id of outcome.processed.keys()) {
      expect(Number.isSafeInteger(id) && id % 10_000_000 < 5_000_000).toBe(true);
    }

    // The drain left the journal empty: a new open finds nothing to do.
    const after = await FileStorage.open<unknown>({ directory: journal });
    expect(after.size()).toBe(0);
    await after.close();
  }, 60_000);

  it('counts a delivery for every lease a SIGKILL ended, and keeps ids and idScope', async () => {
    const directory = await childDirectory();
    const journal = path.join(directory, 'leases');
    const leaseAndDie = async (append: number, reserve: number) => {
      const child = startFixture('file/lease-child', {
        args: [journal, String(append), String(reserve)],
      });
      const line = await child.waitForLine(/^LEASED /, 15_000);
      child.process.kill('SIGKILL');
      expect((await child.exited).signal).toBe('SIGKILL');
      return JSON.parse(line.slice('LEASED '.length)) as {
        ids: number[];
        deliveries: number[];
        scope: string;
      };
    };
    const first = await leaseAndDie(10, 4);
    expect(first.deliveries).toEqual([1, 1, 1, 1]);
    const second = await leaseAndDie(0, 2);
    expect(second).toEqual({ ids: first.ids.slice(0, 2), deliveries: [2, 2], scope: first.scope });

    const storage = await FileStorage.open<{ n: number }>({ directory: journal });
    const all = await storage.reserve(100, { now: Date.now() });
    expect(storage.idScope).toBe(first.scope);
    expect(all.map((entry) => [entry.id, entry.attempts, entry.deliveries])).toEqual([
      ...first.ids.slice(0, 2).map((id) => [id, 0, 3]),
      ...first.ids.slice(2).map((id) => [id, 0, 2]),
      ...[4, 5, 6, 7, 8, 9].map((n) => [n, 0, 1]),
    ]);
    await storage.close();
  }, 60_000);
});
