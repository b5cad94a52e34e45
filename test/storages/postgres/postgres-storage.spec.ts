import { expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { StorageUnavailableError } from '../../../lib/index.js';
import {
  PostgresStorage,
  type PostgresStorageOptions,
} from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import {
  countConnections,
  countRecords,
  countRows,
  POSTGRES_URL,
  postgresSpec,
  RUN_ID,
  terminateBackends,
  uniqueTable,
  numbers,
  type Rec,
  recs,
} from './support.js';
import { sleep, waitFor } from '../../support/wait.js';

const describePostgres = await describeWith('postgres');

/** The text and values of a `pool.query` call, given as (text, values) or as a config object. */
function statement(call: unknown[]): { text: string; values: unknown[] } {
  const [first, second] = call as [string | { text: string; values?: unknown[] }, unknown[]?];
  return typeof first === 'string'
    ? { text: first, values: second ?? [] }
    : { text: first.text, values: first.values ?? [] };
}

describePostgres('PostgresStorage', () => {
  const spec = postgresSpec('pgs');

  /** A table of its own, migrated, and a storage over it on a pool the test controls. */
  async function setup(
    options: Partial<PostgresStorageOptions<Rec>> = {},
    table = uniqueTable('pgs'),
  ): Promise<{ storage: PostgresStorage<Rec>; pool: pg.Pool; table: string }> {
    spec.adopt(table);
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 3 });
    const storage = new PostgresStorage<Rec>({ pool, table, onError: () => undefined, ...options });
    await storage.migrate();
    spec.cleanup(async () => {
      await storage.close();
      if (!pool.ended) await pool.end();
    });
    return { storage, pool, table };
  }

  /** Ends a storage's connections without closing it, as a killed process would. */
  async function crash(pool: pg.Pool): Promise<void> {
    await pool.end();
  }

  it('combines the appends of one event-loop turn into one INSERT, ids ascending in order', async () => {
    const { storage, pool } = await setup();
    const query = jest.spyOn(pool, 'query');
    const calls = Array.from({ length: 50 }, (_, i) => storage.append(recs(i * 3, i * 3 + 3)));
    const ids = (await Promise.all(calls)).flat();
    const inserts = query.mock.calls.filter((call) => statement(call).text.includes('INSERT INTO'));
    expect(inserts).toHaveLength(1);
    expect(ids).toHaveLength(150);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    const asNumbers = ids.map(Number);
    expect(asNumbers).toEqual([...asNumbers].sort((a, b) => a - b));
    // Each call got the ids of its own records.
    const batch = await storage.reserve(150, { now: Date.now() });
    expect(batch.map((e) => e.id)).toEqual(ids);
    expect(numbers(batch)).toEqual(recs(0, 150).map((r) => r.n));
  });

  it('sends appends made while an INSERT runs in the next one, and splits big bursts between calls', async () => {
    const { storage, pool } = await setup();
    const query = jest.spyOn(pool, 'query');
    const first = storage.append(recs(0, 1));
    const isInsert = (call: unknown[]): boolean => statement(call).text.includes('INSERT INTO');
    await waitFor('the first INSERT', () => query.mock.calls.some(isInsert));
    const rest = [
      storage.append(recs(1, 3001)),
      storage.append(recs(3001, 6001)),
      storage.append(recs(6001, 6002)),
    ];
    await Promise.all([first, ...rest]);
    const inserted = query.mock.calls
      .filter(isInsert)
      .map((call) => (statement(call).values[0] as string[]).length);
    // 1, then 3000 (3000 + 3000 would pass the 5000-record bound), then 3000 + 1.
    expect(inserted).toEqual([1, 3000, 3001]);
    expect(await storage.size()).toBe(6002);
  });

  it('returns the ids of each record even when another instance takes ids at the same time', async () => {
    const a = await setup();
    const b = await setup({}, a.table);
    const given = new Map<number, string>();
    const appendAll = async (storage: PostgresStorage<Rec>, from: number): Promise<void> => {
      for (let round = 0; round < 10; round++) {
        const records = recs(from + round * 500, from + round * 500 + 500);
        const ids = await storage.append(records);
        records.forEach((record, i) => given.set(record.n, ids[i] as string));
      }
    };
    await Promise.all([appendAll(a.storage, 0), appendAll(b.storage, 100_000)]);
    const taken = new Map<number, string>();
    for (;;) {
      const batch = await a.storage.reserve(1000, { now: Date.now() });
      if (batch.length === 0) break;
      for (const entry of batch) taken.set(entry.record.n, String(entry.id));
      await a.storage.ack(batch);
    }
    expect(taken.size).toBe(10_000);
    expect([...taken].filter(([n, id]) => given.get(n) !== id)).toEqual([]);
  });

  it('leaves a pool it was given open on close, and stops listening to it', async () => {
    const { storage, pool } = await setup();
    const listeners = pool.listenerCount('error');
    expect(listeners).toBeGreaterThan(0);
    await storage.close();
    expect(pool.listenerCount('error')).toBe(listeners - 1);
    expect(pool.ended).toBe(false);
    await expect(pool.query('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
  });

  it('ends the pool it created from a connection string on close', async () => {
    const table = uniqueTable('own');
    spec.adopt(table);
    const app = `bufio-own-${RUN_ID}`;
    const storage = new PostgresStorage<Rec>({
      connectionString: POSTGRES_URL,
      table,
      createTable: true,
      poolConfig: { application_name: app },
    });
    await storage.append(recs(0, 3));
    expect(await countConnections(spec.admin, app)).toBeGreaterThan(0);
    await storage.close();
    await waitFor(
      'the owned pool to disconnect',
      async () => (await countConnections(spec.admin, app)) === 0,
    );
    expect(await countRows(spec.admin, table)).toBe(3);
  });

  it('leases only what maxBytes lets it return: the rest stays visible to others', async () => {
    const { storage, table } = await setup();
    const other = await setup({}, table);
    await storage.append(recs(0, 5));
    const size = Buffer.byteLength(JSON.stringify({ n: 0 }));
    const batch = await storage.reserve(10, { now: Date.now(), maxBytes: size * 2 + 1 });
    expect(numbers(batch)).toEqual([0, 1]);
    expect(await storage.size()).toBe(3);
    expect(numbers(await other.storage.reserve(10, { now: Date.now() }))).toEqual([2, 3, 4]);
  });

  it('shares a table between instances: each record is leased to one of them', async () => {
    const a = await setup();
    const b = await setup({}, a.table);
    await a.storage.append(recs(0, 200));
    const seen: number[] = [];
    const take = async (storage: PostgresStorage<Rec>): Promise<void> => {
      for (;;) {
        const batch = await storage.reserve(7, { now: Date.now() });
        if (batch.length === 0) return;
        seen.push(...numbers(batch));
        await storage.ack(batch);
      }
    };
    await Promise.all([take(a.storage), take(b.storage), take(a.storage), take(b.storage)]);
    expect([...seen].sort((x, y) => x - y)).toEqual(recs(0, 200).map((r) => r.n));
  });

  it('takes a lapsed lease back on recover(), counting the delivery that ended', async () => {
    // The crashed instance's connections are gone, but its session is not: as for a process that
    // hangs, only the lapse of its lease frees the records.
    // The lease is long enough that a loaded machine does not let it lapse before the first check.
    const crashed = await setup({ leaseTimeout: 600 });
    const survivor = await setup({ leaseTimeout: 600 }, crashed.table);
    await crashed.storage.append(recs(0, 4));
    const first = await crashed.storage.reserve(2, { now: Date.now() });
    expect(numbers(first)).toEqual([0, 1]);
    await crashed.storage.reserve(1, { now: Date.now() });
    await crash(crashed.pool);
    expect(numbers(await survivor.storage.reserve(10, { now: Date.now() }))).toEqual([3]);
    expect(await survivor.storage.recover()).toBe(0);
    expect(await survivor.storage.size()).toBe(0);
    expect(await survivor.storage.leasedElsewhere()).toBe(3);
    await sleep(700);
    // recover() returns the crashed holder's records; the survivor's own lease is renewed, kept.
    expect(await survivor.storage.recover()).toBe(3);
    expect(await survivor.storage.size()).toBe(3);
    expect(await survivor.storage.leasedElsewhere()).toBe(0);
    const reclaimed = await survivor.storage.reserve(10, { now: Date.now() });
    expect(reclaimed.map((e) => [e.record.n, e.id, e.attempts, e.deliveries])).toEqual([
      [0, first[0]?.id, 0, 2],
      [1, first[1]?.id, 0, 2],
      [2, expect.any(String), 0, 2],
    ]);
  });

  it('renews the leases it holds, so a long worker call keeps its records', async () => {
    const holder = await setup({ leaseTimeout: 150 });
    const other = await setup({ leaseTimeout: 150 }, holder.table);
    await holder.storage.append(recs(0, 3));
    const batch = await holder.storage.reserve(10, { now: Date.now() });
    await sleep(600); // four lease periods
    expect(await other.storage.recover()).toBe(0);
    expect(await other.storage.reserve(10, { now: Date.now() })).toEqual([]);
    expect(await other.storage.size()).toBe(0);
    await holder.storage.ack(batch);
    expect(await countRecords(spec.admin, holder.table)).toBe(0);
  });

  it('does not disturb a record another holder took after its lease lapsed', async () => {
    const slow = await setup();
    const fast = await setup({}, slow.table);
    await slow.storage.append(recs(0, 2));
    const stale = await slow.storage.reserve(10, { now: Date.now() });
    // As if slow's lease had lapsed (a stalled process): fast recovers and takes the records.
    await spec.admin.query(`UPDATE "${slow.table}_leases" SET until = 0`);
    expect(await fast.storage.recover()).toBe(2);
    const taken = await fast.storage.reserve(10, { now: Date.now() });
    expect(numbers(taken)).toEqual([0, 1]);
    await slow.storage.release(stale, Date.now());
    expect(await fast.storage.size()).toBe(0);
    const leases = await spec.admin.query<{ holder: string; records: number }>(
      `SELECT holder, records FROM "${slow.table}_leases"`,
    );
    expect(leases.rows).toEqual([{ holder: fast.storage.holder, records: 2 }]);
    expect(await countRows(spec.admin, `${slow.table}_retry`)).toBe(0);
    await fast.storage.ack(taken);
    expect(await countRecords(spec.admin, slow.table)).toBe(0);
  });

  it('frees its leases on close, so others need not wait for them to lapse', async () => {
    const closing = await setup({ leaseTimeout: 60_000 });
    const other = await setup({ leaseTimeout: 60_000 }, closing.table);
    await closing.storage.append(recs(0, 3));
    await closing.storage.reserve(2, { now: Date.now() });
    await closing.storage.close();
    const batch = await other.storage.reserve(10, { now: Date.now() });
    expect(numbers(batch)).toEqual([0, 1, 2]);
    // Given back unprocessed by a holder that did not crash: not a delivery that ended badly.
    expect(batch.map((e) => [e.attempts, e.deliveries])).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
  });

  it('writes appends still queued before close resolves', async () => {
    const { storage, table } = await setup();
    const appended = storage.append(recs(0, 10));
    await storage.close();
    await expect(appended).resolves.toHaveLength(10);
    expect(await countRows(spec.admin, table)).toBe(10);
  });

  it('never creates the table on its own; migrate() does, safely from several instances at once', async () => {
    const table = uniqueTable('mig');
    spec.adopt(table);
    const storages = [0, 1, 2].map(
      () => new PostgresStorage<Rec>({ connectionString: POSTGRES_URL, table }),
    );
    spec.cleanup(async () => {
      for (const s of storages) await s.close();
    });
    const [first] = storages as [PostgresStorage<Rec>];
    await expect(first.size()).rejects.toThrow(/does not exist.*migrate\(\)/);
    const exists = async (): Promise<boolean> =>
      ((await spec.admin.query('SELECT 1 FROM pg_tables WHERE tablename = $1', [table])).rowCount ??
        0) > 0;
    expect(await exists()).toBe(false);
    await Promise.all(storages.map((s) => s.migrate()));
    await first.migrate();
    expect(await exists()).toBe(true);
    const indexes = await spec.admin.query<{ tablename: string; indexdef: string }>(
      'SELECT tablename, indexdef FROM pg_indexes WHERE tablename LIKE $1 ORDER BY indexname',
      [`${table}%`],
    );
    // One index on the table of fresh records (its key), and the due order of retries.
    expect(
      indexes.rows.map((r) =>
        r.indexdef.replace(' USING btree', '').replace(' ON public.', ' ON '),
      ),
    ).toEqual([
      `CREATE UNIQUE INDEX ${table}_leases_pkey ON ${table}_leases (holder_key, seq)`,
      `CREATE UNIQUE INDEX ${table}_meta_pkey ON ${table}_meta (stripe)`,
      `CREATE UNIQUE INDEX ${table}_pkey ON ${table} (id)`,
      `CREATE INDEX ${table}_retry_due ON ${table}_retry (visible_at, id)`,
      `CREATE UNIQUE INDEX ${table}_retry_pkey ON ${table}_retry (id)`,
      `CREATE UNIQUE INDEX ${table}_unread_pkey ON ${table}_unreadable (id)`,
    ]);
    expect(first.migrationSql()).toMatch(/^DO \$bufio\$/);
    // migrationSql() is what migrate() runs: the same tables come of it on a fresh name.
    const other = uniqueTable('mig');
    spec.adopt(other);
    await spec.admin.query(first.migrationSql().replaceAll(`"${table}`, `"${other}`));
    expect(await countRows(spec.admin, `${other}_meta`)).toBe(16);
  });

  it('with createTable: true, creates the table before its first statement', async () => {
    const table = uniqueTable('auto');
    spec.adopt(table);
    const storage = new PostgresStorage<Rec>({
      connectionString: POSTGRES_URL,
      table,
      createTable: true,
    });
    spec.cleanup(() => storage.close());
    await expect(storage.append(recs(0, 2))).resolves.toHaveLength(2);
    expect(await countRows(spec.admin, table)).toBe(2);
  });

  it('reports an idle connection killed by pg_terminate_backend instead of crashing, and goes on', async () => {
    const app = `bufio-idle-${RUN_ID}`;
    const table = uniqueTable('idle');
    spec.adopt(table);
    const reported: Error[] = [];
    const storage = new PostgresStorage<Rec>({
      connectionString: POSTGRES_URL,
      table,
      createTable: true,
      poolConfig: { application_name: app, max: 2 },
      onError: (error) => reported.push(error),
    });
    spec.cleanup(() => storage.close());
    await storage.append(recs(0, 1)); // leaves an idle connection in the pool
    expect(await terminateBackends(spec.admin, app)).toBeGreaterThan(0);
    await waitFor('the idle connection error', () => reported.length > 0);
    expect(reported[0]).toBeInstanceOf(StorageUnavailableError);
    expect(reported[0]?.message).toMatch(/PostgreSQL is unavailable: an idle pooled connection/);
    expect(reported[0]?.message).toMatch(/57P01|terminat/);
    await expect(storage.append(recs(1, 2))).resolves.toHaveLength(1);
    expect(await storage.size()).toBe(2);
  });
});
