import { it } from '@jest/globals';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { childProcessPrefix } from './support.js';

const describeRedis = await describeWith('redis');

describeRedis('RedisStorage with a record that kills its process', () => {
  const prefix = childProcessPrefix('crash-loop');

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
