import { afterAll, expect, it } from '@jest/globals';
import type { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { killFixtures, startFixture } from '../../support/child-process.js';
import { describeWith } from '../../support/services.js';
import { POSTGRES_URL, postgresSpec } from './support.js';

const describePostgres = await describeWith('postgres');

interface Rec {
  readonly n: number;
}

describePostgres('PostgresStorage when a lease holder dies', () => {
  const spec = postgresSpec('takeover');

  afterAll(() => {
    killFixtures();
  });

  // A lease that would take a minute to lapse: only proof of death can explain a takeover.
  const open = (table: string): Promise<PostgresStorage<Rec>> =>
    spec.storage<Rec>({ leaseTimeout: 60_000 }, table);

  function holder(table: string) {
    return startFixture('postgres/lease-holder', {
      env: { BUFIO_TEST_POSTGRES_URL: POSTGRES_URL, TABLE: table, LEASE_MS: '60000', COUNT: '3' },
    });
  }

  it('takes the leases of a process killed with SIGKILL back at once, counting the delivery', async () => {
    const table = spec.table();
    const survivor = await open(table);
    const ids = await survivor.append(Array.from({ length: 5 }, (_, n) => ({ n })));
    const child = holder(table);
    const line = await child.waitForLine(/^leased /);
    const leased = line.slice('leased '.length).split(',');
    expect(leased).toEqual(ids.slice(0, 3));

    // Alive, the holder keeps its records, however often others look.
    expect(await survivor.recover()).toBe(0);
    expect(await survivor.leasedElsewhere()).toBe(3);
    expect((await survivor.reserve(10, { now: Date.now() })).map((e) => e.record.n)).toEqual([
      3, 4,
    ]);

    child.process.kill('SIGKILL');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Its session connection is gone with it; PostgreSQL may take a moment to notice.
    let recovered = 0;
    const deadline = Date.now() + 5000;
    while (recovered === 0 && Date.now() < deadline) {
      recovered = await survivor.recover();
      if (recovered === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(recovered).toBe(3);
    expect(await survivor.leasedElsewhere()).toBe(0);
    const back = await survivor.reserve(10, { now: Date.now() });
    expect(back.map((e) => [e.id, e.record.n, e.attempts, e.deliveries])).toEqual([
      [ids[0], 0, 0, 2],
      [ids[1], 1, 0, 2],
      [ids[2], 2, 0, 2],
    ]);
  }, 20_000);

  it('lets a process restarted on the same table take its predecessor’s leases at its first recover()', async () => {
    const table = spec.table();
    const seed = await open(table);
    await seed.append(Array.from({ length: 3 }, (_, n) => ({ n })));
    const first = holder(table);
    await first.waitForLine(/^leased /);
    first.process.kill('SIGKILL');
    await first.exited;
    // The restarted process: a new storage instance on the same table, as at boot.
    const restarted = await open(table);
    const deadline = Date.now() + 5000;
    let recovered = await restarted.recover();
    while (recovered === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      recovered = await restarted.recover();
    }
    expect(recovered).toBe(3);
    const batch = await restarted.reserve(10, { now: Date.now() });
    expect(batch.map((e) => e.deliveries)).toEqual([2, 2, 2]);
  }, 20_000);
});
