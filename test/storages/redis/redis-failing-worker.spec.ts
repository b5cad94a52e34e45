import { afterAll, expect, it } from '@jest/globals';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BufIO } from '../../../lib/core/bufio.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { waitFor } from '../../support/wait.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const RECORDS = 100_000;
const PRODUCERS = 100;
/** A stall is seconds; a busy, shared machine adds tens of milliseconds now and then. */
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

    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let next = 0;
    await Promise.all(
      Array.from({ length: PRODUCERS }, async () => {
        while (next < RECORDS) await bufio.push(next++);
      }),
    );
    // Every call failed: all of it waits in Redis, most of it for a retry.
    await waitFor('batches to fail', () => bufio.stats().failed > RECORDS / 2, 30_000);
    delay.disable();
    const maxDelayMs = delay.max / 1e6;
    expect(processed.size).toBe(0);
    expect(await storage.size()).toBeGreaterThan(RECORDS / 2);

    failing = false;
    await waitFor('the backlog to drain', () => processed.size === RECORDS, 60_000);
    const summary = await bufio.stop();
    expect(summary.remaining).toBe(0);
    process.stdout.write(
      `redis failing-worker test: ${RECORDS} records pushed while every call failed; ` +
        `event loop delay max ${maxDelayMs.toFixed(0)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms\n`,
    );
    expect(maxDelayMs).toBeLessThan(STALL_MS);
  }, 120_000);
});
