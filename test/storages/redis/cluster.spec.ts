import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BufIO } from '../../../lib/core/bufio.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { storageConformanceCases } from '../../../lib/testing/index.js';
import { killFixtures } from '../../support/child-process.js';
import { describeWith } from '../../support/services.js';
import { drain, Layout020 } from './layout-020.js';
import { OwnRedisCluster } from './own-redis-cluster.js';
import { uniquePrefix } from './redis-keys.js';
import { checkCrashRounds, checkTakeoverOfKilledInstance } from './shared-checks.js';
import { redisConformance } from './test-storages.js';

// A cluster of the test's own; where the shared Redis runs, redis-server is installed: gate on it.
const describeRedis = await describeWith('redis');
const LEASE_TIMEOUT = 200;
/** A prefix without a hash tag, as 0.2.0 users wrote them: the storage must tag it itself. */
const untagged = (label: string): string => uniquePrefix(label).replace(/[{}]/g, '');

describeRedis('RedisStorage on a Redis Cluster of three masters', () => {
  let cluster: OwnRedisCluster;

  beforeAll(async () => {
    cluster = await OwnRedisCluster.start();
  }, 30_000);

  afterAll(async () => {
    killFixtures();
    await cluster?.stop();
  });

  const target = () => ({
    url: `redis://${cluster.nodes[0]}`,
    cluster: cluster.nodes,
    client: () => cluster.client(),
  });

  it('spreads buffers over the masters, each buffer in one slot', async () => {
    const client = cluster.client();
    const slots = new Set<number>();
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const storage = new RedisStorage<number>({ client, name });
      const keySlots = await Promise.all(
        Object.values(storage.keys).map((key) => client.cluster('KEYSLOT', key)),
      );
      expect(new Set(keySlots).size).toBe(1);
      slots.add(keySlots[0]!);
      await storage.close();
    }
    expect(slots.size).toBeGreaterThan(1);
  });

  it('processes what a buffer over a Cluster client is pushed, and drains to nothing', async () => {
    const client = cluster.client();
    const storage = new RedisStorage<number>({ client, prefix: untagged('cluster-bufio') });
    const seen: number[] = [];
    const bufio = new BufIO<number>({
      storage,
      batchSize: 50,
      flushInterval: 10,
      worker: (records) => void seen.push(...records),
    });
    const errors: Error[] = [];
    bufio.on('error', (error) => errors.push(error));
    bufio.start();
    await Promise.all(Array.from({ length: 500 }, (_, n) => bufio.push(n)));
    const summary = await bufio.stop({ timeout: 10_000 });
    expect(errors).toEqual([]);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(summary).toMatchObject({ remaining: 0, timedOut: false });
    expect(await client.xlen(storage.keys.stream)).toBe(0);
  });

  it('wakes a watcher, on a connection of its own, when another instance appends', async () => {
    const prefix = untagged('cluster-watch');
    const idle = new RedisStorage<number>({ client: cluster.client(), prefix });
    const other = new RedisStorage<number>({ client: cluster.client(), prefix });
    await idle.reserve(10, { now: Date.now() });
    let woken = 0;
    const stop = idle.watch(() => void woken++);
    await other.append([1]);
    const deadline = Date.now() + 5000;
    while (woken === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(woken).toBeGreaterThan(0);
    expect((await idle.reserve(10, { now: Date.now() })).map((e) => e.record)).toEqual([1]);
    stop();
    await idle.close();
    await other.close();
  });

  describe('conformance', () => {
    const cases = storageConformanceCases(
      redisConformance({
        base: untagged('cluster-conformance'),
        leaseTimeout: LEASE_TIMEOUT,
        client: () => cluster.client(),
      }),
    );
    for (const testCase of cases) it(testCase.name, () => testCase.run(), 15_000);
  });

  it('processes every acknowledged push across killed processes', async () => {
    await checkCrashRounds(
      target(),
      untagged('cluster-crash'),
      'RedisStorage crash test on a cluster',
      3,
    );
  }, 60_000);

  it('processes the records 0.2.0 appended but could never reserve there (CROSSSLOT)', async () => {
    const client = cluster.client();
    const old = new Layout020(client, 'bufio:orders');
    for (let n = 0; n < 2500; n++) await old.append(n);
    const storage = new RedisStorage<{ n: number }>({ client, name: 'orders' });
    await storage.append([{ n: 2500 }]);
    expect(await storage.recover()).toBe(2500);
    const records = await drain(storage, Date.now());
    expect(records.map((r) => r.record.n).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 2501 }, (_, n) => n),
    );
    expect(await client.xlen(old.key('stream'))).toBe(0);
    await storage.close();
  });

  it('two survivors take over the lease of a process killed mid-batch', async () => {
    await checkTakeoverOfKilledInstance(target(), untagged('cluster-shared'), 200, 400);
  }, 45_000);
});
