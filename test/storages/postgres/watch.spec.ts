import { expect, it } from '@jest/globals';
import type { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { sleep, waitFor } from '../../support/wait.js';
import { postgresSpec, RUN_ID } from './support.js';

const describePostgres = await describeWith('postgres');

interface Rec {
  readonly n: number;
}

let appCount = 0;

describePostgres('PostgresStorage.watch', () => {
  const spec = postgresSpec('watch');

  /** Two instances on a new table; the watcher's connections are named `app`. */
  async function pair(): Promise<{
    watcher: PostgresStorage<Rec>;
    other: PostgresStorage<Rec>;
    app: string;
  }> {
    const table = spec.table();
    const app = `bufio-watch-${RUN_ID}-${++appCount}`;
    const make = (name: string): Promise<PostgresStorage<Rec>> =>
      spec.storage<Rec>({ poolConfig: { application_name: name, max: 2 } }, table);
    const watcher = await make(app);
    const other = await make(`${app}-other`);
    return { watcher, other, app };
  }

  /** Backends of `app` that are LISTENing: the session connection, once it is set up. */
  async function listening(app: string): Promise<number> {
    const result = await spec.admin.query(
      `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`,
      [app],
    );
    return result.rowCount ?? 0;
  }

  it('calls the listener when another instance appends, not for its own appends', async () => {
    const { watcher, other, app } = await pair();
    let calls = 0;
    const stop = watcher.watch(() => calls++);
    await waitFor('the session to listen', async () => (await listening(app)) === 1);
    await watcher.append([{ n: 0 }]);
    await sleep(100);
    expect(calls).toBe(0);
    await other.append([{ n: 1 }]);
    await waitFor('a wake-up', () => calls === 1);
    // One notification per INSERT, whatever its size.
    await Promise.all([other.append([{ n: 2 }]), other.append([{ n: 3 }, { n: 4 }])]);
    await waitFor('a second wake-up', () => calls === 2);
    await sleep(100);
    expect(calls).toBe(2);
    stop();
    await other.append([{ n: 5 }]);
    await sleep(100);
    expect(calls).toBe(2);
  });

  it('opens its session again after losing it, and then wakes the listener once', async () => {
    const { watcher, other, app } = await pair();
    let calls = 0;
    watcher.watch(() => calls++);
    await waitFor('the session to listen', async () => (await listening(app)) === 1);
    await spec.admin.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [app],
    );
    // Appends may have been missed meanwhile: one wake-up once it is back.
    await waitFor('the wake-up after reconnecting', () => calls === 1, 10_000);
    await waitFor('the session to listen again', async () => (await listening(app)) === 1);
    await other.append([{ n: 1 }]);
    await waitFor('a wake-up on the new session', () => calls === 2);
  });

  it('costs an idle instance no statement: it waits on its session', async () => {
    const { watcher, app } = await pair();
    let calls = 0;
    watcher.watch(() => calls++);
    await waitFor('the session to listen', async () => (await listening(app)) === 1);
    const backends = await spec.admin.query<{ state_change: Date }>(
      'SELECT state_change FROM pg_stat_activity WHERE application_name = $1',
      [app],
    );
    await sleep(500);
    const after = await spec.admin.query<{ state_change: Date }>(
      'SELECT state_change FROM pg_stat_activity WHERE application_name = $1',
      [app],
    );
    // No backend of the watcher ran anything during the wait.
    expect(after.rows.map((r) => r.state_change.getTime())).toEqual(
      backends.rows.map((r) => r.state_change.getTime()),
    );
    expect(after.rows).toHaveLength(2); // the pool's connection and the session
    expect(calls).toBe(0);
  });
});
