import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { type Fixture, killFixtures, startFixture } from '../../support/child-process.js';
import { describeWith } from '../../support/services.js';
import { waitFor } from '../../support/wait.js';
import { adminPool, countRecords, dropTables, POSTGRES_URL, uniqueTable } from './support.js';

const describePostgres = await describeWith('postgres');

const EVENTS = 500;
const LEASE_MS = 20_000;
/** Well under LEASE_MS: records back this soon cannot have waited for their leases to lapse. */
const AT_ONCE_MS = 10_000;

/**
 * A NestJS app on PostgresStorage killed (SIGKILL) or stalled (SIGSTOP) in the middle of its
 * batches, then restarted with a flush interval that never fires during the test: the records
 * the dead process held come back at once, every event answered 202 is written, and each drain
 * summary says where the records are.
 */
describePostgres('A NestJS app on PostgresStorage killed mid-batch and restarted', () => {
  let admin: pg.Pool;
  const tables: string[] = [];

  beforeAll(() => {
    admin = adminPool();
  });

  afterAll(async () => {
    killFixtures();
    await dropTables(admin, tables);
    await admin.end();
  });

  async function setup(): Promise<{ table: string; done: string }> {
    const table = uniqueTable('nest');
    const done = `${table}_done`;
    tables.push(table, done);
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
    await admin.query(`CREATE TABLE "${done}" (id bigint NOT NULL, pid integer NOT NULL)`);
    return { table, done };
  }

  async function start(
    names: { table: string; done: string },
    settings: { flushMs: number; workMs: number },
  ): Promise<{ app: Fixture; port: number }> {
    const app = startFixture('nest/pg-events-app', {
      env: {
        BUFIO_TEST_POSTGRES_URL: POSTGRES_URL,
        TABLE: names.table,
        DONE_TABLE: names.done,
        LEASE_MS: String(LEASE_MS),
        FLUSH_MS: String(settings.flushMs),
        WORK_MS: String(settings.workMs),
      },
    });
    const line = await app.waitForLine(/^LISTENING /, 20_000);
    return { app, port: Number(line.split(' ')[1]) };
  }

  /** Posts every event; returns the ids answered 2xx. */
  async function post(port: number): Promise<number[]> {
    const answered: number[] = [];
    await Promise.all(
      Array.from({ length: EVENTS }, async (_, id) => {
        const response = await fetch(`http://127.0.0.1:${port}/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id }),
        });
        if (response.status >= 200 && response.status < 300) answered.push(id);
      }),
    );
    return answered.sort((a, b) => a - b);
  }

  /** The ids of every `batch` line the app printed: what its worker calls hold. */
  function held(app: Fixture): Set<number> {
    return new Set(
      app.lines
        .filter((line) => line.startsWith('batch '))
        .flatMap((line) => line.slice('batch '.length).split(',').map(Number)),
    );
  }

  async function written(done: string): Promise<Set<number>> {
    const result = await admin.query<{ id: string }>(
      `SELECT DISTINCT id::text AS id FROM "${done}"`,
    );
    return new Set(result.rows.map((row) => Number(row.id)));
  }

  /** The drain line the Nest module logs, as numbers. */
  /** The counts of the Nest drain log line. */
  interface DrainLine {
    readonly processed: number;
    readonly remaining: number;
    readonly leasedElsewhere: number;
    readonly inFlight: number;
  }

  async function drained(app: Fixture): Promise<DrainLine> {
    const line = await app.waitForLine(/drained in/, 30_000);
    const count = (label: string): number => Number(new RegExp(`(\\d+) ${label}`).exec(line)?.[1]);
    return {
      processed: count('processed'),
      remaining: count('left in storage'),
      leasedElsewhere: count('still leased by other holders'),
      inFlight: count('in flight'),
    };
  }

  it('processes every event answered 202 at once after a SIGKILL, and says nothing is left because nothing is', async () => {
    const names = await setup();
    // The first process takes every event into worker calls that hang, and is killed there.
    const first = await start(names, { flushMs: 2000, workMs: 60_000 });
    const answered = await post(first.port);
    expect(answered).toHaveLength(EVENTS);
    await waitFor(
      'every event to be in a worker call',
      () => held(first.app).size === EVENTS,
      30_000,
    );
    first.app.process.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await first.app.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await written(names.done)).toEqual(new Set());
    expect(await countRecords(admin, names.table)).toBe(EVENTS);

    // Restarted with a flush interval that never fires here: only the takeover can explain work.
    const second = await start(names, { flushMs: 60_000, workMs: 0 });
    await waitFor(
      'the restarted app to write every event',
      async () => (await written(names.done)).size === EVENTS,
      AT_ONCE_MS,
    );
    const tookMs = Date.now() - killedAt;
    // Stopped once the killed process's leases would have lapsed anyway.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, killedAt + LEASE_MS - Date.now())),
    );
    second.app.process.kill('SIGTERM');
    const summary = await drained(second.app);
    // Nest closes the app on SIGTERM, then ends the process by the same signal.
    expect(await second.app.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(summary).toEqual({ processed: 0, remaining: 0, leasedElsewhere: 0, inFlight: 0 });
    expect([...(await written(names.done))].sort((a, b) => a - b)).toEqual(answered);
    expect(await countRecords(admin, names.table)).toBe(0);
    console.log(
      `nest takeover: ${EVENTS} events written ${tookMs} ms after the SIGKILL (restart included)`,
    );
  }, 120_000);

  it('drains an app while a stalled one holds the events: the summary counts them as leased elsewhere', async () => {
    const names = await setup();
    const stalled = await start(names, { flushMs: 2000, workMs: 60_000 });
    const answered = await post(stalled.port);
    await waitFor(
      'every event to be in a worker call',
      () => held(stalled.app).size === EVENTS,
      30_000,
    );
    // Stalled, not dead: its connections stay open, so its leases stand until they lapse.
    stalled.app.process.kill('SIGSTOP');
    const other = await start(names, { flushMs: 60_000, workMs: 0 });
    other.app.process.kill('SIGTERM');
    const summary = await drained(other.app);
    expect(await other.app.exited).toEqual({ code: null, signal: 'SIGTERM' });
    // True to the tables: what it processed is written, what the stalled one holds is counted.
    // (On a slow machine some leases may lapse before the drain, and the drain takes them.)
    const byOther = await admin.query<{ n: string }>(
      `SELECT count(DISTINCT id)::text AS n FROM "${names.done}" WHERE pid = $1`,
      [other.app.process.pid],
    );
    const stillLeased = await countRecords(admin, names.table);
    expect(summary).toEqual({
      processed: Number(byOther.rows[0]?.n),
      remaining: 0,
      leasedElsewhere: stillLeased,
      inFlight: 0,
    });
    expect(summary.processed + summary.leasedElsewhere).toBe(EVENTS);
    expect(summary.leasedElsewhere).toBeGreaterThan(0);

    // Once the stalled process is gone, the next one takes its events back and writes them.
    stalled.app.process.kill('SIGKILL');
    await stalled.app.exited;
    const third = await start(names, { flushMs: 60_000, workMs: 0 });
    await waitFor(
      'the third app to write every event',
      async () => (await written(names.done)).size === EVENTS,
      AT_ONCE_MS,
    );
    third.app.process.kill('SIGTERM');
    expect(await drained(third.app)).toEqual({
      processed: 0,
      remaining: 0,
      leasedElsewhere: 0,
      inFlight: 0,
    });
    expect([...(await written(names.done))].sort((a, b) => a - b)).toEqual(answered);
  }, 120_000);
});
