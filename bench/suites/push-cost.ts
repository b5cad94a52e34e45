import { Bench } from 'tinybench';
import { bufioBatcher, type Batcher, type BatchWorker } from '../batcher.js';
import { cargoBatcher } from '../baselines/async-cargo-queue.js';
import { HandLoop } from '../baselines/hand-loop.js';
import { otelBatcher, premadeSpans } from '../baselines/otel-batch-span-processor.js';
import { rxjsBatcher } from '../baselines/rxjs-buffer-time.js';
import {
  fmt,
  fmtRatio,
  fmtSummary,
  now,
  ratios,
  roundOrder,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Target,
} from '../harness.js';
import { makeRecords } from '../records.js';

const BATCH_SIZE = 100;
const FLUSH_INTERVAL = 1000;
/** Records pushed per timed iteration. A multiple of the batch size: no partial batch waits. */
const RECORDS_PER_ITERATION = 10_000;

type Mode = 'push' | 'await push';
const MODES: readonly Mode[] = ['push', 'await push'];

const HAND = 'hand loop';
const HAND_ASYNC = 'hand loop, async worker';
const BUFIO = 'BufIO';

/** One contender, with its own records: plain objects, or spans for OpenTelemetry. */
interface Contender {
  readonly name: string;
  /** A peer (rather than the limit, or BufIO itself): BufIO must beat it. */
  readonly peer: boolean;
  readonly note: string;
  /** Opens a fresh instance for a tinybench phase; returns what a timed iteration runs. */
  open(): Session;
}

interface Session {
  /** Pushes one iteration's records; returns the ms of the push loop and of push + drain. */
  iterate(mode: Mode): Promise<{ push: number; total: number }>;
  /** Closes, and checks that every record pushed reached the worker. */
  close(): Promise<void>;
}

/**
 * Builds a contender around a batcher factory. Each contender gets its own compiled copy of the
 * push loops, so V8's inline caches at `push(...)` stay monomorphic, as in an application that
 * pushes into one kind of buffer; a shared loop would charge every contender for the others.
 */
function contender<R>(
  name: string,
  peer: boolean,
  note: string,
  records: readonly R[],
  create: (worker: BatchWorker<R>) => Batcher<R>,
  asyncWorker = false,
): Contender {
  const syncLoop = compileLoop<R>(false);
  const asyncLoop = compileLoop<R>(true);
  return {
    name,
    peer,
    note,
    open() {
      let processed = 0;
      let pushed = 0;
      const worker: BatchWorker<R> = asyncWorker
        ? async (batch) => {
            processed += batch.length;
          }
        : (batch) => {
            processed += batch.length;
          };
      const batcher = create(worker);
      return {
        async iterate(mode) {
          const t0 = now();
          if (mode === 'push') syncLoop(batcher, records, RECORDS_PER_ITERATION);
          else await asyncLoop(batcher, records, RECORDS_PER_ITERATION);
          const t1 = now();
          await batcher.drain();
          const t2 = now();
          pushed += RECORDS_PER_ITERATION;
          return { push: t1 - t0, total: t2 - t0 };
        },
        async close() {
          await batcher.close();
          if (processed !== pushed) {
            throw new Error(`${name}: the worker saw ${processed} of ${pushed} records pushed`);
          }
        },
      };
    },
  };
}

type Loop<R> = (batcher: Batcher<R>, records: readonly R[], n: number) => unknown;

/** Compiled per contender (see `contender`): `new Function` gives each copy its own feedback. */
function compileLoop<R>(awaited: boolean): Loop<R> {
  const params = ['batcher', 'records', 'n'];
  if (!awaited) {
    return new Function(
      ...params,
      'for (let i = 0; i < n; i++) batcher.push(records[i]);',
    ) as Loop<R>;
  }
  const AsyncFunction = (async () => {}).constructor as new (...args: string[]) => Loop<R>;
  return new AsyncFunction(
    ...params,
    'for (let i = 0; i < n; i++) await batcher.push(records[i]);',
  );
}

function contenders(): Contender[] {
  const records = makeRecords(RECORDS_PER_ITERATION);
  const spans = premadeSpans(RECORDS_PER_ITERATION);
  const capacity = 1_000_000; // no contender ever blocks or drops in this suite
  const timing = { batchSize: BATCH_SIZE, flushInterval: FLUSH_INTERVAL };
  return [
    contender(
      HAND,
      false,
      'the limit: an array and one repeating `setInterval`; a full array goes to a synchronous worker inside `push` (bench/baselines/hand-loop.ts)',
      records,
      (worker) => {
        return new HandLoop({ worker, ...timing });
      },
    ),
    contender(
      HAND_ASYNC,
      false,
      'the same loop with an `async` worker, one call at a time',
      records,
      (worker) => new HandLoop({ worker, ...timing }),
      true,
    ),
    contender(
      BUFIO,
      false,
      '`new BufIO({ worker, batchSize: 100, flushInterval: 1000, maxBufferedRecords: 1_000_000 })`, started: MemoryStorage, concurrency 1',
      records,
      (worker) => bufioBatcher(worker, { ...timing, maxBufferedRecords: capacity }),
    ),
    contender(
      'OpenTelemetry BatchSpanProcessor',
      true,
      '`onEnd(span)` of pre-made spans, no-op exporter, maxQueueSize 1,000,000',
      spans,
      (worker) => otelBatcher(worker, { ...timing, capacity }),
    ),
    contender(
      'async.cargoQueue',
      true,
      '`cargoQueue(worker, 1, 100)`, `push(record, noop)`',
      records,
      (worker) => cargoBatcher(worker, timing),
    ),
    contender(
      'rxjs bufferTime',
      true,
      '`Subject` → `bufferTime(1000, null, 100)` → `subscribe(worker)`',
      records,
      (worker) => rxjsBatcher(worker, timing),
    ),
  ];
}

/** Per contender and mode, one value per round (ns per record). */
type Series = Map<string, number[]>;
const key = (name: string, mode: Mode, part: 'push' | 'total'): string => `${name}|${mode}|${part}`;

function append(series: Series, k: string, value: number): void {
  const list = series.get(k);
  if (list) list.push(value);
  else series.set(k, [value]);
}

/** Suite 1: the cost of `push`, in memory, with a worker that does nothing. */
export async function pushCostSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 3 : 5;
  const time = config.quick ? 100 : 300;
  const warmupTime = config.quick ? 50 : 100;
  const list = contenders();
  const series: Series = new Map();
  const failures: string[] = [];

  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({ time, warmupTime, warmupIterations: 5, iterations: 10 });
    const order = roundOrder(list, round);
    const totals = new Map<string, number[]>();
    for (const c of order) {
      for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
        const name = `${c.name}|${mode}`;
        let session: Session | undefined;
        let measuring = false;
        const phaseTotals: number[] = [];
        totals.set(name, phaseTotals);
        bench.add(
          name,
          async () => {
            const { push, total } = await (session as Session).iterate(mode);
            if (measuring) phaseTotals.push(total);
            return { overriddenDuration: push, overriddenIterationCost: total };
          },
          {
            async: true,
            beforeAll(phase) {
              measuring = phase === 'run';
              session = c.open();
            },
            async afterAll() {
              await (session as Session).close();
            },
          },
        );
      }
    }
    await bench.run();
    for (const task of bench.tasks) {
      const [contenderName, mode] = task.name.split('|') as [string, Mode];
      const result = task.result;
      if (result.state !== 'completed') {
        const error = 'error' in result ? String(result.error) : result.state;
        failures.push(`${contenderName} (${mode}), round ${round + 1}: ${error}`);
        continue;
      }
      const perRecord = 1e6 / RECORDS_PER_ITERATION; // ms per iteration → ns per record
      append(series, key(contenderName, mode, 'push'), result.latency.p50 * perRecord);
      const total = summarize(totals.get(task.name) ?? []).median;
      append(series, key(contenderName, mode, 'total'), total * perRecord);
    }
    config.log(`  push cost: round ${round + 1}/${rounds} done`);
  }

  const measurements: Measurement[] = [];
  for (const c of list) {
    for (const mode of MODES) {
      for (const part of ['push', 'total'] as const) {
        const values = series.get(key(c.name, mode, part)) ?? [];
        const hand = series.get(key(HAND, mode, part)) ?? [];
        measurements.push({
          contender: c.name,
          metric: `${mode}${part === 'total' ? ' + drain' : ''}`,
          unit: 'ns/record',
          summary: summarize(values),
          ratio: { to: HAND, summary: summarize(ratios(values, hand)) },
          extra: { rounds: values, note: c.note },
        });
      }
    }
  }

  const find = (name: string, metric: string): Measurement | undefined =>
    measurements.find((m) => m.contender === name && m.metric === metric);
  const rows = list.map((c) => {
    const cells = [c.name];
    for (const metric of ['push', 'push + drain', 'await push', 'await push + drain']) {
      const m = find(c.name, metric);
      cells.push(m && m.summary.n > 0 ? fmtSummary(m.summary) : 'failed');
    }
    for (const metric of ['push', 'await push']) {
      const m = find(c.name, metric);
      cells.push(m?.ratio && m.ratio.summary.n > 0 ? fmtRatio(m.ratio.summary.median) : '–');
    }
    return cells;
  });

  const targets: Target[] = [];
  for (const metric of ['push', 'await push']) {
    const bufio = series.get(key(BUFIO, metric as Mode, 'push')) ?? [];
    for (const peer of list.filter((c) => c.peer)) {
      const theirs = series.get(key(peer.name, metric as Mode, 'push')) ?? [];
      const r = summarize(ratios(theirs, bufio));
      targets.push({
        name: `${metric}: BufIO faster than ${peer.name}`,
        goal: 'peer / BufIO > 1',
        measured: r.n > 0 ? `${fmtRatio(r.median)} (rounds ${fmt(r.min)}–${fmt(r.max)})` : 'n/a',
        met: r.n > 0 ? r.median > 1 : null,
      });
    }
    const hand = summarize(ratios(bufio, series.get(key(HAND, metric as Mode, 'push')) ?? []));
    targets.push({
      name: `${metric}: BufIO within 5× of the hand loop`,
      goal: 'BufIO / hand loop ≤ 5',
      measured:
        hand.n > 0 ? `${fmtRatio(hand.median)} (rounds ${fmt(hand.min)}–${fmt(hand.max)})` : 'n/a',
      met: hand.n > 0 ? hand.median <= 5 : null,
    });
  }

  return {
    id: 'push',
    title: '1. push() cost, in memory',
    method: [
      `Each timed iteration pushes ${RECORDS_PER_ITERATION.toLocaleString('en-US')} pre-made records in a loop, then waits for the contender to hand all of them to a worker that only counts them. **push** times the loop of \`push(record)\` calls without \`await\` (the buffer is large enough never to block: nothing is dropped, and each contender's count is checked); **await push** times \`for (…) await push(record)\` (for a contender whose push returns nothing, \`await\` costs one microtask, as it would in the caller's code); **+ drain** adds the time until the worker has seen every record (BufIO \`flush()\`, OpenTelemetry \`forceFlush()\`, cargoQueue \`drain()\`, rxjs: until the subscriber has counted them).`,
      `Batch size ${BATCH_SIZE} and flush interval ${FLUSH_INTERVAL} ms for every contender (cargoQueue has no interval: it batches what waits at the next \`setImmediate\`). One worker call at a time everywhere.`,
      `Harness: tinybench (iteration time from \`overriddenDuration\`, the loop only; warm-up ${warmupTime} ms, ${time} ms per task), ${rounds} rounds; within a round each contender and mode runs once, and the order rotates and reverses from round to round (\`roundOrder\` in bench/harness.ts). Each cell is the median over rounds of the per-round median, with the min–max over rounds. The ratio is the contender's time over the hand loop's in the same round (median over rounds).`,
      'Each contender has its own compiled copy of the push loop (see `bench/suites/push-cost.ts`), so call sites stay monomorphic as they would in an application.',
      ...list.map((c) => `- **${c.name}**: ${c.note}.`),
    ],
    tables: [
      {
        title: 'ns per record (median over rounds, min–max)',
        columns: [
          'contender',
          'push',
          'push + drain',
          'await push',
          'await push + drain',
          'push vs hand loop',
          'await push vs hand loop',
        ],
        rows,
      },
    ],
    measurements,
    targets,
    notes: failures,
    seconds: (now() - started) / 1000,
  };
}
