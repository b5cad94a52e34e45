import { expect, it } from '@jest/globals';
import { describeWith } from '../../support/services.js';
import { crashAndDrain } from '../../support/crash-rounds.js';
import { childProcessSpec, countRecords, POSTGRES_URL } from './support.js';

const describePostgres = await describeWith('postgres');

const ROUNDS = 5;

describePostgres('PostgresStorage when its process is killed', () => {
  const spec = childProcessSpec('crash');
  const { table } = spec;

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
    expect(await countRecords(spec.admin, table)).toBe(0);
  }, 90_000);
});
