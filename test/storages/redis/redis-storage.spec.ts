import { afterAll, afterEach, describe, expect, it, jest } from '@jest/globals';
import { Redis } from 'ioredis';
import { BufIO } from '../../../lib/core/bufio.js';
import {
  InvalidOptionsError,
  RecordTooLargeError,
  SerializationError,
  StorageUnavailableError,
} from '../../../lib/core/errors.js';
import type { StoredRecord } from '../../../lib/core/storage.js';
import {
  RedisStorage,
  type RedisStorageOptions,
  type Serializer,
} from '../../../lib/storages/redis/index.js';
import fc from 'fast-check';
import { hashedPart } from '../../../lib/storages/redis/buffer-keys.js';
import { compareIds } from '../../../lib/storages/redis/held-leases.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { sleep } from '../../support/wait.js';
import { freePort } from './free-port.js';
import { deleteKeys, uniquePrefix } from './redis-keys.js';

interface Rec {
  n: number;
  text?: string;
}

const base = uniquePrefix('unit');
let count = 0;
const opened: RedisStorage<unknown>[] = [];
const clients: Redis[] = [];

function storage<T = Rec>(options: Partial<RedisStorageOptions<T>> = {}): RedisStorage<T> {
  const created = new RedisStorage<T>({
    ...(options.client ? {} : { url: REDIS_URL }),
    prefix: `${base}:${count++}`,
    onError: () => undefined,
    ...options,
  });
  opened.push(created as RedisStorage<unknown>);
  return created;
}

function client(url = REDIS_URL): Redis {
  const created = new Redis(url);
  clients.push(created);
  return created;
}

function numbers(batch: readonly StoredRecord<Rec>[]): number[] {
  return batch.map((entry) => entry.record.n);
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const c of clients.splice(0)) c.disconnect();
});

describe('RedisStorage options', () => {
  const fakeClient = {
    pipeline() {},
    evalsha() {},
    eval() {},
    xadd() {},
    on() {},
    removeListener() {},
  } as unknown as Redis;

  it.each<[string, Record<string, unknown>]>([
    ['url', { url: undefined }],
    ['url', { url: 'http://localhost:6379' }],
    ['url', { url: 42 }],
    ['client', { url: undefined, client: { xadd() {} } }],
    ['client', { client: fakeClient }],
    ['prefix', { prefix: 'has space' }],
    ['prefix', { prefix: '' }],
    ['prefix', { prefix: 42 }],
    ['name', { name: '' }],
    ['group', { group: 'tab\there' }],
    ['leaseTimeout', { leaseTimeout: -1 }],
    ['leaseTimeout', { leaseTimeout: 10 }],
    ['leaseTimeout', { leaseTimeout: 1.5 }],
    ['maxRecordBytes', { maxRecordBytes: 0 }],
    ['onUnavailable', { onUnavailable: 'wait' }],
    ['unavailableTimeout', { onUnavailable: 'block', unavailableTimeout: -5 }],
    ['commandTimeout', { commandTimeout: 0 }],
    ['serializer', { serializer: { serialize: JSON.stringify } }],
    ['onError', { onError: 'log' }],
    ['unavailableTimeout', { unavailableTimeout: 1000 }],
    ['redisOptions', { url: undefined, client: fakeClient, redisOptions: { db: 1 } }],
    ['leaseTimout', { leaseTimout: 1000 }],
    ['redis', { redis: REDIS_URL }],
  ])('refuses a bad %s with InvalidOptionsError naming it', (option, bad) => {
    const build = (): unknown =>
      new RedisStorage({ url: REDIS_URL, ...bad } as unknown as RedisStorageOptions<Rec>);
    expect(build).toThrow(InvalidOptionsError);
    try {
      build();
    } catch (error) {
      expect((error as InvalidOptionsError).option).toBe(option);
      expect((error as InvalidOptionsError).code).toBe('BUFIO_INVALID_OPTIONS');
      expect((error as Error).message).toContain(`"${option}"`);
    }
  });

  it('refuses options that are not an object', () => {
    expect(() => new RedisStorage(null as unknown as RedisStorageOptions<Rec>)).toThrow(
      InvalidOptionsError,
    );
  });

  it('puts every key of a buffer under one hash tag: the name, the prefix, or the prefix wrapped', async () => {
    const lazy = { redisOptions: { lazyConnect: true } };
    const named = new RedisStorage<Rec>({ url: REDIS_URL, name: 'events', ...lazy });
    expect(named.keys.stream).toBe('bufio:{events}:stream');
    expect(named.keys.retry).toBe('bufio:{events}:retry');
    const tagged = new RedisStorage<Rec>({ url: REDIS_URL, prefix: 'app:{q1}', ...lazy });
    expect(tagged.keys.lease).toBe('app:{q1}:lease');
    const wrapped = new RedisStorage<Rec>({ url: REDIS_URL, prefix: 'app:q1', ...lazy });
    expect(wrapped.keys.meta).toBe('{app:q1}:meta');
    for (const s of [named, tagged, wrapped]) {
      expect(new Set(Object.values(s.keys).map(hashedPart)).size).toBe(1);
      expect(s.durable).toBe(true);
      expect(s.shared).toBe(true);
      await s.close();
    }
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['prefix', { prefix: 'app:{}x' }, 'hash tag'],
    ['prefix', { prefix: 'app:{q1' }, 'hash tag'],
    ['prefix', { prefix: 'app}:q1' }, 'hash tag'],
    ['redisOptions', { redisOptions: { keyPrefix: 'x{}' } }, 'one hash slot'],
    [
      'client',
      { url: undefined, client: { ...fakeClientFields(), options: { keyPrefix: 'x{}' } } },
      'one hash slot',
    ],
  ])('refuses a %s that would spread the buffer over hash slots', (option, bad, expected) => {
    const build = (): unknown =>
      new RedisStorage({ url: REDIS_URL, ...bad } as unknown as RedisStorageOptions<Rec>);
    expect(build).toThrow(InvalidOptionsError);
    expect(build).toThrow(expected);
    try {
      build();
    } catch (error) {
      expect((error as InvalidOptionsError).option).toBe(option);
    }
  });
});

function fakeClientFields(): Record<string, unknown> {
  const method = (): undefined => undefined;
  return {
    pipeline: method,
    evalsha: method,
    eval: method,
    xadd: method,
    on: method,
    removeListener: method,
  };
}

describe('compareIds', () => {
  it('orders stream ids as Redis does, for any ms and seq', () => {
    const id = fc.tuple(
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    );
    fc.assert(
      fc.property(id, id, ([msA, seqA], [msB, seqB]) => {
        const expected =
          msA === msB ? Math.sign(Number(seqA - seqB)) : Math.sign(Number(msA - msB));
        expect(Math.sign(compareIds(`${msA}-${seqA}`, `${msB}-${seqB}`))).toBe(expected);
      }),
    );
  });
});

describe('RedisStorage when Redis cannot be reached', () => {
  it('rejects every operation promptly with StorageUnavailableError', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const s = storage({ url });
    const started = Date.now();
    await expect(s.append([{ n: 1 }])).rejects.toBeInstanceOf(StorageUnavailableError);
    // Promptly: not after ioredis's reconnection attempts, nor the 5 s command timeout.
    expect(Date.now() - started).toBeLessThan(3000);
    await expect(s.append([{ n: 2 }])).rejects.toThrow(/unavailable/);
    await expect(s.reserve(10, { now: Date.now() })).rejects.toBeInstanceOf(
      StorageUnavailableError,
    );
    await expect(s.size()).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(s.recover()).rejects.toBeInstanceOf(StorageUnavailableError);
    await expect(
      s.release([{ id: '1-0', record: { n: 1 }, attempts: 0, deliveries: 1 }], 0),
    ).rejects.toThrow(StorageUnavailableError);
  });

  it("with onUnavailable: 'block', waits up to unavailableTimeout, then rejects", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const s = storage({ url, onUnavailable: 'block', unavailableTimeout: 400 });
    const started = Date.now();
    const error = await s.append([{ n: 1 }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect((error as Error).message).toContain('Redis append failed');
  });
});

const describeRedis = await describeWith('redis');

describeRedis('RedisStorage', () => {
  afterAll(() => deleteKeys(base));

  it('sends the appends of one tick in one pipeline, in call order', async () => {
    const own = client();
    await own.ping();
    const s = storage({ client: own });
    const pipeline = jest.spyOn(own, 'pipeline');
    const calls = Array.from({ length: 100 }, (_, n) =>
      n % 10 === 9 ? s.append([{ n: n * 10 }, { n: n * 10 + 1 }]) : s.append([{ n: n * 10 }]),
    );
    const ids = (await Promise.all(calls)).flat();
    expect(pipeline).toHaveBeenCalledTimes(1);
    expect(ids).toHaveLength(110);
    expect(new Set(ids).size).toBe(110);
    const batch = await s.reserve(200, { now: Date.now() });
    expect(batch.map((e) => e.id)).toEqual(ids);
    expect(numbers(batch)).toEqual(
      Array.from({ length: 100 }, (_, n) =>
        n % 10 === 9 ? [n * 10, n * 10 + 1] : [n * 10],
      ).flat(),
    );
    pipeline.mockRestore();
  });

  it.each<[string, unknown]>([
    [
      'a cycle',
      (() => {
        const o: Record<string, unknown> = { n: 1 };
        o.self = o;
        return o;
      })(),
    ],
    ['a BigInt', { n: 1, big: 10n }],
    ['a function', () => 1],
    ['a nested function', { n: 1, fn: () => 1 }],
    ['a symbol', { n: 1, s: Symbol('x') }],
    ['undefined', undefined],
  ])('refuses %s with SerializationError and stores nothing of the call', async (_, bad) => {
    const s = storage<unknown>();
    const error = await s.append([{ n: 0 }, bad]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SerializationError);
    expect((error as SerializationError).code).toBe('BUFIO_SERIALIZATION');
    expect((error as Error).message).toContain(
      'RedisStorage cannot serialize the record at index 1 of 2',
    );
    expect(await s.size()).toBe(0);
  });

  it('refuses a record over maxRecordBytes, counted in UTF-8 bytes', async () => {
    const s = storage<string>({ maxRecordBytes: 12 });
    // JSON of 'é'.repeat(5) is 2 quotes + 10 bytes: exactly 12.
    await expect(s.append(['é'.repeat(5)])).resolves.toHaveLength(1);
    const error = await s.append(['é'.repeat(6)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecordTooLargeError);
    expect((error as Error).message).toBe('record is 14 bytes, over maxRecordBytes (12)');
    expect(await s.size()).toBe(1);
  });

  it('uses a custom serializer both ways, and refuses what it cannot serialize', async () => {
    const serializer: Serializer<Date> = {
      serialize: (date) => (date instanceof Date ? date.toISOString() : (42 as unknown as string)),
      deserialize: (text) => new Date(text),
    };
    const s = storage<Date>({ serializer });
    const date = new Date('2026-01-02T03:04:05.006Z');
    await s.append([date]);
    const [entry] = await s.reserve(1, { now: Date.now() });
    expect(entry?.record).toBeInstanceOf(Date);
    expect(entry?.record.getTime()).toBe(date.getTime());
    await expect(s.append(['not a date' as unknown as Date])).rejects.toThrow(
      'the serializer returned a number, not a string',
    );
  });

  it('sets aside a stored record that cannot be deserialized, and goes on', async () => {
    const errors: Error[] = [];
    const s = storage({ onError: (error) => errors.push(error) });
    const own = client();
    await s.append([{ n: 1 }]);
    const badId = await own.xadd(s.keys.stream, '*', 'd', '{not json');
    await s.append([{ n: 2 }]);
    const batch = await s.reserve(10, { now: Date.now() });
    expect(numbers(batch)).toEqual([1, 2]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SerializationError);
    expect(errors[0]?.message).toContain(`record ${badId}`);
    expect(await own.hget(s.keys.invalid, badId as string)).toBe('{not json');
    await s.ack(batch);
    expect(await s.size()).toBe(0);
    expect(await own.xlen(s.keys.stream)).toBe(0);
  });

  it('leaves a client it was given open, and quits one it created', async () => {
    const own = client();
    await own.ping();
    const listeners = own.listenerCount('ready');
    const given = new RedisStorage<Rec>({ client: own, prefix: `${base}:${count++}` });
    await given.append([{ n: 1 }]);
    await given.close();
    expect(own.status).toBe('ready');
    expect(own.listenerCount('ready')).toBe(listeners);
    await expect(given.append([{ n: 2 }])).rejects.toThrow('is closed');

    const created = new RedisStorage<Rec>({ url: REDIS_URL, prefix: `${base}:${count++}` });
    await created.append([{ n: 1 }]);
    await created.close();
    expect(created.client.status).toBe('end');
  });

  it("renews a live holder's leases, fresh and retried, and gives them up when it dies", async () => {
    const prefix = `${base}:${count++}`;
    const a = storage({ prefix, leaseTimeout: 150 });
    const b = storage({ prefix, leaseTimeout: 150 });
    await a.append([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
    const first = await a.reserve(4, { now: Date.now() });
    await a.release(first.slice(1, 2), 0);
    const retried = await a.reserve(1, { now: Date.now() });
    expect(retried.map((e) => [e.record.n, e.attempts])).toEqual([[1, 1]]);
    // Four lease timeouts: without renewal, every lease would have expired.
    await sleep(600);
    expect(await b.recover()).toBe(0);
    expect(await b.reserve(10, { now: Date.now() })).toEqual([]);

    a.client.disconnect(); // a crash: no ack, no release, no more renewal
    const deadline = Date.now() + 3000;
    let recovered = 0;
    while (recovered < 4 && Date.now() < deadline) {
      recovered += await b.recover();
      if (recovered < 4) await sleep(50);
    }
    expect(recovered).toBe(4);
    const again = await b.reserve(10, { now: Date.now() });
    expect(again.map((e) => [e.record.n, e.attempts])).toEqual([
      [0, 0],
      [1, 1],
      [2, 0],
      [3, 0],
    ]);
  });

  it('reads no more than maxBytes allows: the rest stay unleased, with no attempt counted', async () => {
    const prefix = `${base}:${count++}`;
    const a = storage({ prefix });
    const b = storage({ prefix });
    await a.append([0, 1, 2, 3, 4].map((n) => ({ n, text: 'x'.repeat(20) })));
    expect(a.consumer).not.toBe(b.consumer);
    const small = await a.reserve(10, { now: Date.now(), maxBytes: 80 });
    expect(numbers(small)).toEqual([0, 1]);
    expect(await a.size()).toBe(3);
    const rest = await b.reserve(10, { now: Date.now() });
    expect(rest.map((e) => [e.record.n, e.attempts])).toEqual([
      [2, 0],
      [3, 0],
      [4, 0],
    ]);
  });

  it('counts waiting and retrying records in size, not leased ones', async () => {
    const s = storage();
    await s.append([0, 1, 2, 3, 4].map((n) => ({ n })));
    const batch = await s.reserve(2, { now: Date.now() });
    expect(await s.size()).toBe(3);
    await s.release(batch.slice(0, 1), Date.now() + 60_000);
    expect(await s.size()).toBe(4);
    await s.ack(batch.slice(1));
    expect(await s.size()).toBe(4);
  });

  it('works the same over a RESP2 client', async () => {
    const resp2 = new Redis(REDIS_URL, { protocol: 2 });
    clients.push(resp2);
    const s = storage({ client: resp2 });
    await s.append([{ n: 0 }, { n: 1 }]);
    await s.append([{ n: 2 }]);
    const batch = await s.reserve(10, { now: Date.now() });
    expect(numbers(batch)).toEqual([0, 1, 2]);
    await s.release(batch.slice(0, 1), 0);
    await s.ack(batch.slice(1));
    expect(await s.size()).toBe(1);
    const again = await s.reserve(10, { now: Date.now() });
    expect(again.map((e) => [e.record.n, e.attempts])).toEqual([[0, 1]]);
  });

  it('creates a lost consumer group again, delivering unacknowledged records again', async () => {
    const s = storage();
    const own = client();
    await s.append([{ n: 0 }, { n: 1 }]);
    expect(numbers(await s.reserve(10, { now: Date.now() }))).toEqual([0, 1]);
    await own.xgroup('DESTROY', s.keys.stream, 'bufio');
    expect(numbers(await s.reserve(10, { now: Date.now() }))).toEqual([0, 1]);
  });

  it('forgets consumers that hold nothing and have been idle for a lease', async () => {
    const prefix = `${base}:${count++}`;
    const gone = storage({ prefix, leaseTimeout: 100 });
    await gone.append([{ n: 0 }]);
    await gone.ack(await gone.reserve(1, { now: Date.now() }));
    await gone.close();
    const own = client();
    const names = async (): Promise<string[]> =>
      ((await own.xinfo('CONSUMERS', gone.keys.stream, 'bufio')) as string[][]).map(
        (info) => info[info.indexOf('name') + 1]!,
      );
    expect(await names()).toEqual([gone.consumer]);
    await sleep(150);
    const live = storage({ prefix, leaseTimeout: 100 });
    await live.recover();
    expect(await names()).not.toContain(gone.consumer);
  });

  it('runs under BufIO: retries keep their attempt count, every record is processed', async () => {
    const s = storage({ leaseTimeout: 1000 });
    const seen: number[] = [];
    const attempts: number[] = [];
    const bufio = new BufIO<Rec>({
      storage: s,
      batchSize: 10,
      flushInterval: 20,
      retry: { initialDelay: 10, maxDelay: 20 },
      worker: (records, context) => {
        attempts.push(context.attempt);
        if (records.some((r) => r.n === 13) && context.attempt === 1) throw new Error('once');
        seen.push(...records.map((r) => r.n));
      },
    });
    bufio.start();
    await Promise.all(Array.from({ length: 30 }, (_, n) => bufio.push({ n })));
    const deadline = Date.now() + 5000;
    while (seen.length < 30 && Date.now() < deadline) await sleep(20);
    const summary = await bufio.stop();
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(attempts).toContain(2);
    expect(bufio.stats().retried).toBeGreaterThan(0);
    expect(summary.remaining).toBe(0);
    expect(s.client.status).toBe('end');
  });
});
