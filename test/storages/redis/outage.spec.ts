import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufIO } from '../../../lib/core/bufio.js';
import { StorageUnavailableError } from '../../../lib/core/errors.js';
import { Redis } from 'ioredis';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { describeWith } from '../../support/services.js';
import { freePort } from './free-port.js';
import { OwnRedisServer } from './own-redis-server.js';
import { sleep, waitFor } from '../../support/wait.js';

// The shared Redis is not used, but where it runs, redis-server is installed: gate on it.
const describeRedis = await describeWith('redis');

describeRedis('RedisStorage while its Redis is down', () => {
  let dir: string;
  let server: OwnRedisServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bufio-redis-outage-'));
    server = new OwnRedisServer(await freePort(), dir);
    await server.start();
  });

  afterAll(async () => {
    await server.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads its scripts again when Redis forgot them (a restart, SCRIPT FLUSH)', async () => {
    const storage = new RedisStorage<number>({ url: server.url, prefix: 'noscript' });
    const admin = new Redis(server.url);
    try {
      const forget = () => admin.script('FLUSH');
      await forget();
      const ids = await Promise.all([storage.append([0, 1]), storage.append([2])]);
      expect(ids.flat()).toHaveLength(3);
      await forget();
      const batch = await storage.reserve(10, { now: Date.now() });
      expect(batch.map((e) => e.record)).toEqual([0, 1, 2]);
      await forget();
      await storage.release(batch.slice(0, 1), 0);
      await forget();
      await storage.ack(batch.slice(1));
      await forget();
      const retried = await storage.reserve(10, { now: Date.now() });
      expect(retried.map((e) => [e.record, e.attempts])).toEqual([[0, 1]]);
      await forget();
      await storage.ack(retried);
      await forget();
      expect(await storage.recover()).toBe(0);
      expect(await storage.size()).toBe(0);
      expect(await admin.xlen(storage.keys.stream)).toBe(0);
    } finally {
      admin.disconnect();
      await storage.close();
    }
  });

  it('rejects or blocks pushes, keeps retrying, and loses nothing acknowledged', async () => {
    // Redis is SIGKILLed, not shut down: with appendfsync always, what it acknowledged is on disk.
    const options = {
      url: server.url,
      prefix: 'outage',
      leaseTimeout: 500,
      commandTimeout: 1000,
      // Reconnect quickly once the server is back; the default backs off up to 5 s.
      redisOptions: { retryStrategy: () => 50 },
      onError: () => undefined,
    };
    const storage = new RedisStorage<number>(options);
    const blocking = new RedisStorage<number>({
      ...options,
      onUnavailable: 'block',
      unavailableTimeout: 20_000,
    });
    const processed: number[] = [];
    const errors: Error[] = [];
    // One batch is held in the worker while Redis goes down, so that its ack meets the outage.
    let held: number[] | undefined;
    let releaseHeld!: () => void;
    const heldDone = new Promise<void>((resolve) => (releaseHeld = resolve));
    const bufio = new BufIO<number>({
      storage,
      batchSize: 10,
      flushInterval: 20,
      retry: { initialDelay: 10, maxDelay: 200 },
      worker: async (records) => {
        await sleep(5);
        if (held === undefined && processed.length >= 60) {
          held = [...records];
          await heldDone;
        }
        processed.push(...records);
      },
    });
    bufio.on('error', (error) => errors.push(error));
    bufio.start();

    const acknowledged: number[] = [];
    const push = (n: number): Promise<void> => bufio.push(n).then(() => void acknowledged.push(n));
    await Promise.all(Array.from({ length: 300 }, (_, n) => push(n)));
    await blocking.size(); // connected before the outage, as a running app would be
    expect(acknowledged).toHaveLength(300);

    // Kill it mid-stream: some records processed, a batch in the worker, the rest waiting.
    await waitFor('a batch to be held in the worker', () => held !== undefined, 5000);
    await server.stop('SIGKILL');
    await waitFor('the client to see the outage', () => storage.client.status !== 'ready', 5000);
    const unprocessedAtKill = 300 - new Set(processed).size;
    releaseHeld();
    await waitFor(
      'a failed ack',
      () => errors.some((e) => /ack of 10 record/.test(e.message)),
      5000,
    );

    // Reject: promptly, with a typed error.
    const started = Date.now();
    const refused = await bufio.push(1000).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StorageUnavailableError);
    expect(Date.now() - started).toBeLessThan(2000);

    // Block: the append waits for Redis instead.
    let blockedSettled = false;
    const blocked = blocking.append([2000]).finally(() => {
      blockedSettled = true;
    });

    // The engine reports the failures of its polls, and keeps polling.
    await waitFor('the engine to report an error', () => errors.length > 0, 5000);
    const reported = errors.length;
    await sleep(400);
    expect(errors.length).toBeGreaterThan(reported);
    expect(errors.some((error) => error instanceof StorageUnavailableError)).toBe(true);
    expect(blockedSettled).toBe(false);

    await server.start();
    const [blockedId] = await blocked;
    expect(typeof blockedId).toBe('string');
    await Promise.all(Array.from({ length: 50 }, (_, i) => push(300 + i)));

    const expected = [...acknowledged, 2000];
    await waitFor(
      'every acknowledged record to be processed',
      () => expected.every((n) => processed.includes(n)),
      15_000,
    );
    expect(processed).not.toContain(1000);
    // Its ack failed during the outage and was made again once Redis was back, before the
    // lease could expire and the batch be processed a second time.
    for (const n of held as number[]) expect(processed.filter((m) => m === n)).toHaveLength(1);
    const duplicates = processed.length - new Set(processed).size;
    process.stdout.write(
      `redis outage test: ${unprocessedAtKill} of 300 records unprocessed when Redis was killed; ` +
        `${expected.length} acknowledged, all processed, ${duplicates} more than once; ` +
        `${errors.length} errors reported during the outage\n`,
    );

    const summary = await bufio.stop();
    expect(summary.remaining).toBe(0);
    await blocking.close();
  }, 40_000);
});
