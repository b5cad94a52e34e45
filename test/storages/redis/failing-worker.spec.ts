import { afterAll, expect, it } from '@jest/globals';
import { BufIO } from '../../../lib/core/bufio.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { LoopStalls } from '../../support/loop-stalls.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { waitFor } from '../../support/wait.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const RECORDS = 100_000;
const PRODUCERS = 100;
/**
 * A stall of the engine (work over the whole backlog in one turn) is seconds. Measured as time the
 * process held its loop (see `LoopStalls`), not as the loop's lateness, which on a loaded,
 * shared machine includes time the process was not scheduled at all (797 ms seen).
 */
const STALL_MS = 500;

describeRedis('RedisStorage under a worker that fails every call, with pushes flowing', () => {
  const prefix = uniquePrefix('failing-worker');
  afterAll(() => deleteKeys(prefix));

  it('keeps the event loop turning while the backlog grows, loses nothing, and drains once the worker is back', async () => {
    const storage = new RedisStorage<number>({ url: REDIS_URL, prefix });
    let failing = true;
    const processed = new Set<number>();
    const bufio = new BufIO<number>({
      storage,
      batchSize: 500,
      flushInterval: 10,
      concurrency: 2,
      maxBufferedRecords: 10 * RECORDS,
      retry: { maxAttempts: 1_000_000, initialDelay: 1, maxDelay: 20 },
      worker: (records) => {
        if (failing) throw new Error('the database is down');
        for (const n of records) processed.add(n);
      },
    });
    bufio.on('error', () => undefined);
    bufio.start();

    const stalls = new LoopStalls();
    stalls.start();
    let next = 0;
    await Promise.all(
      Array.from({ length: PRODUCERS }, async () => {
        while (next < RECORDS) await bufio.push(next++);
      }),
    );
    // Every call failed: all of it waits in Redis, most of it for a retry.
    await waitFor('batches to fail', () => bufio.stats().failed > RECORDS / 2, 30_000);
    const loop = stalls.stop();
    expect(processed.size).toBe(0);
    expect(await storage.size()).toBeGreaterThan(RECORDS / 2);

    failing = false;
    await waitFor('the backlog to drain', () => processed.size === RECORDS, 60_000);
    const summary = await bufio.stop();
    expect(summary.remaining).toBe(0);
    process.stdout.write(
      `redis failing-worker test: ${RECORDS} records pushed while every call failed; ` +
        `event loop held at most ${loop.maxBusyMs.toFixed(0)} ms (late at most ` +
        `${loop.maxLateMs.toFixed(0)} ms, ${loop.ticks} ticks)\n`,
    );
    expect(loop.maxBusyMs).toBeLessThan(STALL_MS);
  }, 120_000);
});
