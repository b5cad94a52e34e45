import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { killFixtures, startFixture } from '../../support/child-process.js';
import { adminPool, countRecords, dropTables, POSTGRES_URL, uniqueTable } from './support.js';
import { waitFor } from '../../support/wait.js';

const describePostgres = await describeWith('postgres');

const PER_CHILD = 200;

describePostgres('PostgresStorage shared by several processes', () => {
  let admin: pg.Pool;
  const table = uniqueTable('multi');
  const done = `${table}_done`;

  beforeAll(async () => {
    admin = adminPool();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
    await admin.query(`CREATE TABLE "${done}" (id bigint NOT NULL, pid integer NOT NULL)`);
  });

  afterAll(async () => {
    killFixtures();
    await dropTables(admin, [table, done]);
    await admin.end();
  });

  it('gets every record processed by the survivors when one process dies holding a lease', async () => {
    const children = [0, 1, 2].map((i) =>
      startFixture('postgres/shared-child', {
        env: {
          BUFIO_TEST_POSTGRES_URL: POSTGRES_URL,
          TABLE: table,
          DONE_TABLE: done,
          LEASE_MS: '1000',
          FIRST_ID: String(i * PER_CHILD),
          COUNT: String(PER_CHILD),
          // The victim is slow: it is sure to be in the middle of a batch when it is killed.
          WORK_MS: i === 0 ? '60000' : '20',
        },
      }),
    );
    const [victim, ...survivors] = children as [
      (typeof children)[0],
      ...(typeof children)[number][],
    ];
    await Promise.all(children.map((child) => child.waitForLine(/^pushed$/)));
    const batchLine = await victim.waitForLine(/^batch /);
    const held = batchLine.slice('batch '.length).split(',').map(Number);
    expect(held.length).toBeGreaterThan(0);
    victim.process.kill('SIGKILL');
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const total = PER_CHILD * children.length;
    const distinctDone = async (): Promise<number> => {
      const result = await admin.query<{ n: string }>(
        `SELECT count(DISTINCT id)::text AS n FROM "${done}"`,
      );
      return Number(result.rows[0]?.n);
    };
    await waitFor(
      'the survivors to process every record',
      async () => (await distinctDone()) === total && (await countRecords(admin, table)) === 0,
      30_000,
    );
    for (const child of survivors) child.process.kill('SIGTERM');
    for (const child of survivors) {
      await child.waitForLine(/^stopped /);
      expect(await child.exited).toEqual({ code: 0, signal: null });
    }

    const rows = await admin.query<{ id: string; pid: number }>(
      `SELECT id::text AS id, pid FROM "${done}"`,
    );
    const byId = new Map<number, number[]>();
    for (const row of rows.rows) {
      const pids = byId.get(Number(row.id)) ?? [];
      pids.push(row.pid);
      byId.set(Number(row.id), pids);
    }
    const expected = Array.from({ length: total }, (_, i) => i);
    expect(expected.filter((id) => !byId.has(id))).toEqual([]);
    // The victim's leased batch was taken over by the survivors once its lease lapsed.
    const survivorPids = new Set(survivors.map((child) => child.process.pid));
    for (const id of held) {
      expect((byId.get(id) ?? []).some((pid) => survivorPids.has(pid))).toBe(true);
    }
    expect(rows.rows.some((row) => row.pid === victim.process.pid)).toBe(false);
    const perProcess = survivors.map(
      (child) => rows.rows.filter((row) => row.pid === child.process.pid).length,
    );
    const duplicates = rows.rows.length - byId.size;
    console.log(
      `multi-instance: victim held ${held.length} records when killed; survivors processed ${perProcess.join(' and ')}; ` +
        `${duplicates} duplicates`,
    );
    expect(perProcess.every((n) => n > 0)).toBe(true);
  }, 60_000);
});
