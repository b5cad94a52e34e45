import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BufIO, MemoryStorage, type Storage } from '../../lib/index.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import {
  deferred,
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
import { makeRecord, type BenchRecord } from '../records.js';
import { connectPostgres, connectRedis, POSTGRES_URL, REDIS_URL, runTag } from '../services.js';
import { dropTables, storageTables } from './postgres-storage.js';

const BATCH = 1000;
const PRODUCERS = 100;
/** Issue 12, item 4: BufIO end to end reaches this share of its storage driven directly. */
const GOAL_RATIO = 0.9;

const DIRECT = 'storage driven directly, batches of 1000';
const PRODUCERS_DIRECT = 'storage driven directly by the 100 producers';
const ENGINE = 'BufIO, 100 producers awaiting push';
const ALONE = '100 producers awaiting a push that does nothing';
type Mode = typeof DIRECT | typeof PRODUCERS_DIRECT | typeof ENGINE | typeof ALONE;
const MODES: readonly Mode[] = [DIRECT, PRODUCERS_DIRECT, ENGINE, ALONE];

/** A storage under test: how to make a fresh one, and how many records a round moves. */
interface StorageKind {
  readonly name: string;
  readonly records: { readonly quick: number; readonly full: number };
  open(): Promise<{ storage: Storage<BenchRecord>; dispose(): Promise<void> }>;
}

const KINDS: readonly StorageKind[] = [
  {
    name: 'MemoryStorage',
    records: { quick: 500_000, full: 2_000_000 },
    open: async () => ({ storage: new MemoryStorage<BenchRecord>(), dispose: async () => {} }),
  },
  {
    name: "FileStorage (durability 'none')",
    records: { quick: 200_000, full: 1_000_000 },
    open: async () => {
      const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'bufio-bench-overhead-'));
      const storage = await FileStorage.open<BenchRecord>({ directory, durability: 'none' });
      return {
        storage,
        dispose: async () => {
          await storage.close();
          await fs.rm(directory, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'RedisStorage',
    records: { quick: 50_000, full: 200_000 },
    open: async () => {
      const admin = await connectRedis();
      if (typeof admin === 'string') throw new Error(admin);
      const storage = new RedisStorage<BenchRecord>({
        url: REDIS_URL,
        prefix: `bufio-bench:${runTag()}:overhead`,
      });
      await storage.size(); // connected before the clock starts
      return {
        storage,
        dispose: async () => {
          await storage.close();
          await admin.del(...Object.values(storage.keys));
          admin.disconnect();
        },
      };
    },
  },
  {
    name: 'PostgresStorage',
    records: { quick: 50_000, full: 200_000 },
    open: async () => {
      const admin = await connectPostgres();
      if (typeof admin === 'string') throw new Error(admin);
      const table = `bufio_bench_overhead_${runTag()}`;
      const storage = new PostgresStorage<BenchRecord>({
        connectionString: POSTGRES_URL,
        table,
        poolConfig: { max: 4 },
      });
      await storage.migrate();
      await storage.reserve(1, { now: Date.now() }); // the session open before the clock starts
      return {
        storage,
        dispose: async () => {
          await storage.close();
          await dropTables(admin, storageTables(table));
          await admin.end();
        },
      };
    },
  },
];

/**
 * (a) The storage alone: append a batch of `BATCH` records, reserve `BATCH`, ack them, until
 * `count` records went through. Returns the ms it took.
 */
async function driveDirectly(storage: Storage<BenchRecord>, count: number): Promise<number> {
  const t0 = now();
  let seen = 0;
  for (let next = 0; next < count;) {
    const batch = new Array<BenchRecord>(BATCH);
    for (let i = 0; i < BATCH; i++) batch[i] = makeRecord(next++);
    await storage.append(batch);
    const leased = await storage.reserve(BATCH, { now: Date.now() });
    seen += leased.length;
    await storage.ack(leased);
  }
  const ms = now() - t0;
  if (seen !== count) throw new Error(`direct: reserved ${seen} of ${count} records`);
  return ms;
}

/**
 * (a') The same workload as (b) without the engine: the 100 producers each await `append` of one
 * record, straight into the storage, and one consumer reserves `BATCH` records once that many are
 * waiting (or the last ones), and acks them. What BufIO adds between producers and storage is the
 * difference between this and (b); (a) differs from both by the workload itself, since an
 * awaited push can carry at most one record per producer into each append.
 */
async function driveByProducers(storage: Storage<BenchRecord>, count: number): Promise<number> {
  let appended = 0;
  let seen = 0;
  let wake: (() => void) | undefined;
  const t0 = now();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < count) {
      await storage.append([makeRecord(next++)]);
      appended++;
      if (wake && (appended - seen >= BATCH || appended === count)) {
        const woken = wake;
        wake = undefined;
        woken();
      }
    }
  };
  const consumer = async (): Promise<void> => {
    while (seen < count) {
      if (appended - seen < BATCH && appended < count) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const leased = await storage.reserve(BATCH, { now: Date.now() });
      seen += leased.length;
      await storage.ack(leased);
    }
  };
  await Promise.all([consumer(), ...Array.from({ length: PRODUCERS }, producer)]);
  return now() - t0;
}

/**
 * The producers alone: the same 100 loops awaiting a `push` that only keeps the record, what
 * (b) would cost with an engine that cost nothing. Returns the ms it took.
 */
async function driveProducersAlone(count: number): Promise<number> {
  const resolved = Promise.resolve();
  let kept: BenchRecord[] = [];
  const push = (record: BenchRecord): Promise<void> => {
    kept.push(record);
    if (kept.length === BATCH) kept = [];
    return resolved;
  };
  const t0 = now();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < count) await push(makeRecord(next++));
  };
  await Promise.all(Array.from({ length: PRODUCERS }, producer));
  return now() - t0;
}

/**
 * (b) BufIO over the storage: `PRODUCERS` producers each `await push()` one record at a time, a
 * worker that counts, batchSize `BATCH`. Returns the ms until the worker has seen every record.
 */
async function driveEngine(storage: Storage<BenchRecord>, count: number): Promise<number> {
  let processed = 0;
  const done = deferred();
  const bufio = new BufIO<BenchRecord>({
    storage,
    batchSize: BATCH,
    maxBufferedRecords: Math.max(100_000, BATCH * 10),
    worker: (records) => {
      processed += records.length;
      if (processed >= count) done.resolve();
    },
  });
  bufio.start();
  const t0 = now();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < count) await bufio.push(makeRecord(next++));
  };
  await Promise.all(Array.from({ length: PRODUCERS }, producer));
  // The last partial batch goes now rather than after flushInterval.
  void bufio.flush();
  await done.promise;
  const ms = now() - t0;
  await bufio.stop();
  if (processed !== count) throw new Error(`engine: the worker saw ${processed} of ${count}`);
  return ms;
}

export async function engineOverheadSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 3 : 5;
  const rows: string[][] = [];
  const measurements: Measurement[] = [];
  const targets: Target[] = [];
  const notes: string[] = [];
  for (const kind of KINDS) {
    const count = config.quick ? kind.records.quick : kind.records.full;
    const rates: Record<Mode, number[]> = {
      [DIRECT]: [],
      [PRODUCERS_DIRECT]: [],
      [ENGINE]: [],
      [ALONE]: [],
    };
    try {
      for (let round = 0; round < rounds; round++) {
        for (const mode of roundOrder(MODES, round)) {
          if (mode === ALONE) {
            rates[mode].push((count / (await driveProducersAlone(count))) * 1000);
            continue;
          }
          const { storage, dispose } = await kind.open();
          try {
            const ms =
              mode === DIRECT
                ? await driveDirectly(storage, count)
                : mode === PRODUCERS_DIRECT
                  ? await driveByProducers(storage, count)
                  : await driveEngine(storage, count);
            rates[mode].push((count / ms) * 1000);
          } finally {
            await dispose();
          }
        }
        config.log(
          `  ${kind.name}, round ${round + 1}/${rounds}: direct ${fmt(rates[DIRECT].at(-1) ?? NaN)}, by the producers ${fmt(rates[PRODUCERS_DIRECT].at(-1) ?? NaN)}, BufIO ${fmt(rates[ENGINE].at(-1) ?? NaN)} records/s`,
        );
      }
    } catch (error) {
      notes.push(`${kind.name}: ${String(error)}`);
      continue;
    }
    const ratio = summarize(ratios(rates[ENGINE], rates[PRODUCERS_DIRECT]));
    const ofBatches = summarize(ratios(rates[ENGINE], rates[DIRECT]));
    const ofAlone = summarize(ratios(rates[ENGINE], rates[ALONE]));
    for (const mode of MODES) {
      const summary = summarize(rates[mode]);
      rows.push([
        kind.name,
        mode,
        count.toLocaleString('en-US'),
        fmtSummary(summary),
        mode === ENGINE ? fmtSummary(ratio) : '–',
        mode === ENGINE ? fmtSummary(ofBatches) : '–',
        mode === ENGINE ? fmtSummary(ofAlone) : '–',
      ]);
      measurements.push({
        contender: `${kind.name}, ${mode}`,
        metric: 'records per second',
        unit: 'records/s',
        summary,
        ...(mode === ENGINE
          ? { ratio: { to: `${kind.name}, ${PRODUCERS_DIRECT}`, summary: ratio } }
          : {}),
      });
    }
    targets.push({
      name: `${kind.name}: BufIO with ${PRODUCERS} producers awaiting push, against the same producers appending to the storage directly (reserves of ${BATCH})`,
      goal: `≥ ${fmtRatio(GOAL_RATIO)}`,
      measured: `${fmtRatio(ratio.median)} (${fmt(ratio.min)}–${fmt(ratio.max)} over ${ratio.n} rounds; ${fmtRatio(ofBatches.median)} of the storage driven in batches of ${BATCH}, ${fmtRatio(ofAlone.median)} of the producers alone)`,
      met: ratio.median >= GOAL_RATIO,
    });
  }
  return {
    id: 'engine-overhead',
    title: 'Engine overhead',
    method: [
      `(a) The storage driven directly in batches: append ${BATCH} records (made as they are appended), reserve ${BATCH}, ack them, in a loop. (a') The storage driven directly by the workload of (b): ${PRODUCERS} producers each \`await storage.append([record])\`, one consumer that reserves ${BATCH} once that many are waiting (or the last ones) and acks them. (b) BufIO over a fresh instance of the same storage: ${PRODUCERS} producers each \`await push()\` one record at a time, a worker that counts, batchSize ${BATCH}, concurrency 1; the time runs until the worker has seen every record. Records per second, ${rounds} rounds, the modes in a rotating order in each round; ratios are taken within each round. The target is b/a': what BufIO costs between the same producers and the same storage. b/a is shown too: it also holds the price of the workload, since 100 producers that await each push can bring at most 100 records to an append, where (a) appends ${BATCH} at a time. For scale, the same producers awaiting a \`push\` that only keeps the record (what (b) would reach with an engine and a storage that cost nothing).`,
      'The machine is shared: rates move with its load, the ratio less so.',
    ],
    tables: [
      {
        title: 'Engine overhead: records per second, median (min–max)',
        columns: [
          'storage',
          'how',
          'records',
          'records/s',
          "b / a'",
          'b / a',
          'b / producers alone',
        ],
        rows,
      },
    ],
    measurements,
    targets,
    notes,
    seconds: (now() - started) / 1000,
  };
}
