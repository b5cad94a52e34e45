import { it } from '@jest/globals';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { childProcessPrefix } from './support.js';
import { checkCrashRounds, standalone } from './shared-checks.js';

const describeRedis = await describeWith('redis');

describeRedis('RedisStorage under SIGKILL', () => {
  const prefix = childProcessPrefix('crash');

  it('processes every acknowledged push at least once across killed processes', async () => {
    await checkCrashRounds(standalone(REDIS_URL), prefix, 'RedisStorage crash test', 5);
  }, 60_000);
});
