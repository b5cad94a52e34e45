import { afterAll, afterEach, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { UnreadableRecord } from '../../../lib/core/storage.js';
import { RedisStorage, type RedisStorageOptions } from '../../../lib/storages/redis/index.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { TestStorages } from './test-storages.js';

const describeRedis = await describeWith('redis');

interface Rec {
  readonly n: number;
}

const storages = new TestStorages('ids');
const storage = <T = Rec>(options: Partial<RedisStorageOptions<T>> = {}): RedisStorage<T> =>
  storages.open<T>(options);
const clients: Redis[] = [];

function admin(): Redis {
  const client = new Redis(REDIS_URL);
  clients.push(client);
  return client;
}

describeRedis('RedisStorage ids and their scope', () => {
  afterEach(async () => {
    await storages.closeAll();
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(() => storages.deleteAll());

  it('keeps one scope for the life of the stream, shared by every instance', async () => {
    const prefix = storages.prefix();
    const a = storage({ prefix });
    const b = storage({ prefix });
    expect(a.idScope).toBeUndefined();
    await a.append([{ n: 0 }]);
    await a.reserve(1, { now: Date.now() });
    await b.reserve(1, { now: Date.now() });
    expect(a.idScope).toMatch(/^redis:[0-9a-f]{20}$/);
    expect(b.idScope).toBe(a.idScope);
    await a.close();
    const later = storage({ prefix });
    await later.recover();
    expect(later.idScope).toBe(b.idScope);
  });

  it('draws a new scope when the stream is deleted and created again, for every instance', async () => {
    const prefix = storages.prefix();
    const a = storage({ prefix });
    const b = storage({ prefix });
    await a.append([{ n: 0 }]);
    const [first] = await a.reserve(1, { now: Date.now() });
    await a.ack([first as never]);
    await b.reserve(1, { now: Date.now() });
    const before = a.idScope;
    const keysBefore = new Set([`${before}:${first?.id}`]);

    // The stream alone goes (a user's cleanup, an eviction): its ids may start over.
    await admin().del(a.keys.stream);
    await a.append([{ n: 1 }]);
    const [fromA] = await b.reserve(1, { now: Date.now() });
    expect(fromA?.record).toEqual({ n: 1 });
    expect(b.idScope).not.toBe(before);
    expect(keysBefore.has(`${b.idScope}:${fromA?.id}`)).toBe(false);
    await b.ack([fromA as never]);

    // Everything goes (FLUSHDB, a Redis restarted without persistence).
    const scope = b.idScope;
    await admin().del(...Object.values(a.keys));
    await b.append([{ n: 2 }]);
    const [again] = await a.reserve(1, { now: Date.now() });
    expect(again?.record).toEqual({ n: 2 });
    expect(a.idScope).not.toBe(scope);
    expect(a.idScope).not.toBe(before);
  });

  it('keeps the scope when only the consumer group is lost, and delivers what was not acked', async () => {
    const s = storage();
    await s.append([{ n: 0 }, { n: 1 }]);
    const scope = (await s.reserve(10, { now: Date.now() })) && s.idScope;
    await admin().xgroup('DESTROY', s.keys.stream, 'bufio');
    const again = await s.reserve(10, { now: Date.now() });
    expect(again.map((e) => e.record.n)).toEqual([0, 1]);
    expect(s.idScope).toBe(scope);
  });

  it('sets aside unreadable records wherever they wait, and says where', async () => {
    const s = storage({ leaseTimeout: 60_000 });
    await s.append([{ n: 0 }, { n: 1 }]);
    const batch = await s.reserve(2, { now: Date.now() });
    await s.release(batch, 0);
    // Record 1's payload is damaged while it waits for its retry.
    const own = admin();
    await own.hset(s.keys.data, String(batch[1]?.id), '1:{"n": 1');
    const reported: UnreadableRecord[] = [];
    const again = await s.reserve(10, {
      now: Date.now(),
      onUnreadable: (records) => reported.push(...records),
    });
    expect(again.map((e) => e.record.n)).toEqual([0]);
    expect(reported.map((r) => [r.id, r.payload])).toEqual([[batch[1]?.id, '{"n": 1']]);
    expect(reported[0]?.location).toBe(
      `Redis hash "${s.keys.invalid}", field "${String(batch[1]?.id)}"`,
    );
    expect(reported[0]?.cause).toBeInstanceOf(SyntaxError);
    expect(await own.hget(s.keys.invalid, String(batch[1]?.id))).toBe('{"n": 1');
    expect(await own.hexists(s.keys.data, String(batch[1]?.id))).toBe(0);
    expect(await s.size()).toBe(0);
    expect(await s.leasedElsewhere()).toBe(0);
  });
});
