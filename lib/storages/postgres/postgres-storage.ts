import { createHash, randomBytes, randomInt } from 'node:crypto';
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
  UnreadableRecord,
} from '../../core/storage.js';
import { AppendBatcher } from '../append-batcher.js';
import { LeaseRenewal } from '../lease-renewal.js';
import { encodeRecords, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { LeaseBook, type Settlement } from './lease-book.js';
import {
  type PostgresStorageOptions,
  type ResolvedPostgresOptions,
  resolvePostgresOptions,
} from './postgres-storage-options.js';
import { PostgresSession } from './postgres-session.js';
import { ScanFloor } from './scan-floor.js';
import { statementsFor, STRIPES, type Statements } from './statements.js';
import { describeDriverError, isUnavailable, storageFailure } from './storage-failure.js';

/** The largest epoch-ms value a `Date` can hold; stands for "never" and for `now: Infinity`. */
const MAX_MS = 8_640_000_000_000_000;
const MAX_INT = 2_147_483_647;

/** Upper bounds on one INSERT, so a huge burst becomes several statements of sane size. */
const MAX_BURST_RECORDS = 5_000;
const MAX_BURST_CHARS = 8 * 1024 * 1024;
/** Backoff between INSERTs of a burst that met an unreachable server (`onUnavailable: 'block'`). */
const FIRST_RETRY_DELAY = 50;
const MAX_RETRY_DELAY = 1_000;

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
  /** Null for a fresh record (0 attempts, 1 delivery); set for one delivered before. */
  readonly attempts: number | null;
  readonly deliveries: number | null;
  /** For a record delivered before: when it was due. */
  readonly visible_at: string | null;
}

/** What an INSERT returns: a contiguous range of ids, or every id. */
interface InsertedRow {
  readonly first: string | null;
  readonly n: number;
  readonly ids: string[] | null;
}

/** A reserved row whose payload did not deserialize. */
interface Unreadable {
  readonly row: ReservedRow;
  readonly error: unknown;
}

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
 * Leases are taken over when they lapse (`leaseTimeout` without renewal; `recover()` runs every
 * `recoveryInterval`, half of it) or at once when their holder is gone: each instance that
 * reserves keeps one connection of its own (see `PostgresSession`) holding a presence lock, which
 * PostgreSQL frees when the process dies.
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
  /** How `append` serializes records, and names this storage in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly sql: Statements;
  /** Statement names by text: each is parsed and planned once per connection (see `query`). */
  private readonly prepared: ReadonlyMap<string, string>;
  private readonly batcher: AppendBatcher;
  /** Identifies this instance's leases (`_leases.holder_key`); held as its presence lock. */
  private readonly holderKey: string;
  /** The channel appends notify, and this instance's payload on it. */
  private readonly channel: string;
  private readonly token: string;
  private readonly session: PostgresSession;
  private readonly book = new LeaseBook(randomInt(MAX_INT));
  /** Where reserves start their scans of fresh records and of due retries. */
  private readonly freshFloor = new ScanFloor();
  private readonly retryFloor = new ScanFloor();
  /** Leases (by seq) this instance holds: renewed while held. */
  private readonly renewal: LeaseRenewal;
  private stripe = randomInt(STRIPES);
  private scope: string | undefined;
  private migrated: Promise<void> | undefined;
  private scoped: Promise<void> | undefined;
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
    this.holder = `${os.hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    this.sql = statementsFor(this.options.table, pg.escapeLiteral(`bufio:${this.table}`));
    this.unreadableTable = this.sql.tables.unreadable;
    this.recoveryInterval = Math.floor(this.options.leaseTimeout / 2);
    const digest = createHash('sha1').update(this.table).digest('hex');
    this.channel = `bufio_${digest.slice(0, 24)}`;
    this.prepared = new Map(
      Object.entries(this.sql)
        .filter(([key, text]) => typeof text === 'string' && key !== 'ddl' && key !== 'migrate')
        .map(([key, text]) => [text as string, `bufio_${digest.slice(0, 12)}_${key}`]),
    );
    let connection: pg.ClientConfig | undefined;
    if (this.options.pool) {
      this.pool = this.options.pool;
      this.ownsPool = false;
      // A pool from pg exposes the settings its clients are made with; another kind may not.
      const settings = (this.pool as { options?: unknown }).options;
      connection =
        typeof settings === 'object' && settings ? (settings as pg.ClientConfig) : undefined;
    } else {
      connection = {
        ...OWNED_POOL_DEFAULTS,
        ...this.options.poolConfig,
        connectionString: this.options.connectionString,
      };
      this.pool = new pg.Pool(connection);
      this.ownsPool = true;
    }
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
    this.renewal = new LeaseRenewal({
      leaseTimeout: this.options.leaseTimeout,
      renew: async (seqs) => {
        const until = Date.now() + this.options.leaseTimeout;
        await this.query('lease renewal', this.sql.renew, [
          this.holderKey,
          seqs.map(Number),
          until,
        ]);
      },
      report: (error) => this.report(error as Error),
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
    await this.query('migrate', this.sql.migrate, []);
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
    await this.prepareToLease();
    const seq = this.book.take();
    const clock = Date.now();
    const fresh = this.freshFloor.current(clock);
    const retries = this.retryFloor.current(clock);
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
      rows = (await this.query<ReservedRow>('reserve', text, values)).rows;
    } catch (error) {
      // It may have locked records and let them go: look from the head next time.
      this.resetFloors();
      throw error;
    }
    if (rows.length === 0) return [];
    // RETURNING has no order: due retries first, then fresh records, each in id order.
    rows.sort(
      (a, b) => Number(b.attempts !== null) - Number(a.attempts !== null) || compareIds(a.id, b.id),
    );
    this.advanceFloors(rows, clock);
    this.book.open(
      seq,
      rows.map((row) => row.id),
    );
    this.renewal.hold([String(seq)]);
    const batch: StoredRecord<T>[] = [];
    const unreadable: Unreadable[] = [];
    for (const row of rows) {
      let record: T;
      try {
        record = this.options.serializer.deserialize(row.payload);
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
    if (unreadable.length > 0) await this.setAside(unreadable, options.onUnreadable);
    return batch;
  }

  async ack(records: readonly StoredRecord<T>[]): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('ack');
    await this.settle(idsOf(records), async ({ lease, ids, last }) => {
      // The usual case, a whole batch done: one row deleted, no ids sent.
      if (last) {
        const ended = await this.query('ack', this.sql.ackAll, [
          this.holderKey,
          lease.seq,
          ids.length,
        ]);
        if (ended.rowCount === 1) return;
      }
      await this.query('ack', this.sql.ack, [this.holderKey, lease.seq, ids, this.nextStripe()]);
    });
  }

  async release(records: readonly StoredRecord<T>[], visibleAt: number): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('release');
    await this.settle(idsOf(records), async ({ lease, ids }) => {
      if (lease.seq < 0) return; // not leased here: nothing to put back
      await this.query('release', this.sql.release, [
        this.holderKey,
        lease.seq,
        ids,
        this.nextStripe(),
        toMs(visibleAt),
      ]);
    });
  }

  /** Records waiting (fresh, or for a retry), from the counters: no table is scanned. */
  async size(): Promise<number> {
    this.assertOpen('size');
    await this.ensureTable();
    const result = await this.query<{ n: string }>('size', this.sql.size, []);
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
    this.resetFloors();
    const result = await this.query<{ n: number }>('recover', this.sql.recover, [
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
    const result = await this.query<{ n: string }>('leasedElsewhere', this.sql.leasedElsewhere, [
      this.holderKey,
    ]);
    return Number(result.rows[0]?.n ?? 0);
  }

  /**
   * Calls `listener` when another instance appended records (a `NOTIFY` on the buffer's channel,
   * received on this instance's session connection), and once after that connection was lost
   * and opened again. Returns a function that stops.
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
    await this.batcher.idle();
    this.renewal.stop();
    const held = this.book.clear();
    try {
      if (held > 0) {
        await this.query('close', this.sql.giveBack, [
          this.holderKey,
          this.nextStripe(),
          Date.now(),
        ]);
      }
    } catch (error) {
      // The leases lapse on their own; say why they were not returned now.
      this.report(error as Error);
    } finally {
      await this.session.close();
      if (this.ownsPool) await this.pool.end();
      this.pool.off('error', this.onPoolError);
    }
  }

  private async insert(payloads: readonly string[]): Promise<string[]> {
    await this.ensureTable();
    const result = await this.query<InsertedRow>('append', this.sql.insert, [
      payloads,
      this.nextStripe(),
      this.channel,
      this.token,
    ]);
    const ids = idsOfInsert(result.rows[0]);
    if (ids.length !== payloads.length) {
      throw new StorageError(
        `PostgreSQL append to ${this.table} returned ${ids.length} ids for ${payloads.length} records`,
      );
    }
    return ids;
  }

  /**
   * Takes the records `ids` out of their leases and runs `apply` once per lease (records this
   * instance does not hold come as one group with seq -1). A lease is no longer renewed once nothing of it
   * is open, or once a statement on it failed: then it lapses, and recovery returns whatever the
   * failed statement left open.
   */
  private async settle(
    ids: readonly string[],
    apply: (settlement: Settlement) => Promise<void>,
  ): Promise<void> {
    const { settlements, unknown } = this.book.settle(ids);
    if (unknown.length > 0) {
      settlements.push({ lease: { seq: -1, open: new Set() }, ids: unknown, last: false });
    }
    const outcomes = await Promise.allSettled(
      settlements.map(async (settlement) => {
        let failed = true;
        try {
          await apply(settlement);
          failed = false;
        } finally {
          if ((failed || settlement.last) && settlement.lease.seq >= 0) {
            this.renewal.forget([String(settlement.lease.seq)]);
          }
        }
      }),
    );
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
  }

  /**
   * A record that cannot be deserialized would fail every batch it is in: move it from its lease
   * to the unreadable table, where it is neither delivered nor counted, and report it.
   */
  private async setAside(
    rows: readonly Unreadable[],
    onUnreadable: ReserveOptions['onUnreadable'],
  ): Promise<void> {
    const ids = rows.map((entry) => entry.row.id);
    const reasons = rows.map((entry) => describeDriverError(entry.error));
    try {
      await this.settle(ids, async ({ lease }) => {
        await this.query('set aside', this.sql.setAside, [this.holderKey, lease.seq, ids, reasons]);
      });
    } catch (error) {
      // Still in the lease, no longer renewed: it comes back after leaseTimeout, is met again.
      this.report(error as Error);
      return;
    }
    const records: UnreadableRecord[] = rows.map(({ row, error }) => ({
      id: row.id,
      payload: row.payload,
      location: `${this.unreadableTable} (id ${row.id})`,
      cause: error,
    }));
    if (onUnreadable) {
      try {
        onUnreadable(records);
        return;
      } catch (error) {
        this.report(error as Error);
        return;
      }
    }
    const first = rows[0]?.error;
    this.report(
      new SerializationError(
        `${ids.length} record(s) in ${this.table} could not be deserialized and were set aside ` +
          `in ${this.unreadableTable} (ids ${ids.join(', ')}): ${describeDriverError(first)}`,
        { cause: first },
      ),
    );
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
    this.scoped ??= this.query<{ scope: string | null; oid: string | null }>(
      'reserve',
      this.sql.scope,
      [this.table],
    ).then(
      (result) => {
        const { scope, oid } = result.rows[0] ?? { scope: null, oid: null };
        if (scope === null || oid === null) {
          throw new StorageError(
            `PostgreSQL reserve failed: ${this.sql.tables.meta} is empty or ${this.table} is missing; run migrate()`,
          );
        }
        this.scope = `pg:${scope}:${oid}`;
      },
      (error: unknown) => {
        this.scoped = undefined;
        throw error;
      },
    );
    await this.scoped;
    await this.session.ready();
  }

  /** The scans took `rows` (sorted: retries, then fresh records): start past them next time. */
  private advanceFloors(rows: readonly ReservedRow[], clock: number): void {
    const last = rows[rows.length - 1] as ReservedRow;
    if (last.attempts === null) this.freshFloor.took({ visibleAt: 0n, id: BigInt(last.id) }, clock);
    // Retries come in id order, not due order: the floor keeps the highest key it is given.
    for (const row of rows) {
      if (row.visible_at === null) break;
      this.retryFloor.took({ visibleAt: BigInt(row.visible_at), id: BigInt(row.id) }, clock);
    }
  }

  private resetFloors(): void {
    this.freshFloor.reset();
    this.retryFloor.reset();
  }

  private nextStripe(): number {
    this.stripe = (this.stripe + 1) % STRIPES;
    return this.stripe;
  }

  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    operation: string,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    // Named: a statement is parsed and planned once per pooled connection rather than on every
    // call, which matters for a small batch (planning a reserve costs as much as leasing 100
    // records). Behind PgBouncer this needs session pooling, or 1.21+ with prepared statements on.
    const name = this.prepared.get(text);
    try {
      return await this.pool.query<R>(name ? { name, text, values } : { text, values });
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

/**
 * A random holder key: positive (above the int4 range that `hashtext` locks use) when the
 * instance holds it as a presence lock, negative when it cannot (its leases then only lapse).
 */
function randomHolderKey(present: boolean): string {
  const key = (randomBytes(8).readBigUInt64BE() >> 2n) | (1n << 61n);
  return String(present ? key : -key);
}

/** The ids an INSERT returned, in payload order. */
function idsOfInsert(row: InsertedRow | undefined): string[] {
  if (!row || row.first === null) return [];
  if (row.ids) return row.ids;
  const first = BigInt(row.first);
  return Array.from({ length: row.n }, (_, i) => String(first + BigInt(i)));
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

/** Epoch ms for a bigint column: `Infinity` becomes the largest date, and fractions are dropped. */
function toMs(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.floor(Math.min(Math.max(value, 0), MAX_MS));
}

/** Orders bigint ids given as decimal strings without converting them to numbers. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
