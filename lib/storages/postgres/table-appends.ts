import { StorageError } from '../../core/errors.js';
import type { AppendBatcherOptions } from '../append-batcher.js';
import type { ResolvedSharedOptions } from '../storage-options.js';
import type { PostgresPool } from './postgres-pool.js';
import { isUnavailable, storageFailure } from './storage-failure.js';

/** Upper bounds on one INSERT, so a huge burst becomes several statements of sane size. */
const MAX_BURST_RECORDS = 5_000;
const MAX_BURST_CHARS = 8 * 1024 * 1024;
/** Backoff between INSERTs of a burst that met an unreachable server (`onUnavailable: 'block'`). */
const FIRST_RETRY_DELAY = 50;
const MAX_RETRY_DELAY = 1_000;

/** What an INSERT returns: a contiguous range of ids, or every id. */
interface InsertedRow {
  readonly first: string | null;
  readonly n: number;
  readonly ids: string[] | null;
}

/** What `TableAppends` needs from its storage. */
export interface TableAppendsOptions {
  readonly pool: PostgresPool;
  /** The table, for messages. */
  readonly table: string;
  /** The INSERT: $1 payloads, $2 stripe, $3 channel, $4 token (see `Statements.insert`). */
  readonly insert: string;
  /** The channel appends notify, and this instance's payload on it. */
  readonly channel: string;
  readonly token: string;
  /** With `createTable`, creates the tables before the first statement. */
  ensureTable(): Promise<void> | undefined;
  /** The counter row the next statement adjusts. */
  nextStripe(): number;
}

/**
 * Appends to the buffer's table: the calls of one tick, gathered by the storage's `AppendBatcher`
 * (see `batching`), are inserted in one statement, which also counts them and notifies watchers;
 * each call stored whole or not at all.
 */
export class TableAppends {
  constructor(private readonly options: TableAppendsOptions) {}

  /** How the storage's `AppendBatcher` writes here, under the storage's `onUnavailable` policy. */
  batching(policy: ResolvedSharedOptions): AppendBatcherOptions {
    return {
      write: async (calls) => {
        const ids = await this.insert(calls.length === 1 ? (calls[0] as string[]) : calls.flat());
        let offset = 0;
        return calls.map((texts) => ids.slice(offset, (offset += texts.length)));
      },
      failure: (error) => storageFailure('append', this.options.table, error),
      isUnavailable,
      pause: (retry, until) =>
        new Promise((resolve) => {
          const delay = Math.min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** retry);
          setTimeout(resolve, Math.max(0, Math.min(delay, until - Date.now())));
        }),
      // One INSERT at a time: two in flight on two pooled connections could commit out of order,
      // and this process's records would then take ids, and come out, in another order.
      oneAtATime: true,
      maxRecords: MAX_BURST_RECORDS,
      maxChars: MAX_BURST_CHARS,
      onUnavailable: policy.onUnavailable,
      unavailableTimeout: policy.unavailableTimeout,
    };
  }

  private async insert(payloads: readonly string[]): Promise<string[]> {
    const { pool, table, channel, token } = this.options;
    await this.options.ensureTable();
    const result = await pool.query<InsertedRow>('append', this.options.insert, [
      payloads,
      this.options.nextStripe(),
      channel,
      token,
    ]);
    const ids = idsOfInsert(result.rows[0]);
    if (ids.length !== payloads.length) {
      throw new StorageError(
        `PostgreSQL append to ${table} returned ${ids.length} ids for ${payloads.length} records`,
      );
    }
    return ids;
  }
}

/** The ids an INSERT returned, in payload order. */
function idsOfInsert(row: InsertedRow | undefined): string[] {
  if (!row || row.first === null) return [];
  if (row.ids) return row.ids;
  const first = BigInt(row.first);
  return Array.from({ length: row.n }, (_, i) => String(first + BigInt(i)));
}
