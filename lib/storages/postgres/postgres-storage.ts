import { createHash, randomBytes, randomInt } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import type {
  AppendOptions,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../../core/storage.js';
import { AppendBatcher } from '../append-batcher.js';
import { encodeRecords, encodingOf, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { closedError, reportError } from '../storage-guards.js';
import { HeldLeases } from './held-leases.js';
import { PostgresPool } from './postgres-pool.js';
import { PostgresSession, randomHolderKey } from './postgres-session.js';
import {
  type PostgresStorageOptions,
  type ResolvedPostgresOptions,
  resolvePostgresOptions,
} from './postgres-storage-options.js';
import {
  decodeRows,
  orderReserved,
  ReserveFloors,
  toMs,
  type ReservedRow,
} from './reserved-rows.js';
import { STRIPES } from './schema.js';
import { preparedNames, readIdScope, statementsFor, type Statements } from './statements.js';
import { TableAppends } from './table-appends.js';
import { setAside } from './set-aside.js';

const MAX_INT = 2_147_483_647;

/**
 * Keeps records in PostgreSQL: durable, and shared by every process that opens the same table,
 * each reserving its own batches (`FOR UPDATE SKIP LOCKED`) under a lease. The layout (a table of
 * fresh records and beside it `_retry`, `_leases`, `_unreadable` and `_meta`) is described in
 * statements.ts: a record is inserted once and deleted once on its way through, and a batch is
 * leased as one row.
 *
 * Clock: every timestamp in the tables is in epoch milliseconds of the engines' clock
 * (`Date.now()`). Visibility must be: the engine passes `now` to `reserve` and `visibleAt` to
 * `release`. Leases use the same clock, so one process never compares times from two clocks;
 * hosts sharing a table therefore need clocks within a small fraction of `leaseTimeout` of each
 * other (NTP gives milliseconds). A host running ahead by more than that could take leases early,
 * which means duplicate processing, never loss.
 *
 * A batch is leased as one row, renewed while its holder works. Leases are taken over when they
 * lapse (`leaseTimeout` without renewal; `recover()` runs every `recoveryInterval`, half of it) or
 * at once when their holder is gone: each instance that reserves keeps one connection of its own
 * (see `PostgresSession`) holding a presence lock, which PostgreSQL frees when the process dies.
 * The same connection `LISTEN`s on the buffer's channel, which appends `NOTIFY`, so an idle engine
 * waits in `watch()` rather than polling. `StoredRecord.deliveries` counts every lease of a
 * record, also one that ended without an ack or a release. A stored record the serializer cannot
 * read back is moved to `unreadableTable` and reported, not delivered.
 *
 * The tables are not created behind your back: call `migrate()`, pass `createTable: true`, or run
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
  /** The table of waiting records, as written in SQL: `"schema"."name"` or `"name"`. */
  readonly table: string;
  /** Where records that could not be deserialized are set aside: `"name_unreadable"`. */
  readonly unreadableTable: string;
  /** This instance's lease holder, stored in `_leases.holder`: host, pid and a random part. */
  readonly holder: string;
  /** Half of `leaseTimeout`: a lapsed lease is taken over within 1.5 × `leaseTimeout`. */
  readonly recoveryInterval: number;

  private readonly options: ResolvedPostgresOptions<T>;
  /** The encoding: the serializer, `maxRecordBytes`, and this storage's name in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private readonly pool: PostgresPool;
  private readonly sql: Statements;
  /** Gathers the appends of a tick: inserted in one statement (`TableAppends`). */
  private readonly appends: AppendBatcher;
  /** Identifies this instance's leases (`_leases.holder_key`); held as its presence lock. */
  private readonly holderKey: string;
  /** The channel appends notify, and this instance's payload on it. */
  private readonly channel: string;
  private readonly token: string;
  private readonly session: PostgresSession;
  /** Batches this instance leased and has not settled; renewed while held. */
  private readonly leases: HeldLeases;
  private readonly floors = new ReserveFloors();
  private stripe = randomInt(STRIPES);
  private scope: string | undefined;
  private migrated: Promise<void> | undefined;
  private scoped: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  /**
   * @throws InvalidOptionsError for a missing or doubled connection, an invalid table name or an
   * out-of-range option; the error names the option, the value and what is allowed.
   */
  constructor(options: PostgresStorageOptions<T>) {
    this.options = resolvePostgresOptions(options);
    this.encoding = encodingOf(this.options, 'PostgresStorage', refuseNul);
    this.table = this.options.table.quoted;
    this.holder = `${os.hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    this.sql = statementsFor(this.options.table, pg.escapeLiteral(`bufio:${this.table}`));
    this.unreadableTable = this.sql.tables.unreadable;
    this.recoveryInterval = Math.floor(this.options.leaseTimeout / 2);
    const digest = createHash('sha1').update(this.table).digest('hex');
    this.channel = `bufio_${digest.slice(0, 24)}`;
    this.pool = new PostgresPool({
      settings: this.options,
      table: this.table,
      prepared: preparedNames(this.sql, `bufio_${digest.slice(0, 12)}`),
      report: (error) => this.report(error),
    });
    const { connection } = this.pool;
    this.holderKey = randomHolderKey(connection !== undefined);
    this.token = this.holderKey;
    this.session = new PostgresSession({
      connection,
      key: this.holderKey,
      channel: this.channel,
      token: this.token,
      table: this.table,
      report: (error) => this.report(error),
    });
    const table = new TableAppends({
      pool: this.pool,
      table: this.table,
      insert: this.sql.insert,
      channel: this.channel,
      token: this.token,
      ensureTable: () => this.ensureTable(),
      nextStripe: () => this.nextStripe(),
    });
    this.appends = new AppendBatcher(table.batching(this.options));
    this.leases = new HeldLeases({
      leaseTimeout: this.options.leaseTimeout,
      pool: this.pool,
      sql: this.sql,
      holderKey: this.holderKey,
      nextStripe: () => this.nextStripe(),
      report: (error) => this.report(error),
    });
  }

  /**
   * Names this store in idempotency keys (`${idScope}:${id}`): a UUID made when the tables were
   * created, and the table's OID, so that keys stay unique if the table is dropped and made again.
   * Known once the first `reserve` has resolved.
   */
  get idScope(): string | undefined {
    return this.scope;
  }

  /**
   * Creates the tables and index if they are missing, and converts a table made by BufIO 0.2 in
   * place (no record is lost); safe to run from several processes at once and on every start.
   * Stop 0.2 processes before converting their table: their statements fail once it is converted.
   *
   * @throws StorageUnavailableError (as a rejection) when PostgreSQL cannot be reached.
   * @throws StorageError (as a rejection) when the statement fails, e.g. the schema is missing.
   */
  async migrate(): Promise<void> {
    this.assertOpen('migrate');
    await this.pool.query('migrate', this.sql.migrate, []);
  }

  /**
   * What `migrate()` runs (without its lock), for your own migrations: one idempotent `DO` block
   * that creates what is missing and converts a 0.2 table.
   */
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
    let texts: string[];
    try {
      this.assertOpen('append');
      assertSingleLane('PostgresStorage', options);
      texts = encodeRecords(records, this.encoding);
    } catch (error) {
      return Promise.reject(error);
    }
    if (texts.length === 0) return Promise.resolve([]);
    return this.appends.add(texts);
  }

  /**
   * Leases up to `limit` records as one batch (one `_leases` row, renewed while held): due
   * retries and recovered records first, then fresh ones, in id order, taken with
   * `FOR UPDATE SKIP LOCKED` so that instances never wait on each other. With `maxBytes`, the
   * batch stops before the record that would not fit (the first always comes). A stored record
   * that cannot be deserialized is moved to `unreadableTable` and reported (`onUnreadable`, or
   * `onError` without it), not returned.
   */
  async reserve(limit: number, options: ReserveOptions): Promise<StoredRecord<T>[]> {
    this.assertOpen('reserve');
    if (!(limit >= 1)) return [];
    await this.prepareToLease();
    const seq = this.leases.take();
    const clock = Date.now();
    const { fresh, retries } = this.floors.current(clock);
    const values: unknown[] = [
      Math.min(Math.floor(limit), MAX_INT),
      toMs(options.now),
      this.holderKey,
      seq,
      this.holder,
      clock + this.options.leaseTimeout,
      this.nextStripe(),
      String(fresh.id),
      String(retries.visibleAt),
      String(retries.id),
    ];
    if (options.maxBytes !== undefined) values.push(Math.max(0, Math.floor(options.maxBytes)));
    const text = options.maxBytes === undefined ? this.sql.reserve : this.sql.reserveWithin;
    let rows: ReservedRow[];
    try {
      rows = (await this.pool.query<ReservedRow>('reserve', text, values)).rows;
    } catch (error) {
      // It may have locked records and let them go: look from the head next time.
      this.floors.reset();
      throw error;
    }
    if (rows.length === 0) return [];
    orderReserved(rows);
    this.floors.advance(rows, clock);
    this.leases.hold(
      seq,
      rows.map((row) => row.id),
    );
    const { batch, unreadable } = decodeRows(rows, this.encoding.serializer);
    if (unreadable.length > 0) {
      await setAside(unreadable, options.onUnreadable, {
        leases: this.leases,
        pool: this.pool,
        statement: this.sql.setAside,
        holderKey: this.holderKey,
        table: this.table,
        unreadableTable: this.unreadableTable,
        report: (error) => this.report(error),
      });
    }
    return batch;
  }

  /**
   * Removes records for good: the usual case, a whole batch done, deletes its one `_leases` row;
   * part of a batch narrows the row to what is still open.
   */
  async ack(records: readonly StoredRecord<T>[]): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('ack');
    await this.leases.ack(idsOf(records));
  }

  /**
   * Moves leased records, with one more attempt, to `_retry`, hidden until `visibleAt`. If this
   * fails, their lease is no longer renewed: they come back when it lapses.
   */
  async release(records: readonly StoredRecord<T>[], visibleAt: number): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('release');
    await this.leases.release(idsOf(records), visibleAt);
  }

  /** Records waiting (fresh, or for a retry), from the counters: no table is scanned. */
  async size(): Promise<number> {
    this.assertOpen('size');
    await this.ensureTable();
    const result = await this.pool.query<{ n: string }>('size', this.sql.size, []);
    return Number(result.rows[0]?.n ?? 0);
  }

  /**
   * Returns the records of leases that lapsed, or whose holder is gone, to the waiting records;
   * returns how many. The engine calls it at start, every `recoveryInterval` and in `stop()`.
   */
  async recover(): Promise<number> {
    this.assertOpen('recover');
    await this.ensureTable();
    // Records a failed reserve or a slow write left behind a scan's bound: this often.
    this.floors.reset();
    const result = await this.pool.query<{ n: number }>('recover', this.sql.recover, [
      Date.now(),
      this.holderKey,
      this.nextStripe(),
      this.channel,
      this.token,
    ]);
    return Number(result.rows[0]?.n ?? 0);
  }

  /** Records in leases of other holders (other instances, or gone ones whose lease has not lapsed). */
  async leasedElsewhere(): Promise<number> {
    this.assertOpen('leasedElsewhere');
    await this.ensureTable();
    const result = await this.pool.query<{ n: string }>(
      'leasedElsewhere',
      this.sql.leasedElsewhere,
      [this.holderKey],
    );
    return Number(result.rows[0]?.n ?? 0);
  }

  /**
   * Calls `listener` when another instance appended records (a `NOTIFY` on the buffer's channel,
   * received on this instance's session connection, which `LISTEN`s), and once after that
   * connection was lost and opened again. Returns a function that stops.
   */
  watch(listener: () => void): () => void {
    if (this.closing) return () => undefined;
    return this.session.watch(listener);
  }

  /**
   * Writes appends still queued, returns the records of leases this instance still holds (so that
   * others need not wait for them to lapse), ends its session, stops listening to the pool, and
   * ends the pool if the storage created it. Records stay in the tables. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.appends.idle();
    try {
      await this.leases.giveBack();
    } catch (error) {
      // The leases lapse on their own; say why they were not returned now.
      this.report(error);
    } finally {
      await this.session.close();
      await this.pool.close();
    }
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

  /** Before the first lease: the tables, the idScope, and the presence lock held. */
  private async prepareToLease(): Promise<void> {
    await this.ensureTable();
    this.scoped ??= readIdScope(this.pool, this.sql, this.table).then(
      (scope) => {
        this.scope = scope;
      },
      (error: unknown) => {
        this.scoped = undefined;
        throw error;
      },
    );
    await this.scoped;
    await this.session.ready();
  }

  private nextStripe(): number {
    this.stripe = (this.stripe + 1) % STRIPES;
    return this.stripe;
  }

  private assertOpen(operation: string): void {
    if (this.closing) throw closedError(`PostgresStorage for ${this.table}`, operation);
  }

  private report(error: unknown): void {
    reportError(this.options.onError, error);
  }
}

function idsOf(records: readonly StoredRecord<unknown>[]): string[] {
  return records.map((entry) => String(entry.id));
}

/** PostgreSQL `text` cannot hold a NUL character (`JSON.stringify` escapes it). */
function refuseNul(text: string): string | undefined {
  return text.includes('\u0000')
    ? 'its serialized text contains a NUL character, which PostgreSQL text cannot hold'
    : undefined;
}
