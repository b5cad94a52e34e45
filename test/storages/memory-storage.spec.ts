import { describe, expect, it } from '@jest/globals';
import { InvalidOptionsError, MemoryStorage, StorageFullError } from '../../lib/index.js';
import { describeStorageConformance } from '../../lib/testing/index.js';

describeStorageConformance(
  'MemoryStorage',
  { create: () => new MemoryStorage() },
  { describe, it },
);

describeStorageConformance(
  'MemoryStorage with maxBytes',
  { create: () => new MemoryStorage({ maxBytes: 1_000_000 }) },
  { describe, it },
);

describe('MemoryStorage maxBytes', () => {
  const now = Date.now();
  const sizeOf = (record: string): number => record.length;

  it('must be a positive integer', () => {
    for (const maxBytes of [0, -1, 1.5, '100']) {
      expect(() => new MemoryStorage({ maxBytes: maxBytes as number })).toThrow(
        InvalidOptionsError,
      );
    }
  });

  it('refuses an append that does not fit, whole, with StorageFullError; acks give room back', () => {
    const storage = new MemoryStorage<string>({ maxBytes: 10, sizeOf });
    storage.append(['aaaa', 'bbbb']);
    expect(() => storage.append(['c', 'dd'])).toThrow(StorageFullError);
    expect(() => storage.appendOne('ccc')).toThrow(
      expect.objectContaining({ code: 'BUFIO_STORAGE_FULL', path: 'memory' }),
    );
    expect(storage.size()).toBe(2);
    storage.appendOne('cc'); // exactly full
    const batch = storage.reserve(2, { now });
    expect(() => storage.appendOne('x')).toThrow(StorageFullError); // leased records hold room
    storage.release(batch.slice(0, 1), now);
    expect(() => storage.appendOne('x')).toThrow(StorageFullError); // and so do retries
    storage.ack(batch.slice(1));
    storage.append(['xxxx']);
    expect(storage.reserve(10, { now }).map((e) => e.record)).toEqual(['aaaa', 'cc', 'xxxx']);
  });

  it('watchRoom: a listener is told, from ack, when room is freed after a refusal, once', () => {
    const storage = new MemoryStorage<string>({ maxBytes: 4, sizeOf });
    let told = 0;
    const stop = storage.watchRoom(() => told++);
    storage.append(['aa', 'bb']);
    storage.ack(storage.reserve(1, { now }));
    expect(told).toBe(0); // nothing was refused
    storage.appendOne('cc');
    expect(() => storage.appendOne('dd')).toThrow(StorageFullError);
    const batch = storage.reserve(2, { now });
    storage.ack(batch.slice(0, 1));
    expect(told).toBe(1);
    storage.ack(batch.slice(1));
    expect(told).toBe(1); // told again only after another refusal
    storage.append(['ee', 'ff']);
    expect(() => storage.appendOne('g')).toThrow(StorageFullError);
    stop();
    storage.ack(storage.reserve(2, { now }));
    expect(told).toBe(1);
  });

  it('a merge that would go past maxBytes is not made: the engine appends instead, refused', () => {
    const storage = new MemoryStorage<string>({ maxBytes: 6, sizeOf });
    const [id] = storage.append(['aa']);
    expect(storage.coalesce(id as number, 'b', (o, n) => o + n)).toBe(true); // 'aab': 3 bytes
    expect(storage.coalesce(id as number, 'cccc', (o, n) => o + n)).toBe(false);
    storage.appendOne('ddd'); // 'aab' + 'ddd' fill it: the merge counted its new size
    expect(() => storage.appendOne('e')).toThrow(StorageFullError);
    expect(storage.reserve(2, { now }).map((e) => e.record)).toEqual(['aab', 'ddd']);
  });
});

describe('MemoryStorage features', () => {
  const now = Date.now();

  it('coalesces into a waiting record in place, and not into one already reserved', () => {
    const storage = new MemoryStorage<string>();
    const [a] = storage.append(['a1', 'b1']);
    expect(storage.coalesce(a as number, 'a2', (older, newer) => `${older}+${newer}`)).toBe(true);
    expect(storage.reserve(1, { now }).map((e) => e.record)).toEqual(['a1+a2']);
    expect(storage.coalesce(a as number, 'a3', (_o, n) => n)).toBe(false);
    expect(storage.size()).toBe(1);
  });

  it('keeps one queue per lane, takes higher lanes first and leaves lower lanes their share', () => {
    const storage = new MemoryStorage<string>();
    storage.append(['low1', 'low2', 'low3'], { lane: 2 });
    storage.append(['high1', 'high2', 'high3', 'high4'], { lane: 0 });
    storage.append(['mid1'], { lane: 1 });
    expect(storage.reserve(4, { now, laneShare: 0 }).map((e) => e.record)).toEqual([
      'high1',
      'high2',
      'high3',
      'high4',
    ]);
    expect(storage.reserve(2, { now, laneShare: 0.5 }).map((e) => e.record)).toEqual([
      'mid1',
      'low1',
    ]);
    expect(storage.size()).toBe(2);
  });

  it('gives retried records of a higher lane precedence, by id', () => {
    const storage = new MemoryStorage<string>();
    storage.append(['low'], { lane: 1 });
    storage.append(['high'], { lane: 0 });
    const batch = storage.reserve(2, { now });
    storage.release(batch, now);
    expect(storage.reserve(2, { now }).map((e) => e.record)).toEqual(['high', 'low']);
  });

  it('measures maxBytes with its sizeOf option', () => {
    const storage = new MemoryStorage<string>({ sizeOf: (r) => r.length });
    storage.append(['aaaa', 'bb', 'cc', 'd']);
    expect(storage.reserve(10, { now, maxBytes: 6 }).map((e) => e.record)).toEqual(['aaaa', 'bb']);
  });
});
