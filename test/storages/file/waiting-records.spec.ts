import { describe, expect, it } from '@jest/globals';
import { IdBitmap } from '../../../lib/storages/file/id-bitmap.js';
import type { LiveRecord } from '../../../lib/storages/file/live-record.js';
import { MemoryBudget } from '../../../lib/storages/file/memory-budget.js';
import { RetryGroups, type RetryGroup } from '../../../lib/storages/file/retry-groups.js';
import { placeOf } from '../../../lib/storages/file/group-place.js';

/*
 * The compact structures FileStorage keeps instead of an object per waiting record: a bitmap of
 * ids, and retry groups.
 */

function live(id: number, bytes = 10): LiveRecord {
  return {
    id,
    value: undefined,
    text: 'x'.repeat(bytes),
    bytes,
    attempts: 1,
    deliveries: 1,
    visibleAt: 0,
    segment: 1,
    offset: 0,
    frame: 0,
    acked: false,
  };
}

/** Takes every due record, in the order handed out. */
function takeAll(groups: RetryGroups): number[] {
  const ids: number[] = [];
  for (let group = groups.top(); group !== undefined; group = groups.top()) {
    ids.push(groups.take(group).id);
  }
  return ids;
}

describe('IdBitmap', () => {
  it('holds ids anywhere up to 2^53, a bit each, and frees chunks it no longer needs', () => {
    const set = new IdBitmap();
    const ids = [0, 31, 32, 65_535, 65_536, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    for (const id of ids) expect(set.add(id)).toBe(true);
    expect(set.add(31)).toBe(false);
    expect(set.size).toBe(ids.length);
    for (const id of ids) expect(set.has(id)).toBe(true);
    for (const id of [1, 30, 33, 65_537, 2 ** 40 + 6]) expect(set.has(id)).toBe(false);
    for (const id of ids) expect(set.delete(id)).toBe(true);
    expect(set.delete(31)).toBe(false);
    expect(set.size).toBe(0);
    expect((set as unknown as { chunks: Map<number, unknown> }).chunks.size).toBe(0);
  });

  it('adds ranges word by word, counting only ids not there yet', () => {
    const set = new IdBitmap();
    set.add(40);
    set.add(100);
    set.addRange(5, 200);
    expect(set.size).toBe(200);
    for (let id = 0; id < 220; id++) expect(set.has(id)).toBe(id >= 5 && id < 205);
    // Across a chunk boundary.
    set.addRange(65_530, 12);
    expect(set.has(65_529)).toBe(false);
    expect(set.has(65_530) && set.has(65_541)).toBe(true);
    expect(set.size).toBe(212);
  });
});

describe('RetryGroups', () => {
  it('hands due records out by id across groups, whatever order they were released in', () => {
    const groups = new RetryGroups(new MemoryBudget(1 << 20));
    groups.hold(30, [live(9), live(3), live(6)]);
    groups.hold(10, [live(1), live(7)]);
    groups.hold(20, [live(2), live(8), live(4)]);
    groups.hold(40, [live(5)]);
    expect(groups.size).toBe(9);
    groups.promote(29);
    expect(takeAll(groups)).toEqual([1, 2, 4, 7, 8]);
    groups.promote(Infinity);
    expect(takeAll(groups)).toEqual([3, 5, 6, 9]);
    expect(groups.size).toBe(0);
  });

  it('a group leaves memory once its state is written, when the budget is spent, and is found by its segment', () => {
    const budget = new MemoryBudget(25);
    const groups = new RetryGroups(budget);
    const first = groups.hold(0, [live(1), live(2)]);
    const second = groups.hold(0, [live(3), live(4)]);
    expect(budget.used).toBe(40);
    groups.written(first, [{ segment: 7, start: 100, end: 200, runs: [1, 2, 1, 1] }]);
    // Over budget: its records are on disk only now.
    expect(first.records).toBeUndefined();
    expect(budget.used).toBe(20);
    groups.written(second, [{ segment: 8, start: 0, end: 90, runs: [3, 2, 1, 1] }]);
    expect(second.records).toBeDefined();
    expect(groups.inSegment(7)).toEqual([first]);
    groups.promote(0);
    // The group with the lowest next id is on top, and must be read back before it is taken.
    expect(groups.top()).toBe(first);
    groups.loaded(first, [live(1), live(2)]);
    expect(takeAll(groups)).toEqual([1, 2, 3, 4]);
    expect(groups.inSegment(7)).toEqual([]);
    expect(budget.used).toBe(0);
  });

  it('a group of records that could not be read back is given up and skipped', () => {
    const groups = new RetryGroups(new MemoryBudget(0));
    const lost: RetryGroup = groups.hold(0, [live(1), live(2)]);
    groups.written(lost, [{ segment: 1, start: 0, end: 10, runs: [1, 2, 1, 1] }]);
    groups.hold(0, [live(3)]);
    groups.promote(0);
    expect(groups.top()).toBe(lost);
    groups.lost(lost, 2);
    expect(groups.size).toBe(1);
    expect(takeAll(groups)).toEqual([3]);
  });
});

describe('placeOf', () => {
  it('makes one part per segment and stretch of frames, with runs of ids in one state', () => {
    const at = (id: number, segment: number, frame: number, attempts = 1): LiveRecord => ({
      ...live(id),
      segment,
      frame,
      offset: frame + 21,
      attempts,
    });
    const place = placeOf([
      at(1, 3, 100),
      at(2, 3, 200),
      at(3, 3, 300, 2),
      at(5, 3, 400, 2),
      at(6, 4, 56),
      at(7, 4, 56 + 300_000),
    ]);
    expect(place).toEqual([
      { segment: 3, start: 100, end: 431, runs: [1, 2, 1, 1, 3, 1, 2, 1, 5, 1, 2, 1] },
      { segment: 4, start: 56, end: 87, runs: [6, 1, 1, 1] },
      { segment: 4, start: 300_056, end: 300_087, runs: [7, 1, 1, 1] },
    ]);
  });
});
