import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { BufIO, CrashLoopError } from '../../lib/index.js';
import { crashesOf } from '../../lib/core/crash-guard.js';
import { DurableState, type LeaseReturn, ScriptedStorage } from '../support/scripted-storage.js';
import { range } from '../support/workers.js';

interface Plan {
  readonly records: number;
  /** The record whose worker call kills the process. */
  readonly poison: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly leases?: LeaseReturn;
}

interface Outcome {
  readonly rounds: number;
  /** How many times each record was processed (a call that completed). */
  readonly processed: Map<number, number>;
  readonly deadLettered: { readonly record: number; readonly error: Error }[];
  /** The sizes of the worker calls, per round. */
  readonly calls: number[][];
  /** The highest crash count any record but the poison was delivered with. */
  readonly innocentCrashes: number;
}

const ROUND_CAP = 40;
const NEVER = new Promise<never>(() => undefined);

/**
 * Runs processes over one durable state until the buffer is empty: each process is a new engine
 * over a new storage instance; when its worker meets the poison record the process "dies" (its
 * storage answers nothing more, its leases end without ack or release) and the next one starts.
 */
async function crashRounds(plan: Plan): Promise<Outcome> {
  const state = new DurableState<number>();
  const processed = new Map<number, number>();
  const deadLettered: { record: number; error: Error }[] = [];
  const calls: number[][] = [];
  let innocentCrashes = 0;
  for (let round = 0; round < ROUND_CAP; round++) {
    const storage = new ScriptedStorage(state, plan.leases);
    const sizes: number[] = [];
    calls.push(sizes);
    let died = false;
    const bufio = new BufIO<number>({
      storage,
      batchSize: plan.batchSize,
      concurrency: plan.concurrency,
      flushInterval: 10,
      retry: { maxAttempts: plan.maxAttempts, initialDelay: 1 },
      worker: async (records) => {
        sizes.push(records.length);
        // Let the other calls of this process start, as I/O would.
        await Promise.resolve();
        if (records.includes(plan.poison)) {
          died = true;
          storage.crash();
          return NEVER;
        }
        for (const record of records) processed.set(record, (processed.get(record) ?? 0) + 1);
      },
      deadLetter: (records, error) => {
        for (const record of records) deadLettered.push({ record, error });
      },
    });
    if (round === 0) void bufio.push(range(0, plan.records));
    bufio.start();
    const ended = await runUntilEmptyOrDead(bufio, state, () => died);
    for (const entry of storage.deliveries) {
      if (entry.record !== plan.poison) {
        innocentCrashes = Math.max(innocentCrashes, crashesOf(entry));
      }
    }
    if (ended === 'drained') {
      return { rounds: round + 1, processed, deadLettered, calls, innocentCrashes };
    }
  }
  throw new Error(`the poison record was still delivered after ${ROUND_CAP} rounds`);
}

async function runUntilEmptyOrDead(
  bufio: BufIO<number>,
  state: DurableState<number>,
  dead: () => boolean,
): Promise<'died' | 'drained'> {
  for (let turn = 0; turn < 100_000; turn++) {
    if (dead()) return 'died';
    if (state.rows.size === 0 && bufio.stats().inFlight === 0) {
      await bufio.stop();
      return 'drained';
    }
    await Promise.race([
      bufio.flush(),
      new Promise<void>((resolve) => setTimeout(resolve, 20)), // a process that died mid-flush
    ]);
  }
  throw new Error('a round made no progress');
}

/** What the guard's rule says: maxAttempts plus the halvings of one process's share. */
function crashLimit(plan: Plan): number {
  return plan.maxAttempts + Math.ceil(Math.log2(plan.batchSize * plan.concurrency));
}

function expectOnlyThePoisonDeadLettered(plan: Plan, outcome: Outcome): void {
  expect(outcome.deadLettered.map((d) => d.record)).toEqual([plan.poison]);
  const error = outcome.deadLettered[0]?.error;
  expect(error).toBeInstanceOf(CrashLoopError);
  expect(error).toMatchObject({ code: 'BUFIO_CRASH_LOOP', crashes: crashLimit(plan) });
  const missing = range(0, plan.records).filter(
    (record) => record !== plan.poison && !outcome.processed.has(record),
  );
  expect(missing).toEqual([]);
  expect(outcome.processed.has(plan.poison)).toBe(false);
  // The poison gains one crash per round; it is dead-lettered at the delivery that finds the limit.
  expect(outcome.rounds).toBe(crashLimit(plan) + 1);
  expect(outcome.innocentCrashes).toBeLessThan(crashLimit(plan) - plan.maxAttempts + 1);
}

describe('crash-loop guard', () => {
  it('dead-letters a record that kills its process, after maxAttempts crashes alone (batchSize 1)', async () => {
    const plan: Plan = { records: 5, poison: 2, batchSize: 1, concurrency: 1, maxAttempts: 3 };
    const outcome = await crashRounds(plan);
    expectOnlyThePoisonDeadLettered(plan, outcome);
    // Delivered three times without an ack (three deaths), dead-lettered at the fourth delivery.
    expect(outcome.rounds).toBe(4);
    expect(outcome.deadLettered[0]?.error).toMatchObject({ crashes: 3 });
  });

  it('halves the crashed batch until the poison is alone: batchSize 100, maxAttempts 3, poison in the middle', async () => {
    const plan: Plan = {
      records: 300,
      poison: 150,
      batchSize: 100,
      concurrency: 1,
      maxAttempts: 3,
    };
    const outcome = await crashRounds(plan);
    expectOnlyThePoisonDeadLettered(plan, outcome);
    // 3 + ceil(log2 100) = 10 crashes: 11 rounds.
    expect(outcome.rounds).toBe(11);
    // The first process runs full batches; the next probes one record, then halves.
    expect(outcome.calls[0]).toEqual([100, 100]);
    expect(outcome.calls[1]).toEqual([1, 50]);
    expect(outcome.calls[2]).toEqual([1, 25, 25]);
    // Once alone, the poison costs no one else anything.
    expect(outcome.calls[8]).toEqual([1]);
    // The round that dead-letters it processes the other 149, in chunks that grow as the crash
    // counts fall (4, then 1, then 0), and leaves careful mode.
    expect(outcome.calls[10]).toEqual([1, 6, 50, 92]);
    expect(outcome.innocentCrashes).toBe(6);
  });

  it('gets leases back through recover() as well as at open', async () => {
    const plan: Plan = {
      records: 40,
      poison: 17,
      batchSize: 8,
      concurrency: 2,
      maxAttempts: 2,
      leases: 'on-recover',
    };
    expectOnlyThePoisonDeadLettered(plan, await crashRounds(plan));
  });

  it('dead-letters exactly the poison for any batch size, concurrency, limit and position', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .record({
            records: fc.integer({ min: 1, max: 160 }),
            batchSize: fc.integer({ min: 1, max: 130 }),
            concurrency: fc.integer({ min: 1, max: 4 }),
            maxAttempts: fc.integer({ min: 1, max: 4 }),
            at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
            leases: fc.constantFrom<LeaseReturn>('on-open', 'on-recover'),
          })
          .map(({ at, ...rest }) => ({ ...rest, poison: Math.floor(at * rest.records) })),
        async (plan) => {
          expectOnlyThePoisonDeadLettered(plan, await crashRounds(plan));
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);

  it('processes records whose lease lapsed once like any other, from a probe of one', async () => {
    const state = new DurableState<number>();
    const first = new ScriptedStorage(state);
    first.append(range(0, 10));
    first.reserve(4, { now: Date.now() });
    first.crash();
    const storage = new ScriptedStorage(state);
    const sizes: number[] = [];
    const bufio = new BufIO<number>({
      storage,
      batchSize: 10,
      flushInterval: 10,
      worker: (records) => {
        sizes.push(records.length);
      },
    });
    bufio.start();
    await bufio.stop();
    expect(state.rows.size).toBe(0);
    // Probe one, then chunks of floor(10 / 2) while crashed records come, then whole batches.
    expect(sizes).toEqual([1, 5, 4]);
    expect(storage.deliveries.map(crashesOf)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  });
});
