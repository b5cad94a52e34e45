import { afterAll, it } from '@jest/globals';
import { killFixtures } from '../../support/child-process.js';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
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
    await expectPoisonIsolated(
      poisonPlan('RedisStorage crash loop', {
        kind: 'redis',
        url: REDIS_URL,
        prefix,
        leaseTimeout: 300,
      }),
    );
  }, 180_000);
});
