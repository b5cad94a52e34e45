import { expect, it } from '@jest/globals';
import { BufIO, BufIOError, StorageUnavailableError } from '../../../lib/index.js';
import {
  PostgresStorage,
  type PostgresStorageOptions,
} from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import {
  countRecords,
  countRows,
  POSTGRES_URL,
  postgresSpec,
  RUN_ID,
  terminateBackends,
  uniqueTable,
} from './support.js';
import { sleep, waitFor } from '../../support/wait.js';
import { TcpProxy, targetOf, throughProxy } from './tcp-proxy.js';

const describePostgres = await describeWith('postgres');

interface Rec {
  readonly id: number;
}

let appCount = 0;

describePostgres('PostgresStorage when PostgreSQL goes away', () => {
  const spec = postgresSpec('out');

  /** A migrated table and a storage whose connections carry an application_name of their own. */
  async function setup(
    options: Partial<PostgresStorageOptions<Rec>> = {},
    connectionString = POSTGRES_URL,
  ): Promise<{ storage: PostgresStorage<Rec>; table: string; app: string; reported: Error[] }> {
    const table = uniqueTable('out');
    spec.adopt(table);
    const app = `bufio-outage-${RUN_ID}-${++appCount}`;
    const reported: Error[] = [];
    const storage = new PostgresStorage<Rec>({
      connectionString,
      table,
      poolConfig: { application_name: app, max: 4, connectionTimeoutMillis: 2000 },
      onError: (error) => reported.push(error),
      ...options,
    });
    await storage.migrate();
    spec.cleanup(() => storage.close());
    return { storage, table, app, reported };
  }

  async function startProxy(): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetOf(POSTGRES_URL));
    await proxy.start();
    spec.cleanup(() => proxy.close());
    return proxy;
  }

  /** Holds an exclusive lock on `table`, so the storage's INSERT waits until `unlock`. */
  async function lockTable(table: string): Promise<{ unlock(): Promise<void> }> {
    const client = await spec.admin.connect();
    await client.query('BEGIN');
    await client.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    let released = false;
    const unlock = async (): Promise<void> => {
      if (released) return;
      released = true;
      await client.query('ROLLBACK');
      client.release();
    };
    spec.cleanup(unlock);
    return { unlock };
  }

  const waitingOnLock = (app: string) => async (): Promise<boolean> => {
    const result = await spec.admin.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
      [app],
    );
    return (result.rowCount ?? 0) > 0;
  };

  it('rejects an append whose connection is terminated mid-INSERT with StorageUnavailableError', async () => {
    const { storage, table, app } = await setup();
    const lock = await lockTable(table);
    const append = storage.append([{ id: 1 }]).then(
      () => undefined,
      (error: unknown) => error,
    );
    await waitFor('the INSERT to wait on the lock', waitingOnLock(app));
    expect(await terminateBackends(spec.admin, app)).toBeGreaterThan(0);
    const error = await append;
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as StorageUnavailableError).code).toBe('BUFIO_STORAGE_UNAVAILABLE');
    expect((error as Error).message).toMatch(/^PostgreSQL is unavailable: append on "bufio_out_/);
    expect((error as Error).message).toMatch(/57P01|terminat/);
    await lock.unlock();
    // Nothing of the rejected call was stored; the next append reconnects.
    await expect(storage.append([{ id: 2 }])).resolves.toHaveLength(1);
    const rows = await spec.admin.query<{ payload: string }>(`SELECT payload FROM "${table}"`);
    expect(rows.rows).toEqual([{ payload: '{"id":2}' }]);
  });

  it("with onUnavailable: 'block', retries the terminated INSERT and resolves once, storing one copy", async () => {
    const { storage, table, app } = await setup({
      onUnavailable: 'block',
      unavailableTimeout: 10_000,
    });
    const lock = await lockTable(table);
    let settled = false;
    const append = storage.append([{ id: 1 }, { id: 2 }]).finally(() => {
      settled = true;
    });
    await waitFor('the INSERT to wait on the lock', waitingOnLock(app));
    expect(await terminateBackends(spec.admin, app)).toBeGreaterThan(0);
    // It reconnects and waits on the lock again rather than failing.
    await waitFor('the retried INSERT to wait on the lock', waitingOnLock(app));
    expect(settled).toBe(false);
    await lock.unlock();
    await expect(append).resolves.toHaveLength(2);
    expect(await countRows(spec.admin, table)).toBe(2);
  });

  it('rejects every operation with StorageUnavailableError while the server refuses connections', async () => {
    const proxy = await startProxy();
    const { storage, reported } = await setup({}, throughProxy(POSTGRES_URL, proxy.port));
    await storage.append([{ id: 1 }]);
    await proxy.cut();
    const error = await storage.append([{ id: 2 }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toMatch(/ECONNREFUSED|Connection terminated/);
    for (const operation of [
      () => storage.reserve(10, { now: Date.now() }),
      () => storage.size(),
      () => storage.recover(),
    ]) {
      await expect(operation()).rejects.toBeInstanceOf(StorageUnavailableError);
    }
    // The idle connection the cut dropped was reported, not thrown.
    expect(reported.every((e) => e instanceof StorageUnavailableError)).toBe(true);
    await proxy.restore();
    await expect(storage.append([{ id: 3 }])).resolves.toHaveLength(1);
    expect(await storage.size()).toBe(2);
  });

  it("with onUnavailable: 'block', waits through a short outage, and rejects after unavailableTimeout of a long one", async () => {
    const proxy = await startProxy();
    const url = throughProxy(POSTGRES_URL, proxy.port);
    const patient = await setup({ onUnavailable: 'block', unavailableTimeout: 5000 }, url);
    const hasty = await setup({ onUnavailable: 'block', unavailableTimeout: 300 }, url);
    await proxy.cut();
    const waited = patient.storage.append([{ id: 1 }]);
    const gaveUp = hasty.storage.append([{ id: 2 }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    await sleep(800);
    await proxy.restore();
    await expect(waited).resolves.toHaveLength(1);
    const error = await gaveUp;
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect((error as Error).message).toContain(
      "still unavailable after waiting 300 ms (onUnavailable: 'block')",
    );
    expect(await patient.storage.size()).toBe(1);
    expect(await hasty.storage.size()).toBe(0);
  });

  /**
   * Producers push as fast as they can while `disturb` runs; then the buffer runs until every
   * acknowledged record is processed.
   */
  async function run(
    storage: PostgresStorage<Rec>,
    table: string,
    disturb: () => Promise<void>,
  ): Promise<{
    acked: Set<number>;
    processed: Map<number, number>;
    pushErrors: unknown[];
    engineErrors: Error[];
  }> {
    const acked = new Set<number>();
    const processed = new Map<number, number>();
    const pushErrors: unknown[] = [];
    const engineErrors: Error[] = [];
    const bufio = new BufIO<Rec>({
      storage,
      batchSize: 50,
      flushInterval: 25,
      retry: { initialDelay: 10, maxDelay: 100, maxAttempts: 1000 },
      worker: (records) => {
        for (const { id } of records) processed.set(id, (processed.get(id) ?? 0) + 1);
      },
    });
    bufio.on('error', (error) => engineErrors.push(error));
    bufio.start();
    let producing = true;
    let next = 0;
    const producer = async (): Promise<void> => {
      while (producing) {
        const id = next++;
        try {
          await bufio.push({ id });
          acked.add(id);
        } catch (error) {
          pushErrors.push(error);
          await sleep(10);
        }
      }
    };
    const producers = Array.from({ length: 20 }, producer);
    await disturb();
    producing = false;
    await Promise.all(producers);
    await waitFor(
      'every acknowledged record to be processed',
      () => [...acked].every((id) => processed.has(id)),
      20_000,
    );
    // Records whose ack was lost with a connection stay leased until the lease lapses, then come
    // back (processed twice); records whose push was rejected after their INSERT committed (the
    // answer was lost) are processed too. Either way nothing may stay behind.
    await waitFor(
      'the tables to empty',
      async () => (await countRecords(spec.admin, table)) === 0,
      20_000,
    );
    await bufio.stop({ timeout: 5000 });
    const duplicates = [...processed.values()].filter((n) => n > 1).length;
    console.log(
      `outage run: ${acked.size} acknowledged, ${processed.size} processed, ${duplicates} processed more than once, ` +
        `${pushErrors.length} pushes rejected, ${engineErrors.length} storage errors reported`,
    );
    return { acked, processed, pushErrors, engineErrors };
  }

  /** Engine reports are StorageUnavailableError, or an ack/release StorageError caused by one. */
  function expectClear(errors: readonly Error[]): void {
    for (const error of errors) {
      expect(error).toBeInstanceOf(BufIOError);
      const unavailable =
        error instanceof StorageUnavailableError ||
        (error as BufIOError).cause instanceof StorageUnavailableError;
      if (!unavailable) throw new Error(`unclear storage error: ${error.stack}`);
    }
  }

  it('BufIO loses no acknowledged record while pg_terminate_backend kills its connections', async () => {
    const { storage, table, app, reported } = await setup({ leaseTimeout: 300 });
    let killed = 0;
    const result = await run(storage, table, async () => {
      for (let wave = 0; wave < 6; wave++) {
        await sleep(150);
        killed += await terminateBackends(spec.admin, app);
      }
      await sleep(150);
    });
    expect(killed).toBeGreaterThan(0);
    expect(result.acked.size).toBeGreaterThan(0);
    expect([...result.acked].filter((id) => !result.processed.has(id))).toEqual([]);
    for (const error of result.pushErrors) expect(error).toBeInstanceOf(StorageUnavailableError);
    expectClear(result.engineErrors);
    expectClear(reported);
  });

  it('BufIO through an outage: pushes reject with StorageUnavailableError, flushes resume after it', async () => {
    const proxy = await startProxy();
    const { storage, table } = await setup(
      { leaseTimeout: 300 },
      throughProxy(POSTGRES_URL, proxy.port),
    );
    const result = await run(storage, table, async () => {
      await sleep(200);
      await proxy.cut();
      await sleep(700);
      await proxy.restore();
      await sleep(300);
    });
    expect(result.pushErrors.length).toBeGreaterThan(0);
    for (const error of result.pushErrors) expect(error).toBeInstanceOf(StorageUnavailableError);
    expectClear(result.engineErrors);
    expect([...result.acked].filter((id) => !result.processed.has(id))).toEqual([]);
  });

  it("BufIO through an outage with onUnavailable: 'block': pushes wait instead of failing", async () => {
    const proxy = await startProxy();
    const { storage, table } = await setup(
      { leaseTimeout: 300, onUnavailable: 'block', unavailableTimeout: 5000 },
      throughProxy(POSTGRES_URL, proxy.port),
    );
    const result = await run(storage, table, async () => {
      await sleep(200);
      await proxy.cut();
      await sleep(700);
      await proxy.restore();
      await sleep(300);
    });
    expect(result.pushErrors).toEqual([]);
    expectClear(result.engineErrors);
    expect([...result.acked].filter((id) => !result.processed.has(id))).toEqual([]);
  });
});
