import { it } from '@jest/globals';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { childProcessPrefix } from './support.js';
import { checkTakeoverOfKilledInstance, standalone } from './shared-checks.js';

const describeRedis = await describeWith('redis');

describeRedis('RedisStorage shared by three processes', () => {
  const prefix = childProcessPrefix('shared');

  it('survivors take over the lease of a process killed mid-batch', async () => {
    await checkTakeoverOfKilledInstance(standalone(REDIS_URL), prefix, 400, 400);
  }, 45_000);
});
