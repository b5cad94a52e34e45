/**
 * Run as a child process by the outage suite (`bench/suites/outage.ts`), one scenario per
 * process, so that its memory is its own:
 *
 *   node --expose-gc dist/bench/probes/outage-run.js '<OutageRunConfig as JSON>'
 *
 * - `fail`: 100 producers push `records` into a BufIO over the storage while every worker call
 *   fails (the records go back for a retry); then the worker comes back, counting, and the
 *   backlog drains.
 * - `block`: the same pushes while the worker's calls never return; then prints `PUSHED` and
 *   waits to be killed (SIGKILL) with the backlog.
 * - `reopen`: opens the storage the killed process left, and drains it with a counting worker.
 * - `baseline`: no outage: the same pushes with the worker up (counting), into a buffer that stays
 *   about empty; the push rate the outage runs are compared with.
 *
 * Prints one line per phase, `PHASE <OutagePhase as JSON>`, and at the end `DONE <peak RSS of
 * the process, from getrusage>`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { BufIO } from '../../lib/index.js';
import { collectGarbage, now } from '../harness.js';
import { makeRecord } from '../records.js';
import { OUTAGE_STORAGES, type OutageRecord } from '../suites/outage-storages.js';

export interface OutageRunConfig {
  readonly storage: string;
  readonly tag: string;
  readonly mode: 'fail' | 'block' | 'reopen' | 'baseline';
  readonly records: number;
  readonly producers: number;
}

/** What one phase of a run measured. */
export interface OutagePhase {
  readonly phase: 'push' | 'drain' | 'open';
  readonly records: number;
  readonly seconds: number;
  /** Event-loop delay during the phase, in ms. */
  readonly delayP99: number;
  readonly delayMax: number;
  /** Highest RSS sampled (every 50 ms) during the phase, in bytes. */
  readonly rssPeak: number;
  /** At that sample: the V8 heap (used, and reserved) and memory outside it (Buffers). */
  readonly atPeak: { heapUsed: number; heapTotal: number; external: number };
  /** Heap in use after full collections at the end of the phase. */
  readonly heapAfter: number;
  /** Worker calls that failed during the phase. */
  readonly failedCalls?: number;
  /** With `open`: what the storage says the open took (`recovery.durationMs`), if it says. */
  readonly storageMs?: number;
  /** When each tenth of the records had been pushed (drained), in s from the phase's start. */
  readonly tenths?: readonly number[];
}

/** The engine's settings over every storage: batches of 1,000, two calls at once. */
const ENGINE = { batchSize: 1000, flushInterval: 100, concurrency: 2 } as const;
/** A worker that is down makes the records go back for a retry after 0.5 to 5 s. */
const RETRY = { maxAttempts: 1_000_000_000, initialDelay: 500, maxDelay: 5000 } as const;
const NOTE = 'payment for order, see the invoice attached to it';

const config = JSON.parse(process.argv[2]!) as OutageRunConfig;
const target = OUTAGE_STORAGES.find((s) => s.name === config.storage);
if (!target) throw new Error(`no outage storage named ${config.storage}`);

/** Measures a phase: event-loop delay, RSS, time. */
function measure(phase: OutagePhase['phase']): (records: number, extra?: object) => OutagePhase {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  let rssPeak = 0;
  let atPeak = { heapUsed: 0, heapTotal: 0, external: 0 };
  const sample = (): void => {
    const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
    if (rss <= rssPeak) return;
    rssPeak = rss;
    atPeak = { heapUsed, heapTotal, external };
  };
  sample();
  const sampler = setInterval(sample, 50);
  const started = now();
  return (records, extra) => {
    const seconds = (now() - started) / 1000;
    delay.disable();
    clearInterval(sampler);
    sample();
    collectGarbage();
    return {
      phase,
      records,
      seconds,
      delayP99: delay.percentile(99) / 1e6,
      delayMax: delay.max / 1e6,
      rssPeak,
      atPeak,
      heapAfter: process.memoryUsage().heapUsed,
      ...extra,
    };
  };
}

const report = (phase: OutagePhase): void => {
  process.stdout.write(`PHASE ${JSON.stringify(phase)}\n`);
};

/** Counts distinct ids seen, one bit each, and when each tenth of them was. */
class Seen {
  private readonly bits: Uint32Array;
  private readonly tenth: number;
  count = 0;
  since = now();
  tenths: number[] = [];
  constructor(records: number) {
    this.bits = new Uint32Array(Math.ceil(records / 32));
    this.tenth = Math.max(1, Math.floor(records / 10));
  }
  add(id: number): void {
    const word = id >>> 5;
    const mask = 1 << (id & 31);
    if ((this.bits[word]! & mask) !== 0) return;
    this.bits[word] = this.bits[word]! | mask;
    if (++this.count % this.tenth === 0) this.tenths.push((now() - this.since) / 1000);
  }
}

/** Fails the run when the drain stops making progress (records lost would hang it). */
function watchProgress(seen: Seen): () => void {
  let last = -1;
  let stalledSince = now();
  const timer = setInterval(() => {
    if (seen.count !== last) {
      last = seen.count;
      stalledSince = now();
    } else if (now() - stalledSince > 60_000) {
      process.stderr.write(`the drain stopped at ${seen.count} of ${config.records} records\n`);
      process.exit(1);
    }
  }, 1000);
  return () => clearInterval(timer);
}

// Reopening a journal is the first thing the `reopen` run measures.
const opening = config.mode === 'reopen' ? measure('open') : undefined;
const storage = await target.open(config.tag);
let down = config.mode === 'fail' || config.mode === 'block';
let failedCalls = 0;
const seen = new Seen(config.records);
let allSeen: () => void = () => undefined;
const drained = new Promise<void>((resolve) => (allSeen = resolve));
const bufio = new BufIO<OutageRecord>({
  ...ENGINE,
  storage,
  maxBufferedRecords: Math.max(config.records * 2, 1_000_000),
  retry: RETRY,
  worker: async (records) => {
    if (down) {
      failedCalls++;
      if (config.mode === 'block') await new Promise(() => undefined);
      throw new Error('the database is down');
    }
    for (const record of records) seen.add(record.id);
    if (seen.count >= config.records) allSeen();
  },
});
bufio.on('error', (error) => process.stderr.write(`bufio: ${error.message}\n`));

if (opening) {
  await storage.recover();
  const storageMs = (storage as { recovery?: { durationMs?: number } }).recovery?.durationMs;
  report(opening(await storage.size(), { storageMs }));
  const drain = measure('drain');
  seen.since = now();
  const stop = watchProgress(seen);
  bufio.start();
  await drained;
  stop();
  report(drain(seen.count, { tenths: seen.tenths }));
} else {
  bufio.start();
  const push = measure('push');
  const started = now();
  const tenth = Math.max(1, Math.floor(config.records / 10));
  const tenths: number[] = [];
  let next = 0;
  let pushed = 0;
  await Promise.all(
    Array.from({ length: config.producers }, async () => {
      while (next < config.records) {
        const id = next++;
        await bufio.push({ ...makeRecord(id), note: NOTE });
        if (++pushed % tenth === 0) tenths.push((now() - started) / 1000);
      }
    }),
  );
  report(push(config.records, { failedCalls, tenths }));
  if (config.mode === 'block') {
    process.stdout.write('PUSHED\n');
    await new Promise(() => undefined);
  }
  if (config.mode === 'baseline') {
    // The records went as they came: no backlog to time.
    await drained;
    await bufio.stop();
    process.stdout.write(`DONE ${process.resourceUsage().maxRSS * 1024}\n`);
    process.exit(0);
  }
  const drain = measure('drain');
  seen.since = now();
  const stop = watchProgress(seen);
  down = false;
  await drained;
  stop();
  report(drain(seen.count, { failedCalls, tenths: seen.tenths }));
}
await bufio.stop();
process.stdout.write(`DONE ${process.resourceUsage().maxRSS * 1024}\n`);
process.exit(0);
