import { describe, expect, it } from '@jest/globals';
import { ScanFloor, type ScanKey } from '../../../lib/storages/postgres/scan-floor.js';

const key = (visibleAt: number, id: number | bigint): ScanKey => ({
  visibleAt: BigInt(visibleAt),
  id: BigInt(id),
});

describe('ScanFloor', () => {
  it('bounds the scan by the highest key taken at least a second ago', () => {
    const floor = new ScanFloor();
    expect(floor.current(0)).toEqual(key(0, 0));
    floor.took(key(0, 100), 0);
    floor.took(key(0, 250), 400);
    floor.took(key(0, 180), 600); // lower than one taken before: the bound never goes back
    expect(floor.current(999)).toEqual(key(0, 0));
    expect(floor.current(1000)).toEqual(key(0, 100));
    expect(floor.current(1500)).toEqual(key(0, 250));
    expect(floor.current(5000)).toEqual(key(0, 250));
  });

  it('orders keys by due time, then id, and keeps the highest of keys given together', () => {
    const floor = new ScanFloor();
    floor.took(key(20, 1), 0);
    floor.took(key(10, 9), 1);
    floor.took(key(20, 3), 2);
    expect(floor.current(2000)).toEqual(key(20, 3));
  });

  it('keeps ids beyond 2^53 exact', () => {
    const floor = new ScanFloor();
    floor.took(key(0, 9007199254740993n), 0);
    expect(floor.current(2000).id).toBe(9007199254740993n);
  });

  it('starts from the head again after a reset, forgetting keys not yet settled', () => {
    const floor = new ScanFloor();
    floor.took(key(0, 100), 0);
    expect(floor.current(1000)).toEqual(key(0, 100));
    floor.took(key(0, 200), 1000);
    floor.reset();
    expect(floor.current(5000)).toEqual(key(0, 0));
  });
});
