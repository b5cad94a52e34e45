import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import knexFactory, { type Knex } from 'knex';
import { BufIO, type WorkOutput, type WorkResult } from '../../lib/index.js';
import { describeWith, POSTGRES_URL } from '../support/services.js';
import { range } from '../support/workers.js';
import { uniqueTable } from '../storages/postgres/support.js';

interface Row {
  readonly id: number;
  readonly label: string;
}

const rows = (from: number, to: number): Row[] =>
  range(from, to).map((id) => ({ id, label: `row ${id}` }));

/** A thenable that is not a Promise, and counts how often it is run (then() called). */
function lazyQuery(run: () => WorkResult<unknown>) {
  const query = {
    runs: 0,
    then<R1 = WorkResult<unknown>, R2 = never>(
      onFulfilled?: ((value: WorkResult<unknown>) => R1 | PromiseLike<R1>) | null,
      onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
    ): PromiseLike<R1 | R2> {
      query.runs++;
      return new Promise<WorkResult<unknown>>((resolve, reject) => {
        setTimeout(() => {
          try {
            resolve(run());
          } catch (error) {
            reject(error);
          }
        }, 1);
      }).then(onFulfilled, onRejected);
    },
  };
  return query;
}

describe('a worker that returns a thenable', () => {
  it.each([
    ['without workTimeout', {}],
    ['with workTimeout', { workTimeout: 5_000 }],
    ['with instrumentation', { instrumented: true }],
  ])(
    'is awaited exactly once (%s)',
    async (_, setup: { workTimeout?: number; instrumented?: boolean }) => {
      const written: number[] = [];
      const queries: ReturnType<typeof lazyQuery>[] = [];
      const bufio = new BufIO<number>({
        batchSize: 5,
        flushInterval: 10,
        workTimeout: setup.workTimeout,
        retry: { maxAttempts: 2, initialDelay: 1 },
        worker: (records) => {
          const query = lazyQuery(() => {
            if (records.includes(13)) throw new Error('constraint violated');
            written.push(...records);
          });
          queries.push(query);
          return query;
        },
      });
      const wrapped = jest.fn<(...args: unknown[]) => void>();
      if (setup.instrumented) {
        bufio.use({
          aroundWork: async (call, run) => {
            wrapped(call.records.length);
            return run();
          },
        });
      }
      const deadLettered: number[] = [];
      bufio.on('deadLettered', ({ records }) => deadLettered.push(...records));
      bufio.start();
      await bufio.push(range(0, 15));
      await bufio.stop();
      expect(queries.map((q) => q.runs)).toEqual(queries.map(() => 1));
      expect(written).toEqual(range(0, 10));
      // The failing query failed the batch: retried once, then dead-lettered; never counted processed.
      expect(deadLettered).toEqual(range(10, 15));
      expect(bufio.stats()).toMatchObject({
        processed: 10,
        failed: 10,
        retried: 5,
        deadLettered: 5,
      });
      if (setup.instrumented) expect(wrapped).toHaveBeenCalledTimes(4);
    },
  );
});

/** An ORM worker's table, as the shared cases below see it. */
interface OrmTable {
  /** The worker: returns the ORM's insert query, unawaited. */
  insert(batch: Row[]): WorkOutput<unknown>;
  count(): number | Promise<number>;
  /** What the driver says of a primary-key violation. */
  readonly duplicateKey: RegExp;
}

/** The cases every ORM runs: N pushed, N rows; a failing query retried, then dead-lettered. */
function describeOrmWorker(table: () => OrmTable): void {
  it('writes every pushed record: N pushed, N rows', async () => {
    const { insert, count } = table();
    const bufio = new BufIO<Row>({ batchSize: 25, flushInterval: 10, worker: insert });
    bufio.start();
    await bufio.push(rows(0, 100));
    await bufio.stop();
    expect(await count()).toBe(100);
    expect(bufio.stats().processed).toBe(100);
  });

  it('retries a query that violates a constraint, then dead-letters it; counts processed only what was written', async () => {
    const { insert, count, duplicateKey } = table();
    const before = await count();
    const deadLettered: { records: readonly Row[]; error: Error }[] = [];
    const bufio = new BufIO<Row>({
      batchSize: 10,
      flushInterval: 10,
      bisectOnError: true,
      retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 5 },
      worker: insert,
      deadLetter: (records, error) => {
        deadLettered.push({ records, error });
      },
    });
    bufio.start();
    // Row 42 is already there (from the first case): its insert violates the primary key.
    await bufio.push(rows(200, 215).concat(rows(42, 43)).concat(rows(215, 220)));
    await bufio.stop();
    expect(deadLettered.map((d) => d.records.map((r) => r.id))).toEqual([[42]]);
    expect(deadLettered[0]?.error.message).toMatch(duplicateKey);
    const stats = bufio.stats();
    expect(stats.failed).toBeGreaterThan(1);
    expect(stats.retried).toBeGreaterThan(0);
    expect(stats.processed).toBe(20);
    expect((await count()) - before).toBe(stats.processed);
  });
}

describe('a drizzle-orm worker (better-sqlite3) returning its query unawaited', () => {
  const events = sqliteTable('events', {
    id: integer('id').primaryKey(),
    label: text('label').notNull(),
  });
  let sqlite: Database.Database;
  let db: ReturnType<typeof drizzle>;

  beforeAll(() => {
    sqlite = new Database(':memory:');
    sqlite.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, label TEXT NOT NULL)');
    db = drizzle(sqlite);
  });
  afterAll(() => {
    sqlite.close();
  });

  describeOrmWorker(() => ({
    insert: (batch) => db.insert(events).values(batch),
    count: () => (sqlite.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
    duplicateKey: /UNIQUE constraint failed/,
  }));
});

const describePostgres = await describeWith('postgres');

describePostgres('a knex worker (pg) returning its query builder unawaited', () => {
  const table = uniqueTable('knex');
  let knex: Knex;

  beforeAll(async () => {
    knex = knexFactory({ client: 'pg', connection: POSTGRES_URL, pool: { min: 0, max: 2 } });
    await knex.schema.createTable(table, (t) => {
      t.integer('id').primary();
      t.text('label').notNullable();
    });
  });
  afterAll(async () => {
    await knex.schema.dropTableIfExists(table);
    await knex.destroy();
  });

  describeOrmWorker(() => ({
    insert: (batch) => knex(table).insert(batch),
    count: async () => {
      const [row] = await knex(table).count<{ n: string }[]>({ n: '*' });
      return Number(row?.n);
    },
    duplicateKey: /duplicate key value violates unique constraint/,
  }));
});
