import { bufioBatcher, type Batcher, type BatchWorker } from '../batcher.js';
import { HandLoop } from '../baselines/hand-loop.js';
import {
  fmt,
  fmtBytes,
  interleave,
  now,
  quantile,
  settledHeap,
  sleep,
  slope,
  sorted,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Table,
  type Target,
} from '../harness.js';

const BATCH_SIZE = 100;

// Part A: a slow worker, producers faster than it, `onFull: 'block'`.
const SLOW_WORK_MS = 50;
const SLOW_CAPACITY = 1000;
const SLOW_INTERVAL = 100;
const PRODUCERS = 10;
/** Heap growth over the window that still counts as flat: noise of V8's own bookkeeping. */
const FLAT_HEAP_BYTES = 1024 * 1024;

// Part B: a fast worker, a trickle of pushes, the interval trigger.
const FAST_INTERVAL = 100;
const TRICKLE_PAUSE_MS = 2;
const INTERVAL_SLACK_MS = 10;

interface Stamped {
  readonly at: number;
}

type Factory = (worker: BatchWorker<Stamped>) => Batcher<Stamped>;

/** Growable store of latencies, off the JS heap so that it does not disturb the heap samples. */
class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  add(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

interface SlowRun {
  readonly latencies: Samples;
  readonly heapStart: number;
  readonly heapEnd: number;
  readonly heapTimes: number[];
  readonly heapSamples: number[];
  readonly pushes: number;
  readonly seconds: number;
}

/**
 * `PRODUCERS` loops each `await push()` as fast as they are let in, while the worker takes
 * `SLOW_WORK_MS` per batch. After a warm-up, the heap is taken after a full collection, then
 * sampled (without collecting) every 100 ms, then taken after a full collection again.
 */
async function slowWorkerRun(
  create: Factory,
  warmupMs: number,
  windowMs: number,
): Promise<SlowRun> {
  const batcher = create(() => sleep(SLOW_WORK_MS));
  const latencies = new Samples();
  let recording = false;
  let running = true;
  const producer = async (): Promise<void> => {
    while (running) {
      const t0 = now();
      await batcher.push({ at: t0 });
      if (recording) latencies.add(now() - t0);
    }
  };
  const producers = Array.from({ length: PRODUCERS }, producer);
  await sleep(warmupMs);
  const heapStart = settledHeap();
  const heapTimes: number[] = [];
  const heapSamples: number[] = [];
  const started = now();
  recording = true;
  const sampler = setInterval(() => {
    heapTimes.push((now() - started) / 1000);
    heapSamples.push(process.memoryUsage().heapUsed);
  }, 100);
  await sleep(windowMs);
  recording = false;
  clearInterval(sampler);
  const seconds = (now() - started) / 1000;
  const heapEnd = settledHeap();
  running = false;
  await Promise.all(producers);
  await batcher.close();
  return {
    latencies,
    heapStart,
    heapEnd,
    heapTimes,
    heapSamples,
    pushes: latencies.length,
    seconds,
  };
}

/** One producer pushes a record every few ms; the worker records how long each waited. */
async function trickleRun(create: Factory, windowMs: number): Promise<Samples> {
  const waits = new Samples();
  let recording = true;
  const batcher = create((batch) => {
    if (!recording) return; // what close() flushes early would flatter the numbers
    const t = now();
    for (const record of batch) waits.add(t - record.at);
  });
  const end = now() + windowMs;
  while (now() < end) {
    await batcher.push({ at: now() });
    await sleep(TRICKLE_PAUSE_MS);
  }
  recording = false;
  await batcher.close();
  return waits;
}

function percentiles(values: Float64Array): {
  p50: number;
  p99: number;
  p999: number;
  max: number;
} {
  const s = sorted(values);
  return {
    p50: quantile(s, 0.5),
    p99: quantile(s, 0.99),
    p999: quantile(s, 0.999),
    max: s.length > 0 ? s[s.length - 1]! : NaN,
  };
}

function concat(parts: readonly Samples[]): Float64Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float64Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p.values(), offset);
    offset += p.length;
  }
  return out;
}

/** Suite 5: push latency under backpressure, heap over the run, and the interval trigger. */
export async function latencySuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 1 : 2;
  const warmupMs = config.quick ? 500 : 1000;
  const windowMs = config.quick ? 2500 : 5000;
  const trickleMs = config.quick ? 2500 : 5000;

  const slowContenders: [string, Factory][] = [
    [
      'BufIO',
      (worker) =>
        bufioBatcher(worker, {
          batchSize: BATCH_SIZE,
          flushInterval: SLOW_INTERVAL,
          maxBufferedRecords: SLOW_CAPACITY,
          onFull: 'block',
        }),
    ],
    [
      'hand loop (blocking)',
      (worker) =>
        new HandLoop({
          worker,
          batchSize: BATCH_SIZE,
          flushInterval: SLOW_INTERVAL,
          capacity: SLOW_CAPACITY,
        }),
    ],
  ];
  const slow = new Map<string, SlowRun[]>();
  await interleave(slowContenders, rounds, async ([name, create], round) => {
    const run = await slowWorkerRun(create, warmupMs, windowMs);
    slow.set(name, [...(slow.get(name) ?? []), run]);
    config.log(`  latency: slow worker, ${name}, round ${round + 1}/${rounds} done`);
  });

  const fastContenders: [string, Factory][] = [
    [
      'BufIO',
      (worker) => bufioBatcher(worker, { batchSize: BATCH_SIZE, flushInterval: FAST_INTERVAL }),
    ],
    [
      'hand loop',
      (worker) => new HandLoop({ worker, batchSize: BATCH_SIZE, flushInterval: FAST_INTERVAL }),
    ],
  ];
  const fast = new Map<string, Samples[]>();
  await interleave(fastContenders, rounds, async ([name, create], round) => {
    const waits = await trickleRun(create, trickleMs);
    fast.set(name, [...(fast.get(name) ?? []), waits]);
    config.log(`  latency: push to worker, ${name}, round ${round + 1}/${rounds} done`);
  });

  const measurements: Measurement[] = [];
  const targets: Target[] = [];
  const slowRows: string[][] = [];
  for (const [name] of slowContenders) {
    const runs = slow.get(name) ?? [];
    const p = percentiles(concat(runs.map((r) => r.latencies)));
    const pushes = runs.reduce((n, r) => n + r.pushes, 0);
    const seconds = runs.reduce((n, r) => n + r.seconds, 0);
    const growth = runs.map((r) => r.heapEnd - r.heapStart);
    const worstGrowth = Math.max(...growth);
    const slopes = runs.map((r) => slope(r.heapTimes, r.heapSamples));
    const sampled = runs.flatMap((r) => r.heapSamples);
    measurements.push({
      contender: name,
      metric: 'push latency, slow worker',
      unit: 'ms',
      summary: { median: p.p50, p25: NaN, p75: NaN, min: NaN, max: p.max, n: pushes },
      extra: {
        p99: p.p99,
        p999: p.p999,
        pushesPerSecond: pushes / seconds,
        heapGrowthAfterGc: growth,
        heapSlopeBytesPerSecond: slopes,
        heapSampledMin: Math.min(...sampled),
        heapSampledMax: Math.max(...sampled),
        heapSamples: runs.map((r) => r.heapSamples),
      },
    });
    slowRows.push([
      name,
      fmt(p.p50),
      fmt(p.p99),
      fmt(p.p999),
      fmt(p.max),
      fmt(pushes / seconds),
      growth.map(fmtBytes).join(', '),
      `${fmtBytes(Math.min(...sampled))}–${fmtBytes(Math.max(...sampled))}`,
    ]);
    if (name === 'BufIO') {
      targets.push({
        name: 'slow worker, onFull block: heap stays flat',
        goal: `heap after GC grows ≤ ${fmtBytes(FLAT_HEAP_BYTES)} over the window`,
        measured: `${growth.map(fmtBytes).join(', ')} (per round)`,
        met: runs.length > 0 ? worstGrowth <= FLAT_HEAP_BYTES : null,
      });
    }
  }

  const fastRows: string[][] = [];
  for (const [name] of fastContenders) {
    const parts = fast.get(name) ?? [];
    const p = percentiles(concat(parts));
    const n = parts.reduce((k, s) => k + s.length, 0);
    measurements.push({
      contender: name,
      metric: 'push to worker, fast worker',
      unit: 'ms',
      summary: { median: p.p50, p25: NaN, p75: NaN, min: NaN, max: p.max, n },
      extra: { p99: p.p99, p999: p.p999 },
    });
    fastRows.push([
      name,
      fmt(p.p50),
      fmt(p.p99),
      fmt(p.p999),
      fmt(p.max),
      n.toLocaleString('en-US'),
    ]);
    if (name === 'BufIO') {
      targets.push({
        name: `flushInterval ${FAST_INTERVAL} ms: push to worker p99`,
        goal: `≤ ${FAST_INTERVAL + INTERVAL_SLACK_MS} ms`,
        measured: `${fmt(p.p99)} ms (p99.9 ${fmt(p.p999)} ms, max ${fmt(p.max)} ms)`,
        met: n > 0 ? p.p99 <= FAST_INTERVAL + INTERVAL_SLACK_MS : null,
      });
    }
  }

  const tables: Table[] = [
    {
      title: `slow worker (${SLOW_WORK_MS} ms per batch of ${BATCH_SIZE}), ${PRODUCERS} producers, onFull 'block', maxBufferedRecords ${SLOW_CAPACITY}: push latency in ms`,
      columns: [
        'contender',
        'p50',
        'p99',
        'p99.9',
        'max',
        'pushes/s',
        'heap growth after GC (per round)',
        'heap sampled (min–max)',
      ],
      rows: slowRows,
    },
    {
      title: `fast worker, flushInterval ${FAST_INTERVAL} ms, one push every ~${TRICKLE_PAUSE_MS} ms: push to worker in ms`,
      columns: ['contender', 'p50', 'p99', 'p99.9', 'max', 'records'],
      rows: fastRows,
    },
  ];

  return {
    id: 'latency',
    title: '5. Latency',
    method: [
      `**Slow worker.** The worker takes ${SLOW_WORK_MS} ms per batch of ${BATCH_SIZE} (so at most ${(BATCH_SIZE * 1000) / SLOW_WORK_MS} records/s get through); ${PRODUCERS} producers each \`await push()\` in a loop, as fast as they are let in, into a buffer of ${SLOW_CAPACITY} records with \`onFull: 'block'\` (flushInterval ${SLOW_INTERVAL} ms). Push latency is the time each \`await push()\` took, pooled over ${rounds} round(s) of ${windowMs / 1000} s after a ${warmupMs / 1000} s warm-up. The heap is read after a full GC at the start and at the end of the window (the flatness check), and sampled every 100 ms in between without collecting (its range includes garbage not yet collected; the least-squares slope of the samples is in the JSON). The baseline is the hand loop with the same capacity, its \`push\` returning a promise while full.`,
      `**Interval trigger.** A fast worker (it only reads the clock); one producer pushes a record, then sleeps ${TRICKLE_PAUSE_MS} ms (about 300–500 records/s, far below batchSize ${BATCH_SIZE} per interval, so the interval, not the size, dispatches batches). The latency of a record is the time from \`push\` to the worker call that receives it, over ${rounds} round(s) of ${trickleMs / 1000} s. The hand loop's repeating timer bounds its wait by the interval too.`,
      'Runner: our own (time windows, pooled samples kept in typed arrays off the JS heap), contenders alternating.',
    ],
    tables,
    measurements,
    targets,
    notes: [],
    seconds: (now() - started) / 1000,
  };
}
