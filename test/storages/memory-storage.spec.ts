import { describe, expect, it } from '@jest/globals';
import { MemoryStorage } from '../../lib/index.js';
import { describeStorageConformance } from '../../lib/testing/index.js';

describeStorageConformance(
  'MemoryStorage',
  { create: () => new MemoryStorage() },
  { describe, it },
);

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
