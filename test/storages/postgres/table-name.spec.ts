import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { InvalidOptionsError } from '../../../lib/index.js';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { adminPool, dropTables, POSTGRES_URL, RUN_ID } from './support.js';

const describePostgres = await describeWith('postgres');

function refusal(table: unknown): InvalidOptionsError {
  try {
    new PostgresStorage({ connectionString: POSTGRES_URL, table: table as string });
  } catch (error) {
    return error as InvalidOptionsError;
  }
  throw new Error(`table ${JSON.stringify(table)} was accepted`);
}

describe('PostgresStorage table names', () => {
  it.each([
    'x; drop table y',
    'events"; DROP TABLE users; --',
    'a"b',
    "a'b",
    'a b',
    ' events',
    'events ',
    '',
    '1events',
    'my-events',
    'a.b.c',
    '.events',
    'events.',
    'public..events',
    'évènements',
    'events\u0000',
    'events\n',
    'x'.repeat(52),
    `${'s'.repeat(64)}.events`,
  ])('refuses %j at construction with InvalidOptionsError', (table) => {
    const error = refusal(table);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.code).toBe('BUFIO_INVALID_OPTIONS');
    expect(error.option).toBe('table');
    expect(error.value).toBe(table);
    expect(error.message).toContain('PostgresStorage: invalid option "table"');
    expect(error.message).toContain('[A-Za-z_][A-Za-z0-9_]*');
  });

  it.each([42, null, {}, ['events']])('refuses a non-string table %j', (table) => {
    expect(refusal(table)).toBeInstanceOf(InvalidOptionsError);
  });

  it('accepts the longest allowed names and quotes every part', () => {
    const table = 'x'.repeat(51);
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    expect(storage.table).toBe(`"${table}"`);
    const qualified = new PostgresStorage({
      connectionString: POSTGRES_URL,
      table: `${'s'.repeat(63)}.Events`,
    });
    expect(qualified.table).toBe(`"${'s'.repeat(63)}"."Events"`);
    const sql = qualified.migrationSql();
    for (const sibling of ['', '_retry', '_leases', '_unreadable', '_meta']) {
      expect(sql).toContain(`CREATE TABLE "${'s'.repeat(63)}"."Events${sibling}" (`);
    }
    expect(sql).toContain(`CREATE INDEX "Events_retry_due" ON "${'s'.repeat(63)}"."Events_retry"`);
    expect(qualified.unreadableTable).toBe(`"${'s'.repeat(63)}"."Events_unreadable"`);
    return Promise.all([storage.close(), qualified.close()]);
  });
});

describePostgres('PostgresStorage table names in PostgreSQL', () => {
  let admin: pg.Pool;
  const schema = `bufio_schema_${RUN_ID}`;

  beforeAll(async () => {
    admin = adminPool();
    await admin.query(`CREATE SCHEMA "${schema}"`);
  });

  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  async function roundTrip(table: string): Promise<void> {
    const storage = new PostgresStorage<{ n: number }>({
      connectionString: POSTGRES_URL,
      table,
      createTable: true,
    });
    try {
      await storage.append([{ n: 1 }, { n: 2 }]);
      const batch = await storage.reserve(10, { now: Date.now() });
      expect(batch.map((entry) => entry.record.n)).toEqual([1, 2]);
      await storage.ack(batch);
      expect(await storage.size()).toBe(0);
    } finally {
      await storage.close();
    }
  }

  async function tablesIn(namespace: string): Promise<string[]> {
    const result = await admin.query<{ tablename: string }>(
      'SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename',
      [namespace],
    );
    return result.rows.map((row) => row.tablename);
  }

  it('keeps the case of quoted names: Events and events are different tables', async () => {
    await roundTrip(`${schema}.Events`);
    await roundTrip(`${schema}.events`);
    const siblings = ['', '_leases', '_meta', '_retry', '_unreadable'];
    expect(await tablesIn(schema)).toEqual([
      ...siblings.map((suffix) => `Events${suffix}`),
      ...siblings.map((suffix) => `events${suffix}`),
    ]);
  });

  it('names every table, index and constraint of the longest table name in full', async () => {
    const table = `${'x'.repeat(51 - RUN_ID.length)}${RUN_ID}`;
    await roundTrip(`${schema}.${table}`);
    const names = await admin.query<{ relname: string }>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname LIKE $2 AND c.relkind IN ('r', 'i') ORDER BY 1`,
      [schema, `${table}%`],
    );
    expect(names.rows.map((row) => row.relname.slice(table.length))).toEqual([
      '',
      '_leases',
      '_leases_pkey',
      '_meta',
      '_meta_pkey',
      '_pkey',
      '_retry',
      '_retry_due',
      '_retry_pkey',
      '_unread_pkey',
      '_unreadable',
    ]);
  });

  it('works with a reserved word as the table name, which only quoting allows', async () => {
    await roundTrip(`${schema}.user`);
    expect(await tablesIn(schema)).toContain('user');
  });

  it('creates an unqualified table in the first schema of the search path', async () => {
    const table = `bufio_unqualified_${RUN_ID}`;
    try {
      await roundTrip(table);
      expect(await tablesIn('public')).toContain(table);
    } finally {
      await dropTables(admin, [table]);
    }
  });

  it('refuses to guess a schema that does not exist: migrate() fails clearly', async () => {
    const storage = new PostgresStorage({
      connectionString: POSTGRES_URL,
      table: `no_such_schema_${RUN_ID}.events`,
    });
    try {
      await expect(storage.migrate()).rejects.toMatchObject({
        code: 'BUFIO_STORAGE_FAILED',
        message: expect.stringContaining('schema'),
      });
    } finally {
      await storage.close();
    }
  });
});
