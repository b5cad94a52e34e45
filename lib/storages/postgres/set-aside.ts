import { SerializationError } from '../../core/errors.js';
import type { ReserveOptions, UnreadableRecord } from '../../core/storage.js';
import { announceUnreadable } from '../unreadable-records.js';
import type { HeldLeases } from './held-leases.js';
import type { PostgresPool } from './postgres-pool.js';
import type { UnreadableRow } from './reserved-rows.js';
import { describeDriverError } from './storage-failure.js';

/** What `setAside` needs from its storage. */
export interface SetAsideContext {
  readonly leases: HeldLeases;
  readonly pool: PostgresPool;
  /** `Statements.setAside`. */
  readonly statement: string;
  readonly holderKey: string;
  /** The tables, for messages. */
  readonly table: string;
  readonly unreadableTable: string;
  report(error: unknown): void;
}

/**
 * A record that cannot be deserialized would fail every batch it is in: moves it from its lease to
 * the unreadable table, where it is neither delivered nor counted, and reports it (`onUnreadable`,
 * or `onError` without it). If the move fails, it stays in its lease, no longer renewed: it comes
 * back after `leaseTimeout` and is met again.
 */
export async function setAside(
  rows: readonly UnreadableRow[],
  onUnreadable: ReserveOptions['onUnreadable'],
  context: SetAsideContext,
): Promise<void> {
  const { leases, pool, statement, holderKey, table, unreadableTable, report } = context;
  const ids = rows.map((entry) => entry.row.id);
  const reasons = rows.map((entry) => describeDriverError(entry.error));
  try {
    await leases.settle(ids, async ({ lease }) => {
      await pool.query('set aside', statement, [holderKey, lease.seq, ids, reasons]);
    });
  } catch (error) {
    report(error);
    return;
  }
  const records: UnreadableRecord[] = rows.map(({ row, error }) => ({
    id: row.id,
    payload: row.payload,
    location: `${unreadableTable} (id ${row.id})`,
    cause: error,
  }));
  announceUnreadable(records, onUnreadable, report, () => {
    const first = rows[0]?.error;
    return [
      new SerializationError(
        `${ids.length} record(s) in ${table} could not be deserialized and were set aside ` +
          `in ${unreadableTable} (ids ${ids.join(', ')}): ${describeDriverError(first)}`,
        { cause: first },
      ),
    ];
  });
}
