/** The record every suite pushes: small, like an event or a row. */
export interface BenchRecord {
  readonly id: number;
  readonly name: string;
  /** In cents: an integer, so V8 stores it inline (a fractional number would add a 16-byte box). */
  readonly amount: number;
}

const NAMES = ['signup', 'login', 'purchase', 'refund', 'logout'] as const;

export function makeRecord(id: number): BenchRecord {
  return { id, name: NAMES[id % NAMES.length]!, amount: (id % 1000) * 25 };
}

/** Records made before any timing, so that no suite times their allocation. */
export function makeRecords(count: number, firstId = 0): BenchRecord[] {
  const records = new Array<BenchRecord>(count);
  for (let i = 0; i < count; i++) records[i] = makeRecord(firstId + i);
  return records;
}
