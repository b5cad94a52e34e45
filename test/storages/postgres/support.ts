import { afterAll, afterEach, beforeAll } from '@jest/globals';
import pg from 'pg';
import type { StoredRecord } from '../../../lib/index.js';
import {
  PostgresStorage,
  type PostgresStorageOptions,
} from '../../../lib/storages/postgres/index.js';
import { killFixtures } from '../../support/child-process.js';
import { POSTGRES_URL } from '../../support/services.js';

export { POSTGRES_URL };

/** Distinguishes this run's tables from other runs' and other jest workers'. */
export const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;

/** The record of the storage specs: a number, to read batches back as lists. */
export interface Rec {
  readonly n: number;
}

/** Records `from` to `to` (excluded). */
export const recs = (from: number, to: number): Rec[] =>
  Array.from({ length: to - from }, (_, i) => ({ n: from + i }));

/** A batch's records as their numbers. */
export const numbers = (batch: readonly StoredRecord<Rec>[]): number[] =>
  batch.map((e) => e.record.n);

let tableCount = 0;

/** A table name no other test, worker or run uses: `bufio_<tag>_<run>_<n>`. */
export function uniqueTable(tag: string): string {
  return `bufio_${tag}_${RUN_ID}_${++tableCount}`;
}

/** A small pool for the test's own statements (setup, checks, pg_terminate_backend). */
export function adminPool(): pg.Pool {
  const pool = new pg.Pool({
    connectionString: POSTGRES_URL,
    max: 3,
    application_name: `bufio-test-admin-${RUN_ID}`,
  });
  pool.on('error', () => undefined);
  return pool;
}

/** The tables a PostgresStorage on `table` uses (see lib/storages/postgres/statements.ts). */
export function bufioTables(table: string): string[] {
  return ['', '_retry', '_leases', '_unreadable', '_meta'].map((suffix) => `${table}${suffix}`);
}

/** Drops each table and the tables a storage keeps beside it. */
export async function dropTables(admin: pg.Pool, tables: Iterable<string>): Promise<void> {
  for (const table of tables) {
    await admin.query(
      `DROP TABLE IF EXISTS ${bufioTables(table)
        .map((t) => `"${t}"`)
        .join(', ')}`,
    );
  }
}

/** Terminates every backend whose application_name is `name`; returns how many. */
export async function terminateBackends(admin: pg.Pool, name: string): Promise<number> {
  const result = await admin.query<{ ok: boolean }>(
    'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  return result.rows.filter((row) => row.ok).length;
}

/** How many connections with `application_name` = `name` the server has. */
export async function countConnections(admin: pg.Pool, name: string): Promise<number> {
  const result = await admin.query<{ n: string }>(
    'SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = $1',
    [name],
  );
  return Number(result.rows[0]?.n);
}

export async function countRows(admin: pg.Pool, table: string): Promise<number> {
  const result = await admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${table}"`);
  return Number(result.rows[0]?.n);
}

/**
 * Every record a storage on `table` still holds, wherever it is: waiting (fresh or for a retry)
 * or in a lease, open. Set-aside records are not counted.
 */
export async function countRecords(admin: pg.Pool, table: string): Promise<number> {
  const result = await admin.query<{ n: string }>(
    `SELECT ((SELECT count(*) FROM "${table}") + (SELECT count(*) FROM "${table}_retry") +
      (SELECT coalesce(sum(records - coalesce(cardinality(settled), 0)), 0) FROM "${table}_leases"))::text AS n`,
  );
  return Number(result.rows[0]?.n);
}

/** What a PostgreSQL spec file shares; see `postgresSpec`. */
export interface PostgresSpec {
  /** The test's own pool, for setup and checks (from `beforeAll` on). */
  readonly admin: pg.Pool;
  /** A new table name, dropped with its siblings after the file. */
  table(): string;
  /** Drops `table` (a name made elsewhere) with its siblings after the file. */
  adopt(table: string): void;
  /** Runs `step` after the current test, the latest registered first. */
  cleanup(step: () => Promise<unknown>): void;
  /**
   * A storage on `table` (a new one by default), migrated, closed after the test: its own pool
   * of 3, errors ignored unless `options` says otherwise.
   */
  storage<T>(
    options?: Partial<PostgresStorageOptions<T>>,
    table?: string,
  ): Promise<PostgresStorage<T>>;
}

/** Registers a spec file's hooks (admin pool, cleanup after each test, tables dropped at the end). */
export function postgresSpec(tag: string): PostgresSpec {
  let admin: pg.Pool | undefined;
  const tables = new Set<string>();
  let steps: (() => Promise<unknown>)[] = [];
  beforeAll(() => {
    admin = adminPool();
  });
  afterEach(async () => {
    for (const step of steps.reverse()) await step();
    steps = [];
  });
  afterAll(async () => {
    if (!admin) return;
    await dropTables(admin, tables);
    await admin.end();
  });
  const spec: PostgresSpec = {
    get admin(): pg.Pool {
      if (!admin) throw new Error('postgresSpec: the admin pool exists from beforeAll on');
      return admin;
    },
    table() {
      const table = uniqueTable(tag);
      tables.add(table);
      return table;
    },
    adopt(table) {
      tables.add(table);
    },
    cleanup(step) {
      steps.push(step);
    },
    async storage<T>(options: Partial<PostgresStorageOptions<T>> = {}, table = spec.table()) {
      tables.add(table);
      const storage = new PostgresStorage<T>({
        connectionString: POSTGRES_URL,
        table,
        poolConfig: { max: 3 },
        onError: () => undefined,
        ...options,
      });
      spec.cleanup(() => storage.close());
      await storage.migrate();
      return storage;
    },
  };
  return spec;
}

/**
 * For a spec whose buffers run in child processes: a migrated table of its own (from `beforeAll`
 * on), the children killed and the tables dropped after the file.
 */
export function childProcessSpec(tag: string): { readonly table: string; readonly admin: pg.Pool } {
  let admin: pg.Pool | undefined;
  const table = uniqueTable(tag);
  beforeAll(async () => {
    admin = adminPool();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
  });
  afterAll(async () => {
    killFixtures();
    if (!admin) return;
    await dropTables(admin, [table]);
    await admin.end();
  });
  return {
    table,
    get admin(): pg.Pool {
      if (!admin) throw new Error('childProcessSpec: the admin pool exists from beforeAll on');
      return admin;
    },
  };
}
