import { RedisStorage, type RedisStorageOptions } from '../../../lib/storages/redis/index.js';
import type { RedisClient } from '../../../lib/storages/redis/lua-script.js';
import type { ConformanceRecord, StorageConformanceOptions } from '../../../lib/testing/index.js';
import { REDIS_URL } from '../../support/services.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

/**
 * The storages of one spec on the shared Redis: each on a prefix of its own under one base
 * (`uniquePrefix(label)`), closed after each test (`closeAll`), their keys deleted after the spec
 * (`deleteAll`). Errors no call returns are kept quiet unless a test passes `onError`.
 */
export class TestStorages {
  readonly base: string;
  private count = 0;
  private readonly opened: RedisStorage<unknown>[] = [];

  constructor(label: string) {
    this.base = uniquePrefix(label);
  }

  /** A prefix under the base that no other storage of the spec has. */
  prefix(): string {
    return `${this.base}:${this.count++}`;
  }

  open<T>(options: Partial<RedisStorageOptions<T>> = {}): RedisStorage<T> {
    const storage = new RedisStorage<T>({
      ...(options.client ? {} : { url: REDIS_URL }),
      prefix: this.prefix(),
      onError: () => undefined,
      ...options,
    });
    this.opened.push(storage as RedisStorage<unknown>);
    return storage;
  }

  async closeAll(): Promise<void> {
    for (const storage of this.opened.splice(0)) await storage.close();
  }

  deleteAll(): Promise<void> {
    return deleteKeys(this.base);
  }
}

/**
 * The conformance harness of RedisStorage: a storage per test on its own prefix under `base`,
 * reopened (after a crash: its connection dropped, no close) over the same prefix, and an
 * unreadable payload planted behind its back. `cleanup` runs on each storage's prefix after the test.
 */
export function redisConformance(options: {
  readonly base: string;
  readonly leaseTimeout: number;
  client?(): RedisClient;
  cleanup?(prefix: string): Promise<void>;
}): StorageConformanceOptions {
  const prefixes = new Map<unknown, string>();
  let count = 0;
  const open = (prefix: string): RedisStorage<ConformanceRecord> => {
    // Renewal failures of a storage whose connection a test cut are expected: keep them quiet.
    const storage = new RedisStorage<ConformanceRecord>({
      ...(options.client ? { client: options.client() } : { url: REDIS_URL }),
      prefix,
      leaseTimeout: options.leaseTimeout,
      onError: () => undefined,
    });
    prefixes.set(storage, prefix);
    return storage;
  };
  return {
    create: () => open(`${options.base}:${count++}`),
    reopen: (previous, crashed) => {
      // A crash, as far as Redis can tell: the connection drops and lease renewal stops, with
      // records still leased; close() is not called.
      if (crashed) (previous as RedisStorage<ConformanceRecord>).client.disconnect();
      return open(prefixes.get(previous) as string);
    },
    destroy: async (storages) => {
      for (const storage of storages) await storage.close();
      for (const storage of storages) await options.cleanup?.(prefixes.get(storage) as string);
    },
    leaseWaitMs: options.leaseTimeout + 2000,
    // A payload that strict JSON refuses, appended behind the storage's back.
    plantUnreadable: async (storage) => {
      const redis = storage as RedisStorage<ConformanceRecord>;
      await redis.client.xadd(redis.keys.stream, '*', 'd', '{"n": 1, "text": "cut sh');
    },
  };
}
