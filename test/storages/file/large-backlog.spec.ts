import { afterAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FileStorage } from '../../../lib/storages/file/index.js';
import type { BacklogConfig, BacklogStats } from '../../fixtures/file/backlog-child.js';
import { killFixtures, startFixture } from '../../support/child-process.js';
import { seededRandom, testSeed } from '../../support/seeded-random.js';
import { sleep } from '../../support/wait.js';
import { removeDir, tempDir } from './support.js';

/*
 * FileStorage at depth, scaled down from the outage benchmark (`npm run bench -- --suite
 * outage`, 10 million records): a worker that is down while 100 producers push hundreds of
 * thousands of records with durability 'fsync', in a child process that is then killed with
 * SIGKILL. The records wait on disk, not in the heap; every acknowledged one comes back, once.
 */

const RECORDS = 200_000;
/** Every call failing makes the engine cycle through the backlog: fewer, for the test's time. */
const FAILING_RECORDS = 100_000;
const MiB = 1024 * 1024;
/**
 * What the heap may grow by, whatever the backlog: the few MiB of records kept in memory as well,
 * and what is in flight. Keeping every waiting record in the heap (issue 9: 150 to 270 bytes
 * each) takes 30 MiB and more for 200,000.
 */
const HEAP_GROWTH = 24 * MiB;
/**
 * What the heap may grow by while the second half of the records goes in: nothing that follows
 * their number (issue 9: 9 MiB for the second 50,000 of a failing worker, 15 MiB for 100,000 of
 * a blocked one).
 */
const HEAP_DRIFT = 4 * MiB;

interface Item {
  readonly id: number;
  readonly pad: string;
}

const directories: string[] = [];
afterAll(async () => {
  killFixtures();
  for (const directory of directories) await removeDir(directory);
});

/** A directory of the test's own, removed after the file's tests. */
async function newDirectory(): Promise<string> {
  const directory = await tempDir('backlog');
  directories.push(directory);
  return directory;
}

/** Runs the fixture until it has pushed everything (or `killAt` says so), then SIGKILLs it. */
async function pushAndKill(
  config: BacklogConfig,
  killAt?: () => Promise<void>,
): Promise<{ stats: BacklogStats | undefined; acknowledged: number[] }> {
  const child = startFixture('file/backlog-child', { args: [JSON.stringify(config)] });
  await child.waitForLine(/^PUSHING$/, 20_000);
  let stats: BacklogStats | undefined;
  if (killAt) await killAt();
  else {
    const line = await child.waitForLine(/^PUSHED /, 50_000);
    stats = JSON.parse(line.slice('PUSHED '.length)) as BacklogStats;
  }
  child.process.kill('SIGKILL');
  expect((await child.exited).signal).toBe('SIGKILL');
  expect(child.stderr).toEqual([]);
  const log = await fs.readFile(config.log, 'utf8').catch(() => '');
  const acknowledged = log
    .split('\n')
    .slice(0, -1)
    .flatMap((line) => line.split(' ').map(Number));
  return { stats, acknowledged };
}

/** Opens the directory and takes every record it holds: their ids, in the order served. */
async function drain(journal: string): Promise<{ ids: number[]; storage: FileStorage<Item> }> {
  const storage = await FileStorage.open<Item>({ directory: journal });
  const ids: number[] = [];
  let mismatched = 0;
  for (;;) {
    const batch = await storage.reserve(5000, { now: Infinity });
    if (batch.length === 0) break;
    for (const entry of batch) {
      if (entry.record.id !== entry.id) mismatched++;
      ids.push(entry.record.id);
    }
    storage.ack(batch);
  }
  // Ids are issued in push order here, so each record comes back under its own.
  expect(mismatched).toBe(0);
  return { ids, storage };
}

describe('FileStorage with a large backlog (scaled down from the outage benchmark)', () => {
  it('holds 200,000 records of a blocked worker on disk with a flat heap; after a SIGKILL every one comes back, once', async () => {
    const directory = await newDirectory();
    const journal = path.join(directory, 'blocked');
    const { stats, acknowledged } = await pushAndKill({
      directory: journal,
      records: RECORDS,
      worker: 'block',
      log: path.join(directory, 'blocked.log'),
    });
    expect(acknowledged).toHaveLength(RECORDS);
    const { heapBefore, heapHalf, heapAfter, waiting } = stats as BacklogStats;
    // The worker holds a batch or two; everything else waits.
    expect(waiting).toBeGreaterThan(RECORDS - 2000);
    expect(heapAfter - heapBefore).toBeLessThan(HEAP_GROWTH);
    expect(heapAfter - heapHalf).toBeLessThan(HEAP_DRIFT);

    const { ids, storage } = await drain(journal);
    expect(storage.recovery).toMatchObject({ records: RECORDS, damage: [], retries: 0 });
    expect(storage.recovery?.durationMs).toBeGreaterThanOrEqual(0);
    expect(ids).toHaveLength(RECORDS);
    expect(new Set(ids).size).toBe(RECORDS);
    expect(ids.every((id) => id >= 0 && id < RECORDS)).toBe(true);
    await storage.close();
    // Drained: every segment went.
    const left = (await fs.readdir(journal)).filter((name) => name.startsWith('journal-'));
    expect(left).toEqual([]);
  }, 60_000);

  it('a worker that fails every call: the retries wait on disk too, the event loop never stalls, and all survive a SIGKILL', async () => {
    const directory = await newDirectory();
    const journal = path.join(directory, 'failing');
    const { stats, acknowledged } = await pushAndKill({
      directory: journal,
      records: FAILING_RECORDS,
      worker: 'fail',
      log: path.join(directory, 'failing.log'),
      retryDelay: 1000,
    });
    expect(acknowledged).toHaveLength(FAILING_RECORDS);
    const { heapBefore, heapHalf, heapAfter, maxDelayMs, failedCalls } = stats as BacklogStats;
    // Batch after batch failed and was released for a retry, written again at the journal's head.
    expect(failedCalls).toBeGreaterThan(20);
    expect(heapAfter - heapBefore).toBeLessThan(HEAP_GROWTH);
    expect(heapAfter - heapHalf).toBeLessThan(HEAP_DRIFT);
    // A stall detector, not a speed target: 0.2.0 froze for minutes here (issue 9 item 10).
    expect(maxDelayMs).toBeLessThan(2000);

    const { ids, storage } = await drain(journal);
    expect(storage.recovery?.records).toBe(FAILING_RECORDS);
    expect(storage.recovery?.retries).toBeGreaterThan(0);
    expect(ids).toHaveLength(FAILING_RECORDS);
    expect(new Set(ids).size).toBe(FAILING_RECORDS);
    await storage.close();
  }, 60_000);

  it('killed at a random moment while the backlog grows: every acknowledged record comes back, once, and none is made up', async () => {
    const directory = await newDirectory();
    const journal = path.join(directory, 'killed');
    const random = seededRandom(testSeed('FileStorage large-backlog kill'));
    const log = path.join(directory, 'killed.log');
    const { acknowledged } = await pushAndKill(
      { directory: journal, records: RECORDS, worker: 'fail', log, retryDelay: 1000 },
      async () => {
        // Once tens of thousands are in, at a random moment.
        for (;;) {
          const lines = (await fs.readFile(log, 'utf8').catch(() => '')).split('\n').length;
          if (lines * 500 >= 40_000) break;
          await sleep(20);
        }
        await sleep(Math.floor(random() * 1500));
      },
    );
    expect(acknowledged.length).toBeGreaterThanOrEqual(40_000);
    const { ids, storage } = await drain(journal);
    expect(new Set(ids).size).toBe(ids.length);
    const recovered = new Set(ids);
    expect(acknowledged.filter((id) => !recovered.has(id))).toEqual([]);
    // Pushes under way at the kill may be there too, never anything else.
    expect(ids.every((id) => Number.isSafeInteger(id) && id >= 0 && id < RECORDS)).toBe(true);
    await storage.close();
  }, 60_000);
});
