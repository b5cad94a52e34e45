import { randomUUID } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { SerializationError, StorageError } from '../../core/errors.js';
import type {
  AppendOptions,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../../core/storage.js';
import { AppendBatcher } from '../append-batcher.js';
import { LeaseRenewal } from '../lease-renewal.js';
import { encodeRecords, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import {
  type PostgresStorageOptions,
  type ResolvedPostgresOptions,
  resolvePostgresOptions,
} from './postgres-storage-options.js';
import { statementsFor, type Statements } from './statements.js';
import { describeDriverError, isUnavailable, storageFailure } from './storage-failure.js';

/** The largest epoch-ms value a `Date` can hold; stands for "never" and for `now: Infinity`. */
const MAX_MS = 8_640_000_000_000_000;

/** Upper bounds on one INSERT, so a huge burst becomes several statements of sane size. */
const MAX_BURST_RECORDS = 5_000;
const MAX_BURST_CHARS = 8 * 1024 * 1024;
/** Backoff between INSERTs of a burst that met an unreachable server (`onUnavailable: 'block'`). */
const FIRST_RETRY_DELAY = 50;
const MAX_RETRY_DELAY = 1_000;

/** Holder of records whose payload could not be deserialized: leased for good, set aside. */
export const UNDECODABLE_HOLDER = 'bufio:undecodable';

const OWNED_POOL_DEFAULTS: pg.PoolConfig = {
  application_name: 'bufio',
  max: 10,
  connectionTimeoutMillis: 10_000,
  query_timeout: 30_000,
  keepAlive: true,
};

interface ReservedRow {
  readonly id: string;
  readonly payload: string;
  readonly attempts: number;
}

/**
 * Keeps records in a PostgreSQL table: durable, and shared by every process that opens the same
 * table, each reserving its own batches (`FOR UPDATE SKIP LOCKED`) under a lease.
 *
 * Clock: every timestamp in the table is in epoch milliseconds of the engines' clock
 * (`Date.now()`). Visibility must be: the engine passes `now` to `reserve` and `visibleAt` to
 * `release`. Leases use the same clock, so one process never compares times from two clocks;
 * hosts sharing a table therefore need clocks within a small fraction of `leaseTimeout` of each
 * other (NTP gives milliseconds). A host running ahead by more than that could take leases early,
 * which means duplicate processing, never loss.
 *
 * The table is not created behind your back: call `migrate()`, pass `createTable: true`, or run
 * `migrationSql()` in your own migrations.
 *
 * @example
 * const storage = new PostgresStorage<Event>({ connectionString: process.env.DATABASE_URL, createTable: true });
 * const bufio = new BufIO<Event>({ storage, worker: (events) => sink.write(events) });
 */
export class PostgresStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared = true;
  /** None: one lane, no coalescing. */
  readonly features: StorageFeatures = NO_FEATURES;
  /** The table, as written in SQL: `"schema"."name"` or `"name"`. */
  readonly table: string;
  /** This instance's lease holder id, stored in `lease_holder` (host, pid and a random part). */
  readonly holder: string;

  private readonly options: ResolvedPostgresOptions<T>;
  /** How `append` serializes records, and names this storage in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly sql: Statements;
  private readonly batcher: AppendBatcher;
  /** Ids this instance leased and has not acked or released: renewed while held. */
  private readonly leases: LeaseRenewal;
  private migrated: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly onPoolError = (error: Error): void => {
    this.report(storageFailure('an idle pooled connection', this.table, error));
  };

  /**
   * @throws InvalidOptionsError for a missing or doubled connection, an invalid table name or an
   * out-of-range option; the error names the option, the value and what is allowed.
   */
  constructor(options: PostgresStorageOptions<T>) {
    this.options = resolvePostgresOptions(options);
    this.encoding = {
      serializer: this.options.serializer,
      maxRecordBytes: this.options.maxRecordBytes,
      storageName: 'PostgresStorage',
      checkText: refuseNul,
    };
    this.table = this.options.table.quoted;
    this.holder = `${os.hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    this.sql = statementsFor(this.options.table, pg.escapeLiteral(`bufio:${this.table}`));
    if (this.options.pool) {
      this.pool = this.options.pool;
      this.ownsPool = false;
    } else {
      this.pool = new pg.Pool({
        ...OWNED_POOL_DEFAULTS,
        ...this.options.poolConfig,
        connectionString: this.options.connectionString,
      });
      this.ownsPool = true;
    }
    // Without a listener, a pooled idle connection that the server closes (a restart,
    // pg_terminate_backend) is an uncaught 'error' event: the process would crash.
    this.pool.on('error', this.onPoolError);
    this.batcher = new AppendBatcher({
      write: async (calls) => {
        const ids = await this.insert(calls.length === 1 ? (calls[0] as string[]) : calls.flat());
        let offset = 0;
        return calls.map((texts) => ids.slice(offset, (offset += texts.length)));
      },
      failure: (error) => storageFailure('append', this.table, error),
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
      onUnavailable: this.options.onUnavailable,
      unavailableTimeout: this.options.unavailableTimeout,
    });
    this.leases = new LeaseRenewal({
      leaseTimeout: this.options.leaseTimeout,
      renew: async (ids) => {
        const until = Date.now() + this.options.leaseTimeout;
        await this.query('lease renewal', this.sql.renew, [ids, this.holder, until]);
      },
      report: (error) => this.report(error as Error),
    });
  }

  /**
   * Creates the table and its indexes if they are missing; safe to run from several processes at
   * once and on every start.
   *
   * @throws StorageUnavailableError (as a rejection) when PostgreSQL cannot be reached.
   * @throws StorageError (as a rejection) when the statement fails, e.g. the schema is missing.
   */
  async migrate(): Promise<void> {
    this.assertOpen('migrate');
    await this.query('migrate', this.sql.migrate, []);
  }

  /** The `CREATE TABLE` and `CREATE INDEX` statements `migrate()` runs, for your own migrations. */
  migrationSql(): string {
    return this.sql.ddl;
  }

  /**
   * Serializes the records at once (so a bad record fails the call and nothing of it is written),
   * then inserts them with the other appends of this event-loop turn in one statement.
   *
   * @throws SerializationError, RecordTooLargeError (as rejections) for a record that cannot be
   * stored; none of the call's records are written.
   * @throws StorageUnavailableError (as a rejection) when PostgreSQL cannot be reached (at once, or
   * after `unavailableTimeout` with `onUnavailable: 'block'`).
   * @throws UnsupportedError (as a rejection) for a `lane` other than 0.
   */
  append(records: readonly T[], options?: AppendOptions): Promise<RecordId[]> {
    try {
      this.assertOpen('append');
      assertSingleLane('PostgresStorage', options);
      if (records.length === 0) return Promise.resolve([]);
      const payloads = encodeRecords(records, this.encoding);
      return this.batcher.add(payloads);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async reserve(limit: number, options: ReserveOptions): Promise<StoredRecord<T>[]> {
    this.assertOpen('reserve');
    if (!(limit >= 1)) return [];
    await this.ensureTable();
    const clock = Date.now();
    const result = await this.query<ReservedRow>('reserve', this.sql.reserve, [
      toMs(options.now),
      clock,
      Math.min(Math.floor(limit), 2_147_483_647),
      options.maxBytes === undefined ? null : Math.max(0, Math.floor(options.maxBytes)),
      this.holder,
      clock + this.options.leaseTimeout,
    ]);
    // RETURNING has no order: restore the one the candidates were chosen in.
    const rows = result.rows.sort(
      (a, b) => Number(a.attempts === 0) - Number(b.attempts === 0) || compareIds(a.id, b.id),
    );
    const batch: StoredRecord<T>[] = [];
    const undecodable: { id: string; error: unknown }[] = [];
    for (const row of rows) {
      let record: T;
      try {
        record = this.options.serializer.deserialize(row.payload);
      } catch (error) {
        undecodable.push({ id: row.id, error });
        continue;
      }
      const attempts = Number(row.attempts);
      batch.push({ id: row.id, record, attempts, deliveries: attempts + 1 });
    }
    this.leases.hold(batch.map((entry) => entry.id as string));
    if (undecodable.length > 0) await this.setAside(undecodable);
    return batch;
  }

  async ack(records: readonly StoredRecord<T>[]): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('ack');
    const ids = records.map((r) => String(r.id));
    try {
      await this.query('ack', this.sql.ack, [ids]);
    } finally {
      // Even when the ack failed: the engine moves on, so let the lease lapse and the records be
      // delivered again rather than renew it for ever.
      this.leases.forget(ids);
    }
  }

  async release(records: readonly StoredRecord<T>[], visibleAt: number): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('release');
    const ids = records.map((r) => String(r.id));
    try {
      await this.query('release', this.sql.release, [ids, toMs(visibleAt), this.holder]);
    } finally {
      this.leases.forget(ids);
    }
  }

  async size(): Promise<number> {
    this.assertOpen('size');
    await this.ensureTable();
    const result = await this.query<{ n: string }>('size', this.sql.size, [Date.now()]);
    return Number(result.rows[0]?.n ?? 0);
  }

  /** Frees leases that have lapsed (their holder died or stalled); returns how many. */
  async recover(): Promise<number> {
    this.assertOpen('recover');
    await this.ensureTable();
    const result = await this.query('recover', this.sql.recover, [Date.now()]);
    return result.rowCount ?? 0;
  }

  /**
   * Writes appends still queued, frees this instance's leases (so other processes need not wait
   * for them to lapse), stops listening to the pool, and ends the pool if the storage created it.
   * Records stay in the table. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.batcher.idle();
    const held = this.leases.stop();
    try {
      if (held > 0) await this.query('close', this.sql.releaseHolder, [this.holder]);
    } catch (error) {
      // The leases lapse on their own; say why they were not freed now.
      this.report(error as Error);
    } finally {
      if (this.ownsPool) await this.pool.end();
      this.pool.off('error', this.onPoolError);
    }
  }

  private async insert(payloads: readonly string[]): Promise<string[]> {
    await this.ensureTable();
    const result = await this.query<{ id: string }>('append', this.sql.insert, [payloads]);
    const ids = result.rows.map((row) => row.id);
    if (ids.length !== payloads.length) {
      throw new StorageError(
        `PostgreSQL append to ${this.table} returned ${ids.length} ids for ${payloads.length} records`,
      );
    }
    return ids;
  }

  /** With `createTable`, runs `migrate()` once before the first statement (again if it failed). */
  private ensureTable(): Promise<void> | undefined {
    if (!this.options.createTable) return undefined;
    this.migrated ??= this.migrate().catch((error: unknown) => {
      this.migrated = undefined;
      throw error;
    });
    return this.migrated;
  }

  /**
   * A record that cannot be deserialized would fail every batch it is in. Lease it for good to a
   * holder that never renews nor expires, so it neither blocks the buffer nor disappears, and say
   * where it is.
   */
  private async setAside(rows: readonly { id: string; error: unknown }[]): Promise<void> {
    const ids = rows.map((r) => r.id);
    const first = rows[0]?.error;
    try {
      await this.query('reserve', this.sql.quarantine, [ids, UNDECODABLE_HOLDER, MAX_MS]);
      this.report(
        new SerializationError(
          `${ids.length} record(s) in ${this.table} could not be deserialized and were set aside ` +
            `(ids ${ids.join(', ')}; lease_holder = '${UNDECODABLE_HOLDER}'): ` +
            describeDriverError(first),
          { cause: first },
        ),
      );
    } catch (error) {
      // Still leased to us and not renewed: they come back after leaseTimeout and are tried again.
      this.report(error as Error);
    }
  }

  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    operation: string,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw storageFailure(operation, this.table, error);
    }
  }

  private assertOpen(operation: string): void {
    if (this.closing) {
      throw new StorageError(`PostgresStorage for ${this.table} is closed: ${operation} refused`);
    }
  }

  private report(error: Error): void {
    try {
      this.options.onError(error);
    } catch {
      // A throwing onError must not turn a reported failure into an unhandled one.
    }
  }
}

/** PostgreSQL `text` cannot hold a NUL character (`JSON.stringify` escapes it). */
function refuseNul(text: string): string | undefined {
  return text.includes('\u0000')
    ? 'its serialized text contains a NUL character, which PostgreSQL text cannot hold'
    : undefined;
}

/** Epoch ms for a bigint column: `Infinity` becomes the largest date, and fractions are dropped. */
function toMs(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.floor(Math.min(Math.max(value, 0), MAX_MS));
}

/** Orders bigint ids given as decimal strings without converting them to numbers. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
