import { afterAll, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { AppConfig } from '../../fixtures/redis/nest-app.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { type Fixture, killFixtures, startFixture } from '../../support/child-process.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { sleep } from '../../support/wait.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const RECORDS = 200;
const BATCH = 20;
const LEASE_TIMEOUT = 3000;

/** The NestJS app of test/fixtures/redis/nest-app.ts, started and listening. */
async function startApp(config: AppConfig): Promise<{ app: Fixture; url: string }> {
  const app = startFixture('redis/nest-app', {
    args: [JSON.stringify(config)],
    env: { NO_COLOR: '1' },
  });
  const line = await app.waitForLine(/^LISTENING /, 20_000);
  return { app, url: line.slice('LISTENING '.length) };
}

/** What the drain summary Nest logged says is left: in storage, and leased by other holders. */
function summaryOf(app: Fixture): { left: number; leasedElsewhere: number } {
  const line = app.lines.find((l) => l.includes('buffer "events" drained'));
  expect(line).toBeDefined();
  const left = /(\d+) left in storage/.exec(line as string);
  const elsewhere = /(\d+) (?:still )?leased by other holders/.exec(line as string);
  return { left: Number(left?.[1]), leasedElsewhere: Number(elsewhere?.[1]) };
}

describeRedis('a NestJS app on RedisStorage, killed in the middle of a batch and restarted', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    killFixtures();
    for (const prefix of prefixes) await deleteKeys(prefix);
  });

  /**
   * Kills the app in the middle of a batch; with `stopEarly`, restarts it and stops it before the
   * dead holder's lease lapsed; restarts it with flushInterval 60 s and stops it once leaseTimeout
   * has passed. Every drain summary must say what Redis holds.
   */
  async function scenario(consumers: {
    first?: string;
    second?: string;
    stopEarly?: boolean;
  }): Promise<void> {
    const prefix = uniquePrefix('nest-restart');
    prefixes.push(prefix);
    const sink = `${prefix}:sink`;
    const base = { url: REDIS_URL, prefix, sink, leaseTimeout: LEASE_TIMEOUT, batchSize: BATCH };
    const redis = new Redis(REDIS_URL);
    const probe = new RedisStorage<unknown>({ url: REDIS_URL, prefix, onError: () => undefined });
    try {
      // 1. Requests answered 202; the worker hangs in the batch that holds the last record.
      const first = await startApp({
        ...base,
        flushInterval: 50,
        hangOn: RECORDS - 1,
        ...(consumers.first ? { consumer: consumers.first } : {}),
      });
      const accepted: number[] = [];
      for (let id = 0; id < RECORDS; id++) {
        const response = await fetch(`${first.url}/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id }),
        });
        if (response.status >= 200 && response.status < 300) accepted.push(id);
      }
      expect(accepted).toHaveLength(RECORDS);
      await first.app.waitForLine(
        (line) => line.startsWith('S ') && line.includes(` ${RECORDS - 1}`),
      );
      first.app.process.kill('SIGKILL');
      await first.app.exited;
      const heldByTheDead = await probe.leasedElsewhere();
      expect(heldByTheDead).toBeGreaterThan(0);
      const truth = async () => ({
        left: await probe.size(),
        leasedElsewhere: await probe.leasedElsewhere(),
      });

      if (consumers.stopEarly) {
        // Stopped before the lease lapsed: the batch is still the dead holder's, and the summary
        // says so rather than "nothing left".
        const early = await startApp({
          ...base,
          flushInterval: 60_000,
          consumer: consumers.second,
        });
        early.app.process.kill('SIGTERM');
        await early.app.exited;
        const summary = summaryOf(early.app);
        expect(summary).toEqual(await truth());
        expect(summary.leasedElsewhere).toBe(heldByTheDead);
      }

      // 2. Restarted with flushInterval 60 s; SIGTERM once leaseTimeout has passed.
      const second = await startApp({
        ...base,
        flushInterval: 60_000,
        ...(consumers.second ? { consumer: consumers.second } : {}),
      });
      await sleep(LEASE_TIMEOUT + 500);
      second.app.process.kill('SIGTERM');
      const exit = await second.app.exited;
      expect(exit.signal ?? exit.code).toBeTruthy();

      // Every record answered 2xx is written.
      const written = new Set((await redis.smembers(sink)).map(Number));
      expect(accepted.filter((id) => !written.has(id))).toEqual([]);
      // The summary told the truth: what it says is left is what Redis holds.
      const summary = summaryOf(second.app);
      expect(summary).toEqual(await truth());
      expect(summary).toEqual({ left: 0, leasedElsewhere: 0 });
    } finally {
      await probe.close();
      redis.disconnect();
    }
  }

  it('takes the dead process’s batch back at once when it ran on this host', async () => {
    await scenario({});
  }, 60_000);

  it('takes it back after leaseTimeout when the holder cannot be proven gone (another host)', async () => {
    // Names of the user's: nothing in them tells where the process ran.
    await scenario({ first: 'replica-a', second: 'replica-b', stopEarly: true });
  }, 60_000);
});
