import { afterAll, describe, it } from '@jest/globals';
import type { Storage } from '../../../lib/core/storage.js';
import { RedisStorage } from '../../../lib/storages/redis/index.js';
import { type ConformanceRecord, describeStorageConformance } from '../../../lib/testing/index.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

const describeRedis = await describeWith('redis');
const base = uniquePrefix('conformance');
const LEASE_TIMEOUT = 200;
const prefixes = new Map<Storage<ConformanceRecord>, string>();
let count = 0;

function open(prefix: string): RedisStorage<ConformanceRecord> {
  // Renewal failures of a storage whose connection a test cut are expected: keep them quiet.
  const storage = new RedisStorage<ConformanceRecord>({
    url: REDIS_URL,
    prefix,
    leaseTimeout: LEASE_TIMEOUT,
    onError: () => undefined,
  });
  prefixes.set(storage, prefix);
  return storage;
}

describeRedis('RedisStorage (conformance)', () => {
  afterAll(() => deleteKeys(base));

  describeStorageConformance(
    'RedisStorage',
    {
      create: () => open(`${base}:${count++}`),
      reopen: (previous, crashed) => {
        // A crash, as far as Redis can tell: the connection drops and lease renewal stops, with
        // records still leased; close() is not called.
        if (crashed) (previous as RedisStorage<ConformanceRecord>).client.disconnect();
        return open(prefixes.get(previous) as string);
      },
      destroy: async (storages) => {
        for (const storage of storages) await storage.close();
        for (const storage of storages) await deleteKeys(prefixes.get(storage) as string);
      },
      leaseWaitMs: LEASE_TIMEOUT + 2000,
      // A payload that strict JSON refuses, appended behind the storage's back.
      plantUnreadable: async (storage) => {
        const redis = storage as RedisStorage<ConformanceRecord>;
        await redis.client.xadd(redis.keys.stream, '*', 'd', '{"n": 1, "text": "cut sh');
      },
    },
    { describe, it },
  );
});
