import { afterAll, afterEach, expect, it, jest } from '@jest/globals';
import { Redis } from 'ioredis';
import { RedisStorage, type RedisStorageOptions } from '../../../lib/storages/redis/index.js';
import { killFixtures, startFixture, tagged } from '../../support/child-process.js';
import { describeWith, REDIS_URL } from '../../support/services.js';
import { sleep, waitFor } from '../../support/wait.js';
import { TestStorages } from './test-storages.js';

const describeRedis = await describeWith('redis');

interface Rec {
  readonly n: number;
}

const storages = new TestStorages('leases');
const storage = <T = Rec>(options: Partial<RedisStorageOptions<T>> = {}): RedisStorage<T> =>
  storages.open<T>(options);

const records = (from: number, to: number): Rec[] =>
  Array.from({ length: to - from }, (_, i) => ({ n: from + i }));

describeRedis('RedisStorage leases', () => {
  afterEach(async () => {
    killFixtures();
    await storages.closeAll();
  });
  afterAll(() => storages.deleteAll());

  it('asks the engine to recover on a timer tied to leaseTimeout, not faster than once a second', () => {
    const lazy = { redisOptions: { lazyConnect: true } };
    expect(storage({ leaseTimeout: 30_000, ...lazy }).recoveryInterval).toBe(15_000);
    expect(storage({ leaseTimeout: 4000, ...lazy }).recoveryInterval).toBe(2000);
    expect(storage({ leaseTimeout: 200, ...lazy }).recoveryInterval).toBe(1000);
  });

  it('counts records leased by other holders, not its own', async () => {
    const prefix = storages.prefix();
    const a = storage({ prefix });
    const b = storage({ prefix });
    await a.append(records(0, 6));
    const first = await a.reserve(2, { now: Date.now() });
    await a.release(first.slice(0, 1), 0);
    // One leased from the stream, one from the retries (due now).
    expect((await a.reserve(2, { now: Date.now() })).map((e) => e.record.n)).toEqual([0, 2]);
    expect(await a.leasedElsewhere()).toBe(0);
    expect(await b.leasedElsewhere()).toBe(3);
    await b.reserve(1, { now: Date.now() });
    expect(await a.leasedElsewhere()).toBe(1);
    expect(await b.leasedElsewhere()).toBe(3);
  });

  it('takes back at once the leases of a process on this host that was killed', async () => {
    const prefix = storages.prefix();
    const leaseTimeout = 60_000;
    const here = storage<string>({ prefix, leaseTimeout });
    await here.append(Array.from({ length: 30 }, (_, n) => `rec-${n}`));
    const holder = startFixture('redis/shared-instance', {
      args: [JSON.stringify({ url: REDIS_URL, prefix, workMs: 600_000, leaseTimeout })],
    });
    const started = await holder.waitForLine((line) => line.startsWith('S '), 10_000);
    const held = started.slice(2).split(' ');
    expect(held.length).toBeGreaterThan(0);
    // Alive: its leases are its own, renewed, and counted as held elsewhere.
    expect(await here.recover()).toBe(0);
    expect(await here.leasedElsewhere()).toBe(held.length);

    holder.process.kill('SIGKILL');
    await holder.exited;
    // Long before leaseTimeout: the holder ran on this host, and its pid is gone.
    expect(await here.recover()).toBe(held.length);
    expect(await here.leasedElsewhere()).toBe(0);
    const back = await here.reserve(held.length, { now: Date.now() });
    expect(back.map((e) => e.record)).toEqual(held);
    expect(back.every((e) => e.attempts === 0 && e.deliveries === 2)).toBe(true);
    expect(tagged(holder.lines, 'P')).toEqual([]);
  }, 30_000);

  it('takes back at start the leases of an earlier run under the same consumer name', async () => {
    const prefix = storages.prefix();
    const leaseTimeout = 60_000;
    const first = storage({ prefix, consumer: 'worker-1', leaseTimeout });
    await first.append(records(0, 5));
    const leased = await first.reserve(3, { now: Date.now() });
    first.client.disconnect(); // killed: no ack, no release

    const restarted = storage({ prefix, consumer: 'worker-1', leaseTimeout });
    const again = await restarted.reserve(10, { now: Date.now() });
    expect(again.map((e) => [e.record.n, e.attempts, e.deliveries])).toEqual([
      [0, 0, 2],
      [1, 0, 2],
      [2, 0, 2],
      [3, 0, 1],
      [4, 0, 1],
    ]);
    expect(again.slice(0, 3).map((e) => e.id)).toEqual(leased.map((e) => e.id));
    // Another name takes nothing before leaseTimeout.
    const other = storage({ prefix, consumer: 'worker-2', leaseTimeout });
    expect(await other.recover()).toBe(0);
  });

  it('an ack after the lease lapsed and the records were recovered elsewhere still removes them', async () => {
    const prefix = storages.prefix();
    const a = storage({ prefix, leaseTimeout: 100 });
    const b = storage({ prefix, leaseTimeout: 100 });
    await a.append(records(0, 3));
    const batch = await a.reserve(3, { now: Date.now() });
    // Connected and opened, so that its recover below is sent before any timer of A can run.
    expect(await b.recover()).toBe(0);
    // A's event loop is blocked past its lease (a long synchronous task): no renewal runs.
    const until = Date.now() + 250;
    while (Date.now() < until);
    const recovering = b.recover();
    expect(await recovering).toBe(3);
    await a.ack(batch);
    expect(await b.reserve(10, { now: Date.now() })).toEqual([]);
    expect(await b.size()).toBe(0);
  });

  it('acks in order with a trim of the stream, and out of order with XDEL', async () => {
    const s = storage();
    const own = new Redis(REDIS_URL);
    try {
      await s.append(records(0, 8));
      const first = await s.reserve(3, { now: Date.now() });
      const second = await s.reserve(3, { now: Date.now() });
      const xdel = jest.spyOn(s.client, 'xdel');
      await s.ack(second);
      expect(xdel).toHaveBeenCalledTimes(1);
      expect(await own.xlen(s.keys.stream)).toBe(5);
      expect(await s.size()).toBe(2);
      await s.ack(first);
      expect(xdel).toHaveBeenCalledTimes(1);
      expect(await own.xlen(s.keys.stream)).toBe(2);
      const rest = await s.reserve(10, { now: Date.now() });
      await s.ack(rest);
      expect(xdel).toHaveBeenCalledTimes(1);
      expect(await own.xlen(s.keys.stream)).toBe(0);
    } finally {
      own.disconnect();
    }
  });
});

describeRedis('RedisStorage.watch', () => {
  afterEach(async () => {
    await storages.closeAll();
  });
  afterAll(() => storages.deleteAll());

  it('wakes when another instance appends, and not while nothing happens', async () => {
    const prefix = storages.prefix();
    const idle = storage({ prefix });
    const other = storage({ prefix });
    await idle.reserve(10, { now: Date.now() }); // the group exists, nothing unread
    const listener = jest.fn();
    const stop = idle.watch(listener);
    await sleep(300);
    expect(listener).not.toHaveBeenCalled();
    // The watch waits on a connection of its own: the storage's client answers meanwhile.
    const started = Date.now();
    expect(await idle.size()).toBe(0);
    expect(Date.now() - started).toBeLessThan(1000);

    await other.append(records(0, 1));
    await waitFor('a wake-up', () => listener.mock.calls.length > 0, 3000);
    // Woken once; it waits for the engine's reserve before it looks again.
    await sleep(100);
    expect(listener).toHaveBeenCalledTimes(1);
    const batch = await idle.reserve(10, { now: Date.now() });
    expect(batch.map((e) => e.record.n)).toEqual([0]);
    await other.append(records(1, 2));
    await waitFor('a second wake-up', () => listener.mock.calls.length > 1, 3000);
    stop();
    await other.append(records(2, 3));
    await sleep(300);
    expect(listener).toHaveBeenCalledTimes(2);
  });

  it('wakes at once when unread records wait already, and when a retry falls due', async () => {
    const prefix = storages.prefix();
    const s = storage({ prefix });
    await s.append(records(0, 2));
    const early = jest.fn();
    const stopEarly = s.watch(early);
    await waitFor('a wake-up for records waiting', () => early.mock.calls.length > 0, 3000);
    stopEarly();

    const batch = await s.reserve(10, { now: Date.now() });
    const listener = jest.fn();
    s.watch(listener);
    const releasedAt = Date.now();
    await s.release(batch, releasedAt + 400);
    await waitFor('a wake-up for the retry', () => listener.mock.calls.length > 0, 3000);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(390);
    const retried = await s.reserve(10, { now: Date.now() });
    expect(retried.map((e) => [e.record.n, e.attempts])).toEqual([
      [0, 1],
      [1, 1],
    ]);
  });

  it('closes its connection with the storage', async () => {
    const connectionName = `bufio-test-watch-${process.pid}-${Date.now()}`;
    const s = storage({ redisOptions: { connectionName } });
    const own = new Redis(REDIS_URL);
    try {
      const clients = async (): Promise<number> =>
        String(await own.client('LIST'))
          .split('\n')
          .filter((line) => line.includes(` name=${connectionName} `)).length;
      await s.size();
      expect(await clients()).toBe(1);
      s.watch(() => undefined);
      await waitFor('the watch connection', async () => (await clients()) === 2, 3000);
      await s.close();
      await waitFor('both connections to close', async () => (await clients()) === 0, 3000);
    } finally {
      own.disconnect();
    }
  });
});
