import type { StoredRecord } from '../../core/storage.js';
import type { Serializer } from '../serializer.js';
import { ScanFloor, type ScanKey } from './scan-floor.js';

/** The largest epoch-ms value a `Date` can hold; stands for "never" and for `now: Infinity`. */
const MAX_MS = 8_640_000_000_000_000;

/** A row a reserve returned (see `Statements.reserve`). */
export interface ReservedRow {
  readonly id: string;
  readonly payload: string;
  /** Null for a fresh record (0 attempts, 1 delivery); set for one delivered before. */
  readonly attempts: number | null;
  readonly deliveries: number | null;
  /** For a record delivered before: when it was due. */
  readonly visible_at: string | null;
}

/** A reserved row whose payload did not deserialize. */
export interface UnreadableRow {
  readonly row: ReservedRow;
  readonly error: unknown;
}

/** RETURNING has no order: due retries first, then fresh records, each in id order. */
export function orderReserved(rows: ReservedRow[]): void {
  rows.sort(
    (a, b) => Number(b.attempts !== null) - Number(a.attempts !== null) || compareIds(a.id, b.id),
  );
}

/** Deserializes reserved rows into a batch; rows whose payload does not deserialize come apart. */
export function decodeRows<T>(
  rows: readonly ReservedRow[],
  serializer: Serializer<T>,
): { batch: StoredRecord<T>[]; unreadable: UnreadableRow[] } {
  const batch: StoredRecord<T>[] = [];
  const unreadable: UnreadableRow[] = [];
  for (const row of rows) {
    let record: T;
    try {
      record = serializer.deserialize(row.payload);
    } catch (error) {
      unreadable.push({ row, error });
      continue;
    }
    batch.push({
      id: row.id,
      record,
      attempts: row.attempts === null ? 0 : Number(row.attempts),
      deliveries: row.deliveries === null ? 1 : Number(row.deliveries),
    });
  }
  return { batch, unreadable };
}

/** Where reserves start their scans: of fresh records, and of due retries (see `ScanFloor`). */
export class ReserveFloors {
  private readonly fresh = new ScanFloor();
  private readonly retries = new ScanFloor();

  /** Where the scans of a reserve at `clock` start. */
  current(clock: number): { fresh: ScanKey; retries: ScanKey } {
    return { fresh: this.fresh.current(clock), retries: this.retries.current(clock) };
  }

  /** The scans took `rows` (ordered: retries, then fresh records): start past them next time. */
  advance(rows: readonly ReservedRow[], clock: number): void {
    const last = rows[rows.length - 1]!;
    if (last.attempts === null) this.fresh.took({ visibleAt: 0n, id: BigInt(last.id) }, clock);
    // Retries come in id order, not due order: the floor keeps the highest key it is given.
    for (const row of rows) {
      if (row.visible_at === null) break;
      this.retries.took({ visibleAt: BigInt(row.visible_at), id: BigInt(row.id) }, clock);
    }
  }

  /** Back to the head: records a failed reserve or a slow write left behind a scan's bound. */
  reset(): void {
    this.fresh.reset();
    this.retries.reset();
  }
}

/** Epoch ms for a bigint column: `Infinity` becomes the largest date, and fractions are dropped. */
export function toMs(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.floor(Math.min(Math.max(value, 0), MAX_MS));
}

/** Orders bigint ids given as decimal strings without converting them to numbers. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
