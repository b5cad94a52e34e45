import { afterAll, expect, it } from '@jest/globals';
import { killFixtures } from '../../support/child-process.js';
import { crashLoopFailures, type PoisonPlan, poisonRounds } from '../../support/poison-rounds.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');

describeRedis('RedisStorage with a record that kills its process', () => {
  const prefix = uniquePrefix('crash-loop');
  afterAll(async () => {
    killFixtures();
    await deleteKeys(prefix);
  });

  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    const plan: PoisonPlan = {
      label: 'RedisStorage crash loop',
      storage: { kind: 'redis', url: REDIS_URL, prefix, leaseTimeout: 300 },
      records: 120,
      poison: 57,
      batchSize: 16,
      concurrency: 2,
      maxAttempts: 2,
      // The guard needs maxAttempts + log2(16 × 2) = 7 deaths: room for a few more, then fail.
      maxRounds: 12,
    };
    const outcome = await poisonRounds(plan);
    expect(crashLoopFailures(plan, outcome)).toEqual([]);
    expect(outcome.exits.slice(0, -1).every((exit) => exit === 'SIGKILL')).toBe(true);
    expect(outcome.stderr).toEqual([]);
  }, 180_000);
});
