import { describe, expect, it, jest } from '@jest/globals';
import { BufIO } from '../../lib/index.js';
import { logBufferEvents } from '../../lib/nest/bufio.logging.js';
import { CapturingLogger } from '../support/nest-apps.js';
import { DurableState, ScriptedStorage } from '../support/scripted-storage.js';
import { range, recordingWorker } from '../support/workers.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

const LEASE_TIMEOUT = 5_000;

/** A shared storage with `count` records leased by an instance that died just now. */
function leftByADeadInstance(count: number): DurableState<number> {
  const state = new DurableState<number>();
  const dead = new ScriptedStorage(state, 'on-recover', { shared: true });
  dead.append(range(0, count));
  dead.reserve(count, { now: Date.now() });
  dead.crash();
  return state;
}

function sharedStorage(
  state: DurableState<number>,
  recoveryInterval?: number,
): ScriptedStorage<number> {
  return new ScriptedStorage(state, 'on-recover', {
    shared: true,
    leaseTimeout: LEASE_TIMEOUT,
    recoveryInterval,
  });
}

describe('leases of a dead holder', () => {
  fakeTimersInEachTest();

  it('are taken back on the storage recoveryInterval and processed at once, not after flushInterval', async () => {
    const state = leftByADeadInstance(5);
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({
      storage: sharedStorage(state, 1_000),
      worker: worker.work,
      flushInterval: 60_000,
    });
    bufio.start();
    await jest.advanceTimersByTimeAsync(LEASE_TIMEOUT - 1_000);
    expect(worker.processed).toEqual([]); // the lease has not lapsed yet
    await jest.advanceTimersByTimeAsync(2_000);
    // The timer after the lapse took them back; no flushInterval (60 s) had to pass.
    expect(worker.processed).toEqual(range(0, 5));
    expect(state.rows.size).toBe(0);
    await bufio.stop();
  });

  it('are taken back by the stop() drain, which processes them before it says what is left', async () => {
    const state = leftByADeadInstance(4);
    const worker = recordingWorker<number>();
    const bufio = new BufIO<number>({
      storage: sharedStorage(state),
      worker: worker.work,
      flushInterval: 60_000,
    });
    bufio.start();
    await jest.advanceTimersByTimeAsync(LEASE_TIMEOUT + 10);
    expect(worker.processed).toEqual([]);
    const summary = await bufio.stop();
    expect(worker.processed).toEqual(range(0, 4));
    expect(summary).toMatchObject({
      processed: 4,
      remaining: 0,
      leasedElsewhere: 0,
      timedOut: false,
    });
  });

  it('that have not lapsed are reported as leased elsewhere, in the summary and the NestJS log', async () => {
    const state = leftByADeadInstance(3);
    // And a live instance holding two more.
    const other = sharedStorage(state);
    other.append([10, 11]);
    other.reserve(2, { now: Date.now() });
    const storage = sharedStorage(state);
    const bufio = new BufIO<number>({ storage, worker: () => undefined, flushInterval: 60_000 });
    const logger = new CapturingLogger();
    logBufferEvents(bufio as BufIO<unknown, unknown>, logger);
    bufio.start();
    await bufio.push([20, 21]);
    const summary = await bufio.stop();
    expect(summary).toMatchObject({ processed: 2, remaining: 0, leasedElsewhere: 5 });
    expect(logger.lines.map((line) => line.message)).toEqual([
      expect.stringMatching(
        /^buffer "default" drained in \d+ ms: 2 processed, 0 dead-lettered, 0 left in storage, 5 still leased by other holders, 0 in flight$/,
      ),
    ]);
  });

  it('of a durable storage the engine alone uses count in remaining as the storage holds them', async () => {
    const state = new DurableState<number>();
    const storage = new ScriptedStorage(state);
    const bufio = new BufIO<number>({
      storage,
      worker: () => undefined,
      retry: { maxAttempts: 3, initialDelay: 60_000 },
      flushInterval: 60_000,
    });
    bufio.start();
    await bufio.push(range(0, 3));
    // Appended behind the engine's back (another process of the same journal before a restart).
    state.rows.set(99, {
      id: 99,
      record: 99,
      attempts: 1,
      deliveries: 1,
      visibleAt: Date.now() + 120_000,
      holder: undefined,
      unreadable: false,
    });
    const summary = await bufio.stop({ timeout: 100 });
    expect(summary).toMatchObject({ processed: 3, remaining: 1, leasedElsewhere: 0 });
  });
});
