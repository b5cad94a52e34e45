import { expect, it } from '@jest/globals';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
import { describeWith } from '../../support/services.js';
import { childProcessSpec, countRecords, POSTGRES_URL } from './support.js';

const describePostgres = await describeWith('postgres');

describePostgres('PostgresStorage with a record that kills its process', () => {
  const spec = childProcessSpec('crashloop');
  const { table } = spec;

  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    await expectPoisonIsolated(
      poisonPlan('PostgresStorage crash loop', {
        kind: 'postgres',
        url: POSTGRES_URL,
        table,
        leaseTimeout: 500,
      }),
    );
    expect(await countRecords(spec.admin, table)).toBe(0);
  }, 180_000);
});
