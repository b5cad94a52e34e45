import { afterAll, describe, it } from '@jest/globals';
import { describeStorageConformance } from '../../../lib/testing/index.js';
import { describeWith } from '../../support/services.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';
import { redisConformance } from './test-storages.js';

const describeRedis = await describeWith('redis');
const base = uniquePrefix('conformance');

describeRedis('RedisStorage (conformance)', () => {
  afterAll(() => deleteKeys(base));

  describeStorageConformance(
    'RedisStorage',
    redisConformance({ base, leaseTimeout: 200, cleanup: deleteKeys }),
    { describe, it },
  );
});
