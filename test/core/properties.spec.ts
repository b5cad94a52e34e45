import { describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { BufIO, type OnFullPolicy } from '../../lib/index.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

type Step = { kind: 'push'; count: number } | { kind: 'flush' } | { kind: 'wait'; ms: number };
type Behaviour = { kind: 'ok' } | { kind: 'throw' } | { kind: 'partial'; mask: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('push' as const),
      count: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      ms: fc.integer({ min: 0, max: 300 }),
    }),
  },
);

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'ok' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'throw' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('partial' as const),
      mask: fc.integer({ min: 1, max: 2 ** 16 }),
    }),
  },
);

interface Scenario {
  batchSize: number;
  concurrency: number;
  maxAttempts: number;
  maxBufferedRecords: number;
  onFull: OnFullPolicy;
  steps: Step[];
  behaviours: Behaviour[];
}

/** Runs a scenario to the end of stop() and returns what happened to every record. */
async function run(scenario: Scenario) {
  const batches: number[][] = [];
  const processed: number[] = [];
  const deadLettered: number[] = [];
  const dropped: number[] = [];
  let calls = 0;
  let running = 0;
  let maxRunning = 0;
  const bufio = new BufIO<number>({
    batchSize: scenario.batchSize,
    concurrency: scenario.concurrency,
    flushInterval: 100,
    maxBufferedRecords: scenario.maxBufferedRecords,
    onFull: scenario.onFull,
    retry: { maxAttempts: scenario.maxAttempts, initialDelay: 20, maxDelay: 200 },
    worker: async (records) => {
      const b = scenario.behaviours[calls++ % scenario.behaviours.length]!;
      batches.push([...records]);
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      if (b.kind === 'throw') throw new Error('batch failed');
      if (b.kind === 'ok') {
        processed.push(...records);
        return undefined;
      }
      return records.map((r, i) => {
        if ((b.mask >> (i % 16)) & 1) return new Error(`record ${r} failed`);
        processed.push(r);
        return r;
      });
    },
  });
  bufio.on('deadLettered', ({ records }) => deadLettered.push(...records));
  bufio.on('dropped', ({ records }) => dropped.push(...records));
  bufio.start();

  const accepted: number[] = [];
  const refused: number[] = [];
  const pushes: Promise<void>[] = [];
  let next = 0;
  for (const s of scenario.steps) {
    if (s.kind === 'push') {
      const records = Array.from({ length: s.count }, () => next++);
      pushes.push(
        bufio.push(records).then(
          () => void accepted.push(...records),
          () => void refused.push(...records),
        ),
      );
    } else if (s.kind === 'flush') {
      void bufio.flush();
    } else {
      await jest.advanceTimersByTimeAsync(s.ms);
    }
  }
  const stopping = bufio.stop({ timeout: 60_000 });
  await jest.advanceTimersByTimeAsync(60_000);
  const summary = await stopping;
  await Promise.all(pushes);
  return {
    batches,
    processed,
    deadLettered,
    dropped,
    accepted,
    refused,
    summary,
    maxRunning,
    stats: bufio.stats(),
  };
}

describe('properties (fast-check)', () => {
  fakeTimersInEachTest();

  it('every accepted record ends exactly once: processed, dead-lettered, or (only when dropping) dropped', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batchSize: fc.integer({ min: 1, max: 10 }),
          concurrency: fc.integer({ min: 1, max: 4 }),
          maxAttempts: fc.integer({ min: 1, max: 4 }),
          maxBufferedRecords: fc.integer({ min: 10, max: 40 }),
          onFull: fc.constantFrom<OnFullPolicy>('block', 'drop-oldest', 'drop-newest', 'error'),
          steps: fc.array(step, { minLength: 1, maxLength: 40 }),
          behaviours: fc.array(behaviour, { minLength: 1, maxLength: 8 }),
        }),
        async (scenario) => {
          const r = await run(scenario);
          const outcomes = [...r.processed, ...r.deadLettered, ...r.dropped].sort((a, b) => a - b);
          // Under drop-newest a push resolves although its records were dropped: they are accepted
          // and reported. Every record is accounted for exactly once.
          expect(outcomes).toEqual([...r.accepted].sort((a, b) => a - b));
          if (scenario.onFull === 'block' || scenario.onFull === 'error')
            expect(r.dropped).toEqual([]);
          if (scenario.onFull !== 'error') expect(r.refused).toEqual([]);
          for (const batch of r.batches)
            expect(batch.length).toBeLessThanOrEqual(scenario.batchSize);
          expect(r.maxRunning).toBeLessThanOrEqual(scenario.concurrency);
          expect(r.summary.timedOut).toBe(false);
          expect(r.stats).toMatchObject({
            buffered: 0,
            inFlight: 0,
            processed: r.processed.length,
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('when the worker never fails: nothing is processed twice, and with concurrency 1 order holds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batchSize: fc.integer({ min: 1, max: 10 }),
          concurrency: fc.integer({ min: 1, max: 4 }),
          steps: fc.array(step, { minLength: 1, maxLength: 40 }),
        }),
        async ({ batchSize, concurrency, steps }) => {
          const r = await run({
            batchSize,
            concurrency,
            steps,
            maxAttempts: 3,
            maxBufferedRecords: 1000,
            onFull: 'block',
            behaviours: [{ kind: 'ok' }],
          });
          expect(new Set(r.processed).size).toBe(r.processed.length);
          expect([...r.processed].sort((a, b) => a - b)).toEqual(r.accepted);
          if (concurrency === 1) expect(r.batches.flat()).toEqual(r.accepted);
          expect(r.deadLettered).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });
});

interface Tagged {
  readonly key: string;
  readonly lane: number;
  readonly ids: readonly number[];
}

describe('properties with coalescing, priority lanes and bisecting (fast-check)', () => {
  fakeTimersInEachTest();

  it('no record is lost or processed twice, whatever the failures', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batchSize: fc.integer({ min: 1, max: 10 }),
          concurrency: fc.integer({ min: 1, max: 3 }),
          maxAttempts: fc.integer({ min: 1, max: 4 }),
          keys: fc.integer({ min: 1, max: 6 }),
          lanes: fc.integer({ min: 1, max: 3 }),
          coalesce: fc.boolean(),
          bisect: fc.boolean(),
          pushes: fc.array(
            fc.record({
              count: fc.integer({ min: 1, max: 8 }),
              lane: fc.nat(2),
              wait: fc.nat(150),
            }),
            {
              minLength: 1,
              maxLength: 25,
            },
          ),
          poison: fc.array(fc.nat(200), { maxLength: 6 }),
          behaviours: fc.array(behaviour, { minLength: 1, maxLength: 6 }),
        }),
        async (s) => {
          const poison = new Set(s.poison);
          const outcome = new Map<number, string>();
          const settle = (records: readonly Tagged[], how: string): void => {
            for (const r of records) {
              for (const id of r.ids) {
                expect(outcome.get(id)).toBeUndefined(); // never twice
                outcome.set(id, how);
              }
            }
          };
          let calls = 0;
          const bufio = new BufIO<Tagged>({
            batchSize: s.batchSize,
            concurrency: s.concurrency,
            flushInterval: 50,
            bisectOnError: s.bisect,
            retry: { maxAttempts: s.maxAttempts, initialDelay: 10, maxDelay: 80 },
            priority: { lanes: s.lanes },
            coalesce: s.coalesce
              ? {
                  key: (r) => r.key,
                  merge: (a, b) => ({ key: a.key, lane: a.lane, ids: [...a.ids, ...b.ids] }),
                }
              : undefined,
            worker: async (records) => {
              const b = s.behaviours[calls++ % s.behaviours.length]!;
              await new Promise((resolve) => setTimeout(resolve, 3));
              if (records.some((r) => r.ids.some((id) => poison.has(id))))
                throw new Error('poison');
              if (b.kind === 'throw') throw new Error('batch failed');
              if (b.kind === 'ok') return settle(records, 'processed');
              return records.map((r, i) => {
                if ((b.mask >> (i % 16)) & 1) return new Error('record failed');
                settle([r], 'processed');
                return undefined;
              });
            },
          });
          bufio.on('deadLettered', ({ records }) => settle(records, 'deadLettered'));
          bufio.start();
          let next = 0;
          const accepted: number[] = [];
          const pushes: Promise<void>[] = [];
          for (const p of s.pushes) {
            const lane = Math.min(p.lane, s.lanes - 1);
            const records = Array.from({ length: p.count }, () => {
              const id = next++;
              return { key: `k${id % s.keys}`, lane, ids: [id] };
            });
            pushes.push(
              bufio
                .push(records, { priority: lane })
                .then(() => void accepted.push(...records.map((r) => r.ids[0]!))),
            );
            await jest.advanceTimersByTimeAsync(p.wait);
          }
          const stopping = bufio.stop({ timeout: 120_000 });
          await jest.advanceTimersByTimeAsync(120_000);
          const summary = await stopping;
          await Promise.all(pushes);
          expect(summary.timedOut).toBe(false);
          expect([...outcome.keys()].sort((a, b) => a - b)).toEqual(accepted.sort((a, b) => a - b));
          for (const id of poison)
            if (outcome.has(id)) expect(outcome.get(id)).toBe('deadLettered');
          const stats = bufio.stats();
          expect(stats.processed + stats.deadLettered + stats.coalesced).toBe(stats.pushed);
        },
      ),
      { numRuns: 150 },
    );
  });
});
