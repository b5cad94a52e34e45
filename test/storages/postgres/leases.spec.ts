import { expect, it } from '@jest/globals';
import pg from 'pg';
import { StorageUnavailableError, type StoredRecord } from '../../../lib/index.js';
import {
  PostgresStorage,
  type PostgresStorageOptions,
} from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { sleep, waitFor } from '../../support/wait.js';
import {
  countRecords,
  countRows,
  dropTables,
  POSTGRES_URL,
  postgresSpec,
  type Rec,
  recs,
  numbers,
} from './support.js';
import { TcpProxy, targetOf, throughProxy } from './tcp-proxy.js';

const describePostgres = await describeWith('postgres');

describePostgres('PostgresStorage leases, counters and ids', () => {
  const spec = postgresSpec('lease');
  const open = (
    options: Partial<PostgresStorageOptions<Rec>> = {},
    table?: string,
  ): Promise<PostgresStorage<Rec>> => spec.storage<Rec>(options, table);

  const tableOf = (storage: PostgresStorage<Rec>): string => storage.table.slice(1, -1);

  it('leases a batch as one row: its records leave the table, no record row is rewritten', async () => {
    const storage = await open();
    const table = tableOf(storage);
    await storage.append(recs(0, 50));
    const before = await spec.admin.query<{ xmin: string }>(`SELECT xmin::text FROM "${table}"`);
    const batch = await storage.reserve(30, { now: Date.now() });
    expect(numbers(batch)).toEqual(recs(0, 30).map((r) => r.n));
    const leases = await spec.admin.query<{ records: number; ids: string[] }>(
      `SELECT records, ids::text[] AS ids FROM "${table}_leases"`,
    );
    expect(leases.rows).toHaveLength(1);
    expect(leases.rows[0]?.records).toBe(30);
    expect([...(leases.rows[0]?.ids ?? [])].sort((a, b) => Number(a) - Number(b))).toEqual(
      batch.map((e) => e.id),
    );
    // The records left behind were not touched: same row versions as before the reserve.
    const after = await spec.admin.query<{ xmin: string }>(`SELECT xmin::text FROM "${table}"`);
    expect(after.rows).toEqual(before.rows.slice(30));
    await storage.ack(batch);
    expect(await countRows(spec.admin, `${table}_leases`)).toBe(0);
    expect(await countRecords(spec.admin, table)).toBe(20);
  });

  it('settles one batch from several calls at once: acks and releases of parts, in any order', async () => {
    const storage = await open();
    const table = tableOf(storage);
    await storage.append(recs(0, 12));
    const batch = await storage.reserve(12, { now: Date.now() });
    const part = (from: number, to: number): StoredRecord<Rec>[] => batch.slice(from, to);
    const later = Date.now() + 60_000;
    await Promise.all([
      storage.ack(part(0, 3)),
      storage.release(part(3, 6), later),
      storage.ack(part(6, 9)),
      storage.release(part(9, 12), later),
    ]);
    expect(await countRows(spec.admin, `${table}_leases`)).toBe(0);
    expect(await storage.size()).toBe(6);
    const retried = await storage.reserve(20, { now: Infinity });
    expect(numbers(retried)).toEqual([3, 4, 5, 9, 10, 11]);
    expect(retried.every((e) => e.attempts === 1 && e.deliveries === 2)).toBe(true);
  });

  it('keeps attempts and deliveries of a batch mixing retries and fresh records through a lapse', async () => {
    // Renewed every 20 s: nothing renews the lease between its lapse below and the recovery.
    const holder = await open({ leaseTimeout: 60_000 });
    const table = tableOf(holder);
    await holder.append(recs(0, 2));
    await holder.release(await holder.reserve(2, { now: Date.now() }), 0);
    await holder.append(recs(2, 4));
    const mixed = await holder.reserve(10, { now: Date.now() });
    expect(mixed.map((e) => [e.record.n, e.attempts, e.deliveries])).toEqual([
      [0, 1, 2],
      [1, 1, 2],
      [2, 0, 1],
      [3, 0, 1],
    ]);
    // The holder stalls: no renewal, the lease lapses and another instance recovers it.
    await spec.admin.query(`UPDATE "${table}_leases" SET until = 0`);
    const other = await open({}, table);
    expect(await other.recover()).toBe(4);
    const back = await other.reserve(10, { now: Date.now() });
    expect(back.map((e) => [e.record.n, e.attempts, e.deliveries])).toEqual([
      [0, 1, 3],
      [1, 1, 3],
      [2, 0, 2],
      [3, 0, 2],
    ]);
  });

  it('stops renewing a lease once a statement on it failed: the records come back after it lapses', async () => {
    const proxy = new TcpProxy(targetOf(POSTGRES_URL));
    await proxy.start();
    spec.cleanup(() => proxy.close());
    const holder = await open({ leaseTimeout: 300 });
    const table = tableOf(holder);
    const cut = new PostgresStorage<Rec>({
      connectionString: throughProxy(POSTGRES_URL, proxy.port),
      table,
      leaseTimeout: 300,
      poolConfig: { max: 2, connectionTimeoutMillis: 500 },
      onError: () => undefined,
    });
    spec.cleanup(() => cut.close());
    await holder.append(recs(0, 4));
    const batch = await cut.reserve(4, { now: Date.now() });
    await proxy.cut();
    await expect(cut.release(batch.slice(0, 2), Date.now())).rejects.toBeInstanceOf(
      StorageUnavailableError,
    );
    await proxy.restore();
    // Its session is back, holding its presence: only the lapse of the lease can free it now.
    const presence = `SELECT 1 FROM pg_locks l JOIN "${table}_leases" s
      ON l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
      AND ((l.classid::bigint << 32) | l.objid::bigint) = s.holder_key`;
    await waitFor('the session to hold its presence again', async () => {
      return ((await spec.admin.query(presence)).rowCount ?? 0) > 0;
    });
    // The other half is still in the instance's hands, but its lease is no longer renewed.
    await sleep(900);
    expect((await spec.admin.query(presence)).rowCount).toBe(1);
    expect(await holder.recover()).toBe(4);
    const back = await holder.reserve(10, { now: Date.now() });
    expect(back.map((e) => [e.record.n, e.attempts, e.deliveries])).toEqual([
      [0, 0, 2],
      [1, 0, 2],
      [2, 0, 2],
      [3, 0, 2],
    ]);
    // Its late ack of records another instance holds now changes nothing.
    await cut.ack(batch.slice(2));
    expect(await countRows(spec.admin, `${table}_leases`)).toBe(1);
  });

  it('delivers a record whose INSERT committed behind the scan, once recover() resets the bound', async () => {
    const storage = await open();
    const table = tableOf(storage);
    // Another instance's INSERT has taken an id but not committed yet.
    const late = await spec.admin.connect();
    spec.cleanup(async () => late.release());
    await late.query('BEGIN');
    await late.query(`INSERT INTO "${table}" (payload) VALUES ('{"n":-1}')`);
    await storage.append(recs(0, 3));
    await storage.ack(await storage.reserve(10, { now: Date.now() }));
    await sleep(1100); // the ids taken settle into the scan's bound
    await storage.append(recs(3, 4));
    await storage.ack(await storage.reserve(10, { now: Date.now() }));
    await late.query('COMMIT');
    // Its count, after the commit: held in the open transaction, the counter row would block
    // whichever of this storage's statements took the same stripe (a timeout, not a finding).
    await spec.admin.query(`UPDATE "${table}_meta" SET waiting = waiting + 1 WHERE stripe = 0`);
    // Behind the bound: not seen by this instance's scans until its next recovery.
    expect(await storage.reserve(10, { now: Date.now() })).toEqual([]);
    expect(await storage.size()).toBe(1);
    await storage.recover();
    expect(numbers(await storage.reserve(10, { now: Date.now() }))).toEqual([-1]);
  });

  it('keeps leasing while an earlier session still holds its presence lock, and takes the lock once it is free', async () => {
    const app = `bufio-presence-${Date.now().toString(36)}`;
    const storage = await open({ poolConfig: { application_name: app, max: 2 } });
    const table = tableOf(storage);
    await storage.append(recs(0, 4));
    await storage.reserve(1, { now: Date.now() });
    const key = (
      await spec.admin.query<{ key: string }>(
        `SELECT holder_key::text AS key FROM "${table}_leases"`,
      )
    ).rows[0]?.key as string;
    const holderOf = `SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
        AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`;
    const holder = async (): Promise<string | undefined> =>
      (await spec.admin.query<{ app: string }>(holderOf, [key])).rows[0]?.app;
    expect(await holder()).toBe(app);
    // The session's backend goes away, and another connection (standing for an earlier session
    // the server has not noticed gone) gets the lock before the session comes back.
    const earlier = await spec.admin.connect();
    spec.cleanup(async () => earlier.release(true));
    const waiting = earlier.query('SELECT pg_advisory_lock($1::bigint)', [key]);
    await spec.admin.query(
      `SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE a.application_name = $2 AND l.locktype = 'advisory' AND l.granted
         AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`,
      [key, app],
    );
    await waiting;
    expect(await holder()).not.toBe(app);
    // Leasing goes on meanwhile: the instance is alive, and the lock still says so.
    expect(numbers(await storage.reserve(1, { now: Date.now() }))).toEqual([1]);
    await earlier.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
    await waitFor('the session to take its lock', async () => (await holder()) === app, 5000);
  });

  it('counts waiting records in counters, not by reading the table', async () => {
    const storage = await open();
    const table = tableOf(storage);
    await storage.append(recs(0, 10));
    expect(await storage.size()).toBe(10);
    // Rows inserted behind its back are not counted; a counter moved by hand is.
    await spec.admin.query(`INSERT INTO "${table}" (payload) VALUES ('{"n":99}')`);
    expect(await storage.size()).toBe(10);
    await spec.admin.query(`UPDATE "${table}_meta" SET waiting = waiting + 5 WHERE stripe = 7`);
    expect(await storage.size()).toBe(15);
    await spec.admin.query(`UPDATE "${table}_meta" SET waiting = waiting - 100 WHERE stripe = 3`);
    expect(await storage.size()).toBe(0);
  });

  it('names its store in idempotency keys: the same for every instance, new for a new table', async () => {
    const table = spec.table();
    const first = await open({}, table);
    expect(first.idScope).toBeUndefined();
    const ids = await first.append(recs(0, 2));
    await first.reserve(1, { now: Date.now() });
    const scope = first.idScope as string;
    expect(scope).toMatch(/^pg:[0-9a-f-]{36}:\d+$/);
    const second = await open({}, table);
    await second.reserve(1, { now: Date.now() });
    expect(second.idScope).toBe(scope);
    await first.close();
    await second.close();
    // Dropped and made again: ids start over, so the scope must not.
    await dropTables(spec.admin, [table]);
    const again = await open({}, table);
    expect(await again.append(recs(0, 1))).toEqual([ids[0]]);
    await again.reserve(1, { now: Date.now() });
    expect(again.idScope).toMatch(/^pg:[0-9a-f-]{36}:\d+$/);
    expect(again.idScope).not.toBe(scope);
  });

  it('asks the engine to recover every half leaseTimeout', async () => {
    const storage = await open({ leaseTimeout: 30_000 });
    expect(storage.recoveryInterval).toBe(15_000);
    const quick = await open({ leaseTimeout: 200 });
    expect(quick.recoveryInterval).toBe(100);
  });

  it('without a way to open its session (a pool that hides its settings), its leases only lapse', async () => {
    const table = spec.table();
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    spec.cleanup(() => pool.end());
    // A pool that does not show how to connect (not pg's own): no session can be opened.
    const opaque = {
      query: pool.query.bind(pool),
      connect: pool.connect.bind(pool),
      on: pool.on.bind(pool),
      off: pool.off.bind(pool),
    } as unknown as pg.Pool;
    const storage = new PostgresStorage<Rec>({ pool: opaque, table, leaseTimeout: 200 });
    spec.cleanup(() => storage.close());
    await storage.migrate();
    await storage.append(recs(0, 2));
    await storage.reserve(2, { now: Date.now() });
    const keys = await spec.admin.query<{ key: string }>(
      `SELECT holder_key::text AS key FROM "${table}_leases"`,
    );
    // A negative key: no presence lock stands for it, so others wait for the lapse.
    expect(Number(keys.rows[0]?.key)).toBeLessThan(0);
    const other = await open({ leaseTimeout: 200 }, table);
    expect(await other.recover()).toBe(0);
  });
});
