import { afterAll, expect, it } from '@jest/globals';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { type Fixture, killFixtures, startFixture, tagged } from '../../support/child-process.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const LEASE_TIMEOUT = 400;
const RECORDS = 400;

describeRedis('RedisStorage shared by three processes', () => {
  const prefix = uniquePrefix('shared');
  afterAll(async () => {
    killFixtures();
    await deleteKeys(prefix);
  });

  it('survivors take over the lease of a process killed mid-batch', async () => {
    const start = (workMs: number): Fixture =>
      startFixture('redis/shared-instance', {
        args: [JSON.stringify({ url: REDIS_URL, prefix, workMs, leaseTimeout: LEASE_TIMEOUT })],
      });
    // The slow one starts first, so that it is the first to lease a batch.
    const slow = start(60_000);
    await slow.waitForLine((line) => line.startsWith('READY'), 10_000);
    const survivors = [start(5), start(5)];
    await Promise.all(
      survivors.map((c) => c.waitForLine((line) => line.startsWith('READY'), 10_000)),
    );

    const producer = new RedisStorage<string>({ url: REDIS_URL, prefix });
    const pushed: string[] = [];
    for (let burst = 0; burst < RECORDS / 50; burst++) {
      const ids = Array.from({ length: 50 }, (_, i) => `rec-${burst * 50 + i}`);
      await Promise.all(ids.map((id) => producer.append([id])));
      pushed.push(...ids);
    }
    await producer.close();

    const started = await slow.waitForLine((line) => line.startsWith('S '), 10_000);
    const leased = started.slice(2).split(' ');
    slow.process.kill('SIGKILL');
    await slow.exited;

    const deadline = Date.now() + 20_000;
    const processedBySurvivors = (): Set<string> =>
      new Set(survivors.flatMap((c) => tagged(c.lines, 'P')));
    while (Date.now() < deadline && pushed.some((id) => !processedBySurvivors().has(id))) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const done = processedBySurvivors();
    expect(pushed.filter((id) => !done.has(id))).toEqual([]);
    expect(leased.length).toBeGreaterThan(0);
    expect(leased.filter((id) => !done.has(id))).toEqual([]);
    expect(tagged(slow.lines, 'P')).toEqual([]);
    // Both survivors did work: the buffer really was shared.
    for (const survivor of survivors) expect(tagged(survivor.lines, 'P').length).toBeGreaterThan(0);
    const all = survivors.flatMap((c) => tagged(c.lines, 'P'));
    process.stdout.write(
      `redis multi-instance test: ${pushed.length} records, ${leased.length} taken over from the killed instance, ` +
        `${all.length - done.size} processed more than once\n`,
    );

    for (const survivor of survivors) survivor.process.kill('SIGTERM');
    const exits = await Promise.all(survivors.map((c) => c.exited));
    expect(exits).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
  }, 45_000);
});
