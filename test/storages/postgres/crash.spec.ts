import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { killFixtures } from '../../support/child-process.js';
import { crashAndDrain } from '../../support/crash-rounds.js';
import { adminPool, countRecords, dropTables, POSTGRES_URL, uniqueTable } from './support.js';

const describePostgres = await describeWith('postgres');

const ROUNDS = 5;

describePostgres('PostgresStorage when its process is killed', () => {
  let admin: pg.Pool;
  const table = uniqueTable('crash');

  beforeAll(async () => {
    admin = adminPool();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
  });

  afterAll(async () => {
    killFixtures();
    await dropTables(admin, [table]);
    await admin.end();
  });

  it('processes every acknowledged record at least once across SIGKILLs at random moments', async () => {
    const outcome = await crashAndDrain({
      label: 'PostgresStorage crash test',
      rounds: ROUNDS,
      storage: () => ({ kind: 'postgres', url: POSTGRES_URL, table, leaseTimeout: 500 }),
      killAfterMs: [100, 900],
      producers: 20,
    });
    expect(outcome.exits).toEqual([...Array<string>(ROUNDS).fill('SIGKILL'), 'exit 0']);
    expect(outcome.stderr).toEqual([]);
    expect(outcome.drain).toMatchObject({ remaining: 0, inFlight: 0, timedOut: false });
    expect(outcome.acknowledged.size).toBeGreaterThan(0);
    expect(outcome.lost).toEqual([]);
    expect(await countRecords(admin, table)).toBe(0);
  }, 90_000);
});
