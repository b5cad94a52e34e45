import assert from 'node:assert/strict';
import type { Awaitable, Storage, StoredRecord, UnreadableRecord } from '../core/storage.js';

/** The record type the conformance suite stores. */
export interface ConformanceRecord {
  readonly n: number;
  readonly text: string;
}

/** How the suite gets storages to test. */
export interface StorageConformanceOptions {
  /** A new, empty storage; called once per test. */
  create(): Awaitable<Storage<ConformanceRecord>>;
  /**
   * For durable storages: a new instance over the same records as `previous`, as after a restart.
   * `previous` has been closed when `crashed` is false; when it is true it was abandoned with
   * records leased, as by a process killed mid-batch, and `recover()` must get them back (the
   * suite calls it until they return, for up to `leaseWaitMs`).
   */
  reopen?(
    previous: Storage<ConformanceRecord>,
    crashed: boolean,
  ): Awaitable<Storage<ConformanceRecord>>;
  /** Called after each test with every storage it created, to free resources. */
  destroy?(storages: readonly Storage<ConformanceRecord>[]): Awaitable<void>;
  /** How long `recover()` may take to return abandoned leases. Default 5000 ms. */
  leaseWaitMs?: number;
  /**
   * For storages that serialize records: stores, after what was appended so far, one record that
   * `reserve` will not be able to read back (a payload the serializer refuses, damaged bytes),
   * written behind the storage's back as damage would be. Enables the set-aside checks.
   */
  plantUnreadable?(storage: Storage<ConformanceRecord>): Awaitable<void>;
}

/** The parts of a test runner the suite needs: Jest, Vitest and `node:test` all fit. */
export interface TestApi {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => Promise<void>, timeout?: number): void;
}

/** One conformance check, runnable with any test runner. */
export interface ConformanceCase {
  readonly name: string;
  run(): Promise<void>;
}

const T0 = 1_700_000_000_000;

function rec(n: number): ConformanceRecord {
  return { n, text: `record ${n}` };
}

function numbers(batch: readonly StoredRecord<ConformanceRecord>[]): number[] {
  return batch.map((entry) => entry.record.n);
}

function idsByNumber(batch: readonly StoredRecord<ConformanceRecord>[]): Map<number, string> {
  return new Map(batch.map((entry) => [entry.record.n, String(entry.id)]));
}

/** Reserves until nothing comes back, acking each batch; returns every record reserved. */
async function reserveAll(
  storage: Storage<ConformanceRecord>,
  now: number,
  onUnreadable?: (records: readonly UnreadableRecord[]) => void,
): Promise<StoredRecord<ConformanceRecord>[]> {
  const all: StoredRecord<ConformanceRecord>[] = [];
  for (;;) {
    const batch = await storage.reserve(10, onUnreadable ? { now, onUnreadable } : { now });
    if (batch.length === 0) return all;
    all.push(...batch);
    await storage.ack(batch);
  }
}

async function appendRange(
  storage: Storage<ConformanceRecord>,
  from: number,
  to: number,
): Promise<void> {
  const records: ConformanceRecord[] = [];
  for (let n = from; n < to; n++) records.push(rec(n));
  await storage.append(records);
}

/**
 * The checks every `Storage` must pass, as plain async functions. Use `describeStorageConformance`
 * to register them with a test runner.
 */
export function storageConformanceCases(options: StorageConformanceOptions): ConformanceCase[] {
  const leaseWaitMs = options.leaseWaitMs ?? 5000;

  const withStorage =
    (
      body: (
        storage: Storage<ConformanceRecord>,
        opened: Storage<ConformanceRecord>[],
      ) => Promise<void>,
    ) =>
    async (): Promise<void> => {
      const opened: Storage<ConformanceRecord>[] = [];
      try {
        const storage = await options.create();
        opened.push(storage);
        await body(storage, opened);
      } finally {
        await options.destroy?.(opened);
      }
    };

  const cases: ConformanceCase[] = [
    {
      name: 'append returns one distinct id per record, and size counts them',
      run: withStorage(async (storage) => {
        const ids = await storage.append([rec(1), rec(2), rec(3)]);
        assert.equal(ids.length, 3);
        assert.equal(new Set(ids).size, 3);
        assert.equal(await storage.size(), 3);
        const more = await storage.append([rec(4)]);
        assert.equal(more.length, 1);
        assert.ok(!ids.includes(more[0]!), 'ids are not reused');
        assert.equal(await storage.size(), 4);
      }),
    },
    {
      name: 'reserve returns the oldest records first, up to the limit, as they were appended',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 10);
        const batch = await storage.reserve(4, { now: T0 });
        assert.deepEqual(numbers(batch), [0, 1, 2, 3]);
        assert.deepEqual(batch[0]?.record, rec(0));
        assert.ok(batch.every((entry) => entry.attempts === 0));
        const ids = await storage.append([rec(99)]);
        assert.ok(ids.length === 1);
      }),
    },
    {
      name: 'reserve on an empty storage returns an empty batch',
      run: withStorage(async (storage) => {
        assert.deepEqual(await storage.reserve(10, { now: T0 }), []);
        assert.equal(await storage.size(), 0);
      }),
    },
    {
      name: 'leased records are not reserved again and are not counted by size',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 6);
        const first = await storage.reserve(4, { now: T0 });
        assert.equal(await storage.size(), 2);
        const second = await storage.reserve(10, { now: T0 });
        assert.deepEqual(numbers(second), [4, 5]);
        assert.deepEqual(await storage.reserve(10, { now: T0 }), []);
        assert.equal(first.length, 4);
      }),
    },
    {
      name: 'ack removes records for good',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 5);
        const batch = await storage.reserve(5, { now: T0 });
        await storage.ack(batch);
        assert.equal(await storage.size(), 0);
        assert.deepEqual(await storage.reserve(10, { now: Infinity }), []);
      }),
    },
    {
      name: 'ack of part of a batch leaves the rest leased',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 4);
        const batch = await storage.reserve(4, { now: T0 });
        await storage.ack(batch.slice(0, 2));
        await storage.release(batch.slice(2), T0);
        assert.deepEqual(numbers(await storage.reserve(10, { now: T0 })), [2, 3]);
      }),
    },
    {
      name: 'release hides records until visibleAt and counts the attempt',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 3);
        const batch = await storage.reserve(3, { now: T0 });
        await storage.release(batch, T0 + 1000);
        assert.equal(await storage.size(), 3);
        assert.deepEqual(await storage.reserve(10, { now: T0 + 999 }), []);
        const again = await storage.reserve(10, { now: T0 + 1000 });
        assert.deepEqual(numbers(again), [0, 1, 2]);
        assert.ok(again.every((entry) => entry.attempts === 1));
        await storage.release(again, T0 + 2000);
        const third = await storage.reserve(10, { now: T0 + 2000 });
        assert.ok(third.every((entry) => entry.attempts === 2));
      }),
    },
    {
      name: 'due retries come before fresh records, in their original order',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 4);
        const batch = await storage.reserve(4, { now: T0 });
        await appendRange(storage, 4, 8);
        await storage.release([batch[1], batch[3]] as StoredRecord<ConformanceRecord>[], T0 + 10);
        await storage.release([batch[0], batch[2]] as StoredRecord<ConformanceRecord>[], T0 + 20);
        assert.deepEqual(numbers(await storage.reserve(3, { now: T0 + 5 })), [4, 5, 6]);
        assert.deepEqual(numbers(await storage.reserve(10, { now: T0 + 30 })), [0, 1, 2, 3, 7]);
      }),
    },
    {
      name: 'reserve with now = Infinity returns records waiting for a retry too',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 2);
        const batch = await storage.reserve(2, { now: T0 });
        await storage.release(batch, T0 + 60_000);
        assert.deepEqual(numbers(await storage.reserve(10, { now: Infinity })), [0, 1]);
      }),
    },
    {
      name: 'maxBytes caps a batch by size but always takes the first record',
      run: withStorage(async (storage) => {
        const big = { n: 0, text: 'x'.repeat(1000) };
        await storage.append([big, rec(1), rec(2), rec(3)]);
        const first = await storage.reserve(10, { now: T0, maxBytes: 100 });
        assert.deepEqual(numbers(first), [0]);
        const rest = await storage.reserve(10, { now: T0, maxBytes: 60 });
        assert.ok(
          rest.length >= 1 && rest.length < 3,
          `got ${rest.length} records within 60 bytes`,
        );
        assert.equal(rest[0]?.record.n, 1);
      }),
    },
    {
      name: 'order holds across many appends, reserves and acks',
      run: withStorage(async (storage) => {
        const seen: number[] = [];
        let next = 0;
        for (let round = 0; round < 20; round++) {
          const count = 1 + ((round * 7) % 13);
          await appendRange(storage, next, next + count);
          next += count;
          const batch = await storage.reserve(1 + ((round * 5) % 11), { now: T0 });
          seen.push(...numbers(batch));
          await storage.ack(batch);
        }
        for (;;) {
          const batch = await storage.reserve(50, { now: T0 });
          if (batch.length === 0) break;
          seen.push(...numbers(batch));
          await storage.ack(batch);
        }
        assert.deepEqual(
          seen,
          Array.from({ length: next }, (_, i) => i),
        );
      }),
    },
    {
      name: 'reserve counts deliveries: 1 for a fresh record, attempts + 1 after releases',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 3);
        const first = await storage.reserve(3, { now: T0 });
        assert.deepEqual(
          first.map((entry) => entry.deliveries),
          [1, 1, 1],
        );
        await storage.release(first.slice(0, 2), T0);
        await storage.ack(first.slice(2));
        const second = await storage.reserve(3, { now: T0 });
        assert.deepEqual(
          second.map((entry) => [entry.attempts, entry.deliveries]),
          [
            [1, 2],
            [1, 2],
          ],
        );
        await storage.release(second.slice(0, 1), T0);
        const third = await storage.reserve(3, { now: T0 });
        assert.deepEqual(
          third.map((entry) => [entry.record.n, entry.attempts, entry.deliveries]),
          [[0, 2, 3]],
        );
      }),
    },
    {
      name: 'a record keeps its id on every delivery, and ids are never reused',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 4);
        const first = await storage.reserve(4, { now: T0 });
        const ids = idsByNumber(first);
        await storage.release(first, T0);
        const again = await storage.reserve(4, { now: T0 });
        assert.deepEqual(idsByNumber(again), ids);
        await storage.ack(again);
        // Emptied: whatever comes next must not take an id a worker has already seen.
        await appendRange(storage, 4, 8);
        const later = await storage.reserve(4, { now: T0 });
        for (const entry of later) {
          assert.ok(![...ids.values()].includes(String(entry.id)), `id ${entry.id} was reused`);
        }
      }),
    },
    {
      name: 'watchRoom, if present: a listener hears nothing while no append was refused, and can stop',
      run: withStorage(async (storage) => {
        if (!storage.watchRoom) return;
        let told = 0;
        const stop = storage.watchRoom(() => told++);
        assert.equal(typeof stop, 'function');
        await appendRange(storage, 0, 5);
        await storage.ack(await storage.reserve(5, { now: T0 }));
        assert.equal(told, 0, 'room is news only after a refusal');
        stop();
        stop(); // stopping twice is harmless
      }),
    },
    {
      name: 'recover returns a number, and close resolves',
      run: withStorage(async (storage) => {
        const recovered = await storage.recover();
        assert.equal(typeof recovered, 'number');
        await storage.close();
      }),
    },
  ];

  const reopen = options.reopen;
  if (reopen) {
    cases.push(
      {
        name: 'durable: records, attempts and retry times survive a restart; acked ones do not come back',
        run: withStorage(async (storage, opened) => {
          assert.equal(storage.durable, true, 'a storage with reopen() must declare durable: true');
          await appendRange(storage, 0, 6);
          const batch = await storage.reserve(4, { now: T0 });
          await storage.ack(batch.slice(0, 2));
          await storage.release(batch.slice(2), T0 + 5000);
          await storage.close();
          const next = await reopen(storage, false);
          opened.push(next);
          await next.recover();
          assert.equal(await next.size(), 4);
          assert.deepEqual(numbers(await next.reserve(10, { now: T0 })), [4, 5]);
          const retried = await next.reserve(10, { now: T0 + 5000 });
          assert.deepEqual(numbers(retried), [2, 3]);
          assert.ok(retried.every((entry) => entry.attempts === 1));
        }),
      },
      {
        name: 'durable: records leased by a crashed holder are recovered, in order',
        run: withStorage(async (storage, opened) => {
          await appendRange(storage, 0, 5);
          const leased = await storage.reserve(3, { now: T0 });
          assert.equal(leased.length, 3);
          const next = await reopen(storage, true);
          opened.push(next);
          const deadline = Date.now() + leaseWaitMs;
          const seen: number[] = [];
          while (seen.length < 5) {
            await next.recover();
            const batch = await next.reserve(10, { now: Date.now() });
            seen.push(...numbers(batch));
            await next.ack(batch);
            if (seen.length >= 5) break;
            assert.ok(
              Date.now() < deadline,
              `recovered only ${JSON.stringify(seen)} within ${leaseWaitMs} ms`,
            );
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          assert.deepEqual(
            [...seen].sort((a, b) => a - b),
            [0, 1, 2, 3, 4],
          );
        }),
      },
      {
        name: 'durable: a lease that ended without ack or release counts as a delivery; ids survive',
        run: withStorage(async (storage, opened) => {
          await appendRange(storage, 0, 4);
          const leased = await storage.reserve(2, { now: T0 });
          const ids = idsByNumber(leased);
          const scope = storage.idScope;
          const next = await reopen(storage, true);
          opened.push(next);
          const deadline = Date.now() + leaseWaitMs;
          const seen: StoredRecord<ConformanceRecord>[] = [];
          while (seen.length < 4) {
            await next.recover();
            const batch = await next.reserve(10, { now: Date.now() });
            seen.push(...batch);
            await next.ack(batch);
            if (seen.length >= 4) break;
            assert.ok(Date.now() < deadline, `recovered only ${seen.length} of 4 records`);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          const byNumber = new Map(seen.map((entry) => [entry.record.n, entry]));
          for (const n of [0, 1]) {
            const entry = byNumber.get(n);
            assert.equal(String(entry?.id), ids.get(n), `record ${n} kept its id`);
            assert.deepEqual([entry?.attempts, entry?.deliveries], [0, 2], `record ${n}`);
          }
          for (const n of [2, 3]) assert.equal(byNumber.get(n)?.deliveries, 1, `record ${n}`);
          if (scope !== undefined) assert.equal(next.idScope, scope, 'idScope survives a restart');
        }),
      },
      {
        name: 'durable: ids are not reused after a restart, even once everything was acked',
        run: withStorage(async (storage, opened) => {
          await appendRange(storage, 0, 3);
          const before = await reserveAll(storage, T0);
          const scope = storage.idScope;
          await storage.close();
          const next = await reopen(storage, false);
          opened.push(next);
          await next.recover();
          await appendRange(next, 3, 6);
          const after = await reserveAll(next, T0);
          assert.deepEqual(numbers(after), [3, 4, 5]);
          const keysBefore = new Set(before.map((e) => `${scope}:${e.id}`));
          for (const entry of after) {
            const key = `${next.idScope}:${entry.id}`;
            assert.ok(!keysBefore.has(key), `key ${key} named an earlier record`);
          }
        }),
      },
    );
  }
  const plantUnreadable = options.plantUnreadable;
  if (plantUnreadable) {
    cases.push({
      name: 'unreadable records are set aside and reported once; the others are delivered in order',
      run: withStorage(async (storage) => {
        await appendRange(storage, 0, 3);
        await plantUnreadable(storage);
        await appendRange(storage, 3, 6);
        const reported: UnreadableRecord[] = [];
        const delivered = await reserveAll(storage, T0, (records) => reported.push(...records));
        assert.deepEqual(numbers(delivered), [0, 1, 2, 3, 4, 5]);
        assert.equal(reported.length, 1, 'the unreadable record is reported once');
        assert.equal(typeof reported[0]?.location, 'string');
        assert.ok(reported[0]?.payload !== undefined);
        assert.equal(await storage.size(), 0, 'a record set aside is not counted as waiting');
        assert.deepEqual(await storage.reserve(10, { now: Infinity }), []);
      }),
    });
  }
  return cases;
}

/**
 * Registers the conformance suite with a test runner.
 *
 * @example
 * import { describe, it } from '@jest/globals';
 * describeStorageConformance('MyStorage', { create: () => new MyStorage() }, { describe, it });
 */
export function describeStorageConformance(
  name: string,
  options: StorageConformanceOptions,
  api: TestApi,
): void {
  api.describe(`${name} conforms to the Storage contract`, () => {
    for (const testCase of storageConformanceCases(options)) {
      api.it(testCase.name, () => testCase.run(), (options.leaseWaitMs ?? 5000) + 10_000);
    }
  });
}
