import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { killFixtures } from '../../support/child-process.js';
import { crashLoopFailures, type PoisonPlan, poisonRounds } from '../../support/poison-rounds.js';
import { describeWith } from '../../support/services.js';
import { adminPool, countRows, dropTables, POSTGRES_URL, uniqueTable } from './support.js';

const describePostgres = await describeWith('postgres');

describePostgres('PostgresStorage with a record that kills its process', () => {
  let admin: pg.Pool;
  const table = uniqueTable('crashloop');

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

  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    const plan: PoisonPlan = {
      label: 'PostgresStorage crash loop',
      storage: { kind: 'postgres', url: POSTGRES_URL, table, leaseTimeout: 500 },
      records: 120,
      poison: 57,
      batchSize: 16,
      concurrency: 2,
      maxAttempts: 2,
      // The guard needs maxAttempts + log2(16 × 2) = 7 deaths: room for a few more, then fail.
      maxRounds: 12,
    };
    const outcome = await poisonRounds(plan);
    expect(crashLoopFailures(plan, outcome)).toEqual([]);
    expect(outcome.exits.slice(0, -1).every((exit) => exit === 'SIGKILL')).toBe(true);
    expect(outcome.stderr).toEqual([]);
    expect(await countRows(admin, table)).toBe(0);
  }, 180_000);
});
