import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { killFixtures } from '../../support/child-process.js';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
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
    await expectPoisonIsolated(
      poisonPlan('PostgresStorage crash loop', {
        kind: 'postgres',
        url: POSTGRES_URL,
        table,
        leaseTimeout: 500,
      }),
    );
    expect(await countRows(admin, table)).toBe(0);
  }, 180_000);
});
