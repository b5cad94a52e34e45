import pg from 'pg';
import { POSTGRES_URL } from '../../support/services.js';

export { POSTGRES_URL };

/** Distinguishes this run's tables from other runs' and other jest workers'. */
export const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;

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
