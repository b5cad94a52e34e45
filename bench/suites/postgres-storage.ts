import pg from 'pg';
import { BufIO } from '../../lib/index.js';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { PG_BOSS, PG_BOSS_CHUNK, pgBossFetchLoop, startPgBoss } from '../baselines/pg-boss.js';
import { PostgresCycle } from '../baselines/postgres-cycle.js';
import {
  fmt,
  fmtRatio,
  fmtSummary,
  interleave,
  now,
  ratios,
  sleep,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Summary,
  type Target,
} from '../harness.js';
import { ServerCostProbe, type RowWrites } from '../probes/postgres-server-cost.js';
import { makeRecords, type BenchRecord } from '../records.js';
import { connectPostgres, POSTGRES_URL, runTag } from '../services.js';
import { throughBufIO } from './durable-storages.js';

/** Records per cycle: one INSERT of a batch, one reserve (or DELETE) of a batch. */
const BATCH = 1000;
const HAND = 'hand-written SKIP LOCKED cycle';
const DIRECT = 'PostgresStorage, driven directly';
const THROUGH_BUFIO = 'BufIO + PostgresStorage, 100 producers';
const PG_BOSS_LOOP = `${PG_BOSS}, fetch/complete loop`;

/** What one timed run did and cost. */
interface CycleRun {
  readonly records: number;
  readonly seconds: number;
  readonly walBytes: number;
  readonly cpuMs: number;
  readonly rows: RowWrites;
}

interface Prepared {
  /** Moves up to `records.length` records through, stopping at `deadline`; returns how many. */
  run(records: readonly BenchRecord[], deadline: number, probe: ServerCostProbe): Promise<number>;
  /** The tables whose row writes count. */
  readonly tables: readonly string[];
  /** Closes the contender's connections (the probe has stopped). */
  close(): Promise<void>;
  /** Drops what it created. */
  drop(admin: pg.Client): Promise<void>;
}

interface Contender {
  readonly name: string;
  prepare(application: string, id: string): Promise<Prepared>;
}

/** Every table a PostgresStorage named `table` creates, quoted. */
export const storageTables = (table: string): string[] =>
  ['', '_retry', '_leases', '_unreadable', '_meta'].map((suffix) => `"${table}${suffix}"`);

export async function dropTables(admin: pg.Client, tables: readonly string[]): Promise<void> {
  await admin.query(`DROP TABLE IF EXISTS ${tables.join(', ')}`);
}

/** A PostgresStorage of its own, its connections named `application`, ready to lease. */
async function openStorage(
  application: string,
  table: string,
): Promise<PostgresStorage<BenchRecord>> {
  const storage = new PostgresStorage<BenchRecord>({
    connectionString: POSTGRES_URL,
    table,
    poolConfig: { application_name: application, max: 4 },
  });
  await storage.migrate();
  // Opens the session and reads the scope before the timing.
  await storage.reserve(1, { now: Date.now() });
  return storage;
}

/** append a batch, reserve a batch, ack it: the storage's own loop, in batches of `BATCH`. */
async function storageCycles(
  storage: PostgresStorage<BenchRecord>,
  records: readonly BenchRecord[],
  deadline: number,
): Promise<number> {
  let moved = 0;
  for (let i = 0; i < records.length && now() < deadline; i += BATCH) {
    await storage.append(records.slice(i, i + BATCH));
    const batch = await storage.reserve(BATCH, { now: Date.now() });
    await storage.ack(batch);
    moved += batch.length;
  }
  return moved;
}

function contenders(): Contender[] {
  return [
    {
      name: HAND,
      async prepare(application, id) {
        const table = `bench_pgcycle_${id}`;
        const client = new pg.Client({
          connectionString: POSTGRES_URL,
          application_name: application,
        });
        await client.connect();
        await client.query(PostgresCycle.ddl(table));
        const cycle = new PostgresCycle(client, table);
        return {
          tables: [table],
          async run(records, deadline) {
            let moved = 0;
            for (let i = 0; i < records.length && now() < deadline; i += BATCH) {
              moved += await cycle.cycle(records.slice(i, i + BATCH));
            }
            return moved;
          },
          close: () => client.end(),
          drop: (admin) => dropTables(admin, [table]),
        };
      },
    },
    {
      name: DIRECT,
      async prepare(application, id) {
        const table = `bench_pgstore_${id}`;
        const storage = await openStorage(application, table);
        return {
          tables: storageTables(table),
          run: (records, deadline) => storageCycles(storage, records, deadline),
          close: () => storage.close(),
          drop: (admin) => dropTables(admin, storageTables(table)),
        };
      },
    },
    {
      name: THROUGH_BUFIO,
      async prepare(application, id) {
        const table = `bench_pgbufio_${id}`;
        const storage = await openStorage(application, table);
        return {
          tables: storageTables(table),
          run: async (records, deadline, probe) => {
            const result = await throughBufIO(storage, records, deadline, {
              engine: { batchSize: BATCH },
              beforeStop: () => probe.stop(),
            });
            return result.records;
          },
          close: () => storage.close(),
          drop: (admin) => dropTables(admin, storageTables(table)),
        };
      },
    },
    {
      name: PG_BOSS_LOOP,
      async prepare(application, id) {
        const schema = `bench_pgboss_${id}`;
        const { boss, queue } = await startPgBoss(POSTGRES_URL, schema, application);
        let tables: string[] = [];
        return {
          get tables() {
            return tables;
          },
          async run(records, deadline) {
            const moved = await pgBossFetchLoop(boss, queue, records, deadline, {
              batchSize: BATCH,
            });
            const admin = await connectPostgres();
            if (typeof admin !== 'string') {
              tables = await ServerCostProbe.tablesOf(admin, schema);
              await admin.end();
            }
            return moved;
          },
          close: () => boss.stop({ graceful: false, wait: true }),
          drop: async (admin) => {
            await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          },
        };
      },
    },
  ];
}

/** Waits until no backend of `application` is left: their table counters are flushed then. */
async function disconnected(admin: pg.Client, application: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const result = await admin.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [
      application,
    ]);
    if ((result.rowCount ?? 0) === 0) return;
    await sleep(20);
  }
}

interface CycleResults {
  readonly runs: Map<string, CycleRun[]>;
  readonly names: readonly string[];
  readonly notes: string[];
}

async function measureCycles(
  admin: pg.Client,
  config: RunConfig,
  tag: string,
): Promise<CycleResults> {
  const rounds = config.quick ? 2 : 3;
  const maxRecords = config.quick ? 20_000 : 100_000;
  const timeBox = config.quick ? 1500 : 5000;
  const records = makeRecords(maxRecords);
  const list = contenders();
  const runs = new Map<string, CycleRun[]>();
  const notes: string[] = [];
  let runCount = 0;
  const runOne = async (c: Contender, round: number, warmup: boolean): Promise<void> => {
    const id = `${tag}_${runCount++}`;
    const application = `bufio-bench-${id}`;
    let prepared: Prepared | undefined;
    try {
      prepared = await c.prepare(application, id);
      const probe = new ServerCostProbe(admin, application);
      await probe.start();
      const t0 = now();
      const moved = await prepared.run(
        warmup ? records.slice(0, 5 * BATCH) : records,
        now() + (warmup ? 500 : timeBox),
        probe,
      );
      const seconds = (now() - t0) / 1000;
      const cost = await probe.stop(); // BufIO's run stopped it before closing: the same figures
      await prepared.close();
      await disconnected(admin, application);
      const rows = await ServerCostProbe.rowWrites(admin, prepared.tables);
      if (warmup) return;
      runs.set(c.name, [...(runs.get(c.name) ?? []), { records: moved, seconds, ...cost, rows }]);
      config.log(
        `  postgres-storage: ${c.name}: ${moved} records, ${fmt(moved / seconds)}/s, ` +
          `${fmt(cost.walBytes / moved)} B WAL and ${fmt((cost.cpuMs * 1000) / moved)} us CPU per record (round ${round + 1}/${rounds})`,
      );
    } catch (error) {
      notes.push(`${c.name}, ${warmup ? 'warm-up' : `round ${round + 1}`}: ${String(error)}`);
      await prepared?.close().catch(() => undefined);
    } finally {
      await prepared?.drop(admin).catch((error: unknown) => {
        notes.push(`${c.name}: cleanup failed: ${String(error)}`);
      });
    }
  };
  for (const c of list) await runOne(c, -1, true);
  await interleave(list, rounds, (c, round) => runOne(c, round, false));
  return { runs, names: list.map((c) => c.name), notes };
}

// ---------------------------------------------------------------------------------------------
// At depth

interface DepthResults {
  readonly backlog: number;
  /** Per-record server CPU (us) and rate of interleaved chunks, by case. */
  readonly cases: Map<string, { cpuUs: number[]; rates: number[] }>;
  readonly fillRate: number;
  readonly notes: string[];
}

const EMPTY = 'cycle, empty buffer';
const DEEP = 'cycle, backlog waiting';
const DEEP_RETRIES = 'cycle, backlog waiting for retries';
const SHALLOW_DRAIN = 'drain of a small backlog';
const DEEP_DRAIN = 'drain of the backlog';
const SHALLOW_RETRY_DRAIN = 'drain of a small retry backlog, due';
const DEEP_RETRY_DRAIN = 'drain of the retry backlog, due';

async function measureDepth(
  admin: pg.Client,
  config: RunConfig,
  tag: string,
): Promise<DepthResults> {
  const backlog = config.quick ? 100_000 : 1_000_000;
  const chunk = config.quick ? 10_000 : 50_000;
  const rounds = config.quick ? 3 : 5;
  const notes: string[] = [];
  const cases = new Map<string, { cpuUs: number[]; rates: number[] }>();
  const records = makeRecords(chunk);
  const opened: { storage: PostgresStorage<BenchRecord>; table: string }[] = [];
  const open = async (
    name: string,
  ): Promise<{ storage: PostgresStorage<BenchRecord>; app: string }> => {
    const table = `bench_pgdepth_${tag}_${name}`;
    const app = `bufio-bench-${tag}-${name}`;
    const storage = await openStorage(app, table);
    opened.push({ storage, table });
    return { storage, app };
  };
  const measure = async (name: string, app: string, work: () => Promise<number>): Promise<void> => {
    const probe = new ServerCostProbe(admin, app);
    await probe.start();
    const t0 = now();
    const moved = await work();
    const seconds = (now() - t0) / 1000;
    const { cpuMs } = await probe.stop();
    const entry = cases.get(name) ?? { cpuUs: [], rates: [] };
    entry.cpuUs.push((cpuMs * 1000) / moved);
    entry.rates.push(moved / seconds);
    cases.set(name, entry);
  };
  const fill = async (storage: PostgresStorage<BenchRecord>, count: number): Promise<void> => {
    const burst = makeRecords(5000);
    for (let i = 0; i < count; i += burst.length) await storage.append(burst);
  };
  // Retries released an hour away are due for a reserve whose clock reads two hours later.
  const later = Date.now() + 3_600_000;
  const drain = async (
    storage: PostgresStorage<BenchRecord>,
    count: number,
    clock = Date.now,
  ): Promise<number> => {
    let moved = 0;
    while (moved < count) {
      const batch = await storage.reserve(BATCH, { now: clock() });
      if (batch.length === 0) break;
      await storage.ack(batch);
      moved += batch.length;
    }
    return moved;
  };
  let fillRate = NaN;
  try {
    const empty = await open('empty');
    const deep = await open('deep');
    const retries = await open('retries');
    const shallow = await open('shallow');
    const shallowRetries = await open('shallowretries');
    const release = async (storage: PostgresStorage<BenchRecord>): Promise<void> => {
      for (;;) {
        const batch = await storage.reserve(5000, { now: Date.now() });
        if (batch.length === 0) break;
        await storage.release(batch, later);
      }
    };
    const t0 = now();
    await fill(deep.storage, backlog);
    fillRate = backlog / ((now() - t0) / 1000);
    config.log(
      `  postgres-storage: filled ${backlog.toLocaleString('en-US')} records at ${fmt(fillRate)}/s`,
    );
    // A backlog of records released for a retry an hour away: a long outage of the worker.
    await fill(retries.storage, backlog);
    await release(retries.storage);
    config.log('  postgres-storage: released the retry backlog');
    const dueLater = (): number => later + 3_600_000;
    for (let round = 0; round < rounds; round++) {
      await measure(EMPTY, empty.app, () => storageCycles(empty.storage, records, Infinity));
      await measure(DEEP, deep.app, () => storageCycles(deep.storage, records, Infinity));
      await measure(DEEP_RETRIES, retries.app, () =>
        storageCycles(retries.storage, records, Infinity),
      );
      await fill(shallow.storage, chunk);
      await measure(SHALLOW_DRAIN, shallow.app, () => drain(shallow.storage, chunk));
      await measure(DEEP_DRAIN, deep.app, () => drain(deep.storage, chunk));
      await fill(shallowRetries.storage, chunk);
      await release(shallowRetries.storage);
      await measure(SHALLOW_RETRY_DRAIN, shallowRetries.app, () =>
        drain(shallowRetries.storage, chunk, dueLater),
      );
      await measure(DEEP_RETRY_DRAIN, retries.app, () => drain(retries.storage, chunk, dueLater));
    }
  } catch (error) {
    notes.push(`depth: ${String(error)}`);
  } finally {
    for (const { storage, table } of opened) {
      await storage.close().catch(() => undefined);
      await dropTables(admin, storageTables(table)).catch(() => undefined);
    }
  }
  return { backlog, cases, fillRate, notes };
}

// ---------------------------------------------------------------------------------------------
// Idle

interface IdleResults {
  readonly seconds: number;
  /** Statements per second sent by an idle BufIO instance (the engine as it is). */
  readonly bufioStatements: number;
  readonly bufioCpuMsPerSecond: number;
  /** Statements per second of the storage alone, as an engine that watches drives it. */
  readonly watchedStatements: number;
  readonly watchedCpuMsPerSecond: number;
  /** Whether the engine passed a listener to `watch`. */
  readonly engineWatches: boolean;
  /** ms from another instance's append to the watcher's wake-up. */
  readonly wakeUp: Summary;
  readonly notes: string[];
}

/** A pool that counts the statements sent through it. */
function countingPool(application: string): { pool: pg.Pool; count: () => number } {
  const pool = new pg.Pool({
    connectionString: POSTGRES_URL,
    application_name: application,
    max: 4,
  });
  let statements = 0;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
    statements++;
    return query(...args);
  };
  return { pool, count: () => statements };
}

async function measureIdle(admin: pg.Client, config: RunConfig, tag: string): Promise<IdleResults> {
  const seconds = config.quick ? 2 : 5;
  const notes: string[] = [];
  const table = `bench_pgidle_${tag}`;
  const cleanup: (() => Promise<unknown>)[] = [];
  const result = {
    bufioStatements: NaN,
    bufioCpuMsPerSecond: NaN,
    watchedStatements: NaN,
    watchedCpuMsPerSecond: NaN,
    engineWatches: false,
    wakeUp: summarize([]),
  };
  try {
    // BufIO, idle, with the shortest flush interval users pick.
    const bufioApp = `bufio-bench-${tag}-idle`;
    const counted = countingPool(bufioApp);
    cleanup.push(() => counted.pool.end());
    const storage = new PostgresStorage<BenchRecord>({ pool: counted.pool, table });
    await storage.migrate();
    const watch = storage.watch.bind(storage);
    storage.watch = (listener) => {
      result.engineWatches = true;
      return watch(listener);
    };
    const bufio = new BufIO<BenchRecord>({ storage, flushInterval: 10, worker: () => undefined });
    bufio.start();
    cleanup.push(() => bufio.stop());
    await sleep(1000);
    const probe = new ServerCostProbe(admin, bufioApp);
    await probe.start();
    const before = counted.count();
    await sleep(seconds * 1000);
    result.bufioStatements = (counted.count() - before) / seconds;
    result.bufioCpuMsPerSecond = (await probe.stop()).cpuMs / seconds;

    // The storage as an engine that watches drives it: wake-ups, and recover() on its interval.
    const watchedApp = `bufio-bench-${tag}-watched`;
    const watched = countingPool(watchedApp);
    cleanup.push(() => watched.pool.end());
    const alone = new PostgresStorage<BenchRecord>({ pool: watched.pool, table });
    cleanup.push(() => alone.close());
    let wakeUps = 0;
    let woken: (() => void) | undefined;
    alone.watch(() => {
      wakeUps++;
      woken?.();
    });
    await alone.reserve(1, { now: Date.now() });
    const recovery = setInterval(() => void alone.recover(), alone.recoveryInterval);
    cleanup.push(async () => clearInterval(recovery));
    await sleep(500);
    const watchedProbe = new ServerCostProbe(admin, watchedApp);
    await watchedProbe.start();
    const watchedBefore = watched.count();
    await sleep(seconds * 1000);
    // recover() once per recoveryInterval, whatever fell in the window.
    result.watchedStatements =
      (watched.count() - watchedBefore) / seconds + 1000 / alone.recoveryInterval;
    result.watchedCpuMsPerSecond = (await watchedProbe.stop()).cpuMs / seconds;
    if (wakeUps > 0) notes.push(`idle: the watcher was woken ${wakeUps} times while idle`);

    // Wake-up latency: another instance appends one record; the watcher hears of it.
    const appender = new PostgresStorage<BenchRecord>({
      connectionString: POSTGRES_URL,
      table,
      poolConfig: { max: 1 },
    });
    cleanup.push(() => appender.close());
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const heard = new Promise<void>((resolve) => (woken = resolve));
      const t0 = now();
      await appender.append(makeRecords(1, i));
      await heard;
      latencies.push(now() - t0);
    }
    result.wakeUp = summarize(latencies);
  } catch (error) {
    notes.push(`idle: ${String(error)}`);
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await dropTables(admin, storageTables(table)).catch(() => undefined);
  }
  return { seconds, ...result, notes };
}

// ---------------------------------------------------------------------------------------------

function perRecord(runs: readonly CycleRun[], value: (run: CycleRun) => number): Summary {
  return summarize(runs.map((run) => value(run) / run.records));
}

/** Suite: PostgresStorage against the hand-written cycle, at depth, and idle. */
export async function postgresStorageSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const base = {
    id: 'postgres-storage',
    title: '6. PostgresStorage at the server’s limit',
    method: [] as string[],
  };
  const admin = await connectPostgres();
  if (typeof admin === 'string') {
    return {
      ...base,
      tables: [],
      measurements: [],
      targets: [],
      notes: [`not run: ${admin}`],
      seconds: 0,
    };
  }
  const tag = runTag();
  let cycles: CycleResults;
  let depth: DepthResults;
  let idle: IdleResults;
  try {
    cycles = await measureCycles(admin, config, tag);
    depth = await measureDepth(admin, config, tag);
    idle = await measureIdle(admin, config, tag);
  } finally {
    await admin.end();
  }

  const runs = (name: string): CycleRun[] => cycles.runs.get(name) ?? [];
  const rates = (name: string): number[] => runs(name).map((r) => r.records / r.seconds);
  const measurements: Measurement[] = [];
  const cycleRows = cycles.names.map((name) => {
    const r = runs(name);
    const rate = summarize(rates(name));
    const vsHand = summarize(ratios(rates(name), rates(HAND)));
    const wal = perRecord(r, (run) => run.walBytes);
    const cpu = perRecord(r, (run) => run.cpuMs * 1000);
    const rows = perRecord(r, (run) => run.rows.inserted + run.rows.updated + run.rows.deleted);
    const hot = r.reduce((s, run) => s + run.rows.hot, 0);
    const updated = r.reduce((s, run) => s + run.rows.updated, 0);
    measurements.push({
      contender: name,
      metric: 'records per second, append to acknowledged',
      unit: 'records/s',
      summary: rate,
      ratio: { to: HAND, summary: vsHand },
      extra: { walBytesPerRecord: wal, cpuUsPerRecord: cpu, rowWritesPerRecord: rows, runs: r },
    });
    const last = r[r.length - 1];
    return [
      name,
      r.length === 0 ? 'failed' : fmtSummary(rate),
      vsHand.n > 0 ? fmtRatio(vsHand.median) : '–',
      wal.n > 0 ? fmtSummary(wal) : '–',
      cpu.n > 0 ? fmtSummary(cpu) : '–',
      rows.n > 0 ? fmt(rows.median) : '–',
      last
        ? `${fmt(last.rows.inserted / last.records)} / ${fmt(last.rows.updated / last.records)} / ${fmt(last.rows.deleted / last.records)}`
        : '–',
      updated > 0 ? `${Math.round((100 * hot) / updated)}%` : '–',
    ];
  });

  const depthCase = (name: string) => depth.cases.get(name) ?? { cpuUs: [], rates: [] };
  const depthRatio = (name: string, reference: string, pick: 'cpuUs' | 'rates'): Summary =>
    summarize(ratios(depthCase(name)[pick], depthCase(reference)[pick]));
  const references: Record<string, string> = {
    [DEEP]: EMPTY,
    [DEEP_RETRIES]: EMPTY,
    [DEEP_DRAIN]: SHALLOW_DRAIN,
    [DEEP_RETRY_DRAIN]: SHALLOW_RETRY_DRAIN,
  };
  const depthCases = [
    EMPTY,
    DEEP,
    DEEP_RETRIES,
    SHALLOW_DRAIN,
    DEEP_DRAIN,
    SHALLOW_RETRY_DRAIN,
    DEEP_RETRY_DRAIN,
  ];
  const depthRows = depthCases.map((name) => {
    const c = depthCase(name);
    const reference = references[name];
    const cpuRatio = reference ? depthRatio(name, reference, 'cpuUs') : undefined;
    measurements.push({
      contender: name,
      metric: 'server CPU per record at depth',
      unit: 'us/record',
      summary: summarize(c.cpuUs),
      ...(reference && cpuRatio ? { ratio: { to: reference, summary: cpuRatio } } : {}),
      extra: { rates: c.rates, backlog: depth.backlog },
    });
    return [
      name,
      c.rates.length > 0 ? fmtSummary(summarize(c.rates)) : 'failed',
      c.cpuUs.length > 0 ? fmtSummary(summarize(c.cpuUs)) : '–',
      cpuRatio && cpuRatio.n > 0 ? `${fmtRatio(cpuRatio.median)} (vs ${reference})` : '–',
    ];
  });

  measurements.push({
    contender: 'idle BufIO + PostgresStorage, flushInterval 10 ms',
    metric: 'statements per second while idle',
    unit: 'statements/s',
    summary: summarize([idle.bufioStatements]),
    extra: {
      cpuMsPerSecond: idle.bufioCpuMsPerSecond,
      engineWatches: idle.engineWatches,
      watchedStatements: idle.watchedStatements,
      watchedCpuMsPerSecond: idle.watchedCpuMsPerSecond,
      wakeUpMs: idle.wakeUp,
    },
  });

  const direct = runs(DIRECT);
  const vsHand = summarize(ratios(rates(DIRECT), rates(HAND)));
  const wal = perRecord(direct, (run) => run.walBytes);
  const cpu = perRecord(direct, (run) => run.cpuMs * 1000);
  const deepCpu = depthRatio(DEEP, EMPTY, 'cpuUs');
  const deepRate = depthRatio(EMPTY, DEEP, 'rates');
  const retryCpu = depthRatio(DEEP_RETRIES, EMPTY, 'cpuUs');
  const drainCpu = depthRatio(DEEP_DRAIN, SHALLOW_DRAIN, 'cpuUs');
  const retryDrainCpu = depthRatio(DEEP_RETRY_DRAIN, SHALLOW_RETRY_DRAIN, 'cpuUs');
  const measured = (s: Summary, text: string): string => (s.n > 0 ? text : 'not measured');
  const backlogText = depth.backlog.toLocaleString('en-US');
  const targets: Target[] = [
    {
      name: `${DIRECT} vs the ${HAND} (records/s)`,
      goal: '≥ 0.8×',
      measured: measured(
        vsHand,
        `${fmtRatio(vsHand.median)} (rounds ${fmt(vsHand.min)}–${fmt(vsHand.max)})`,
      ),
      met: vsHand.n > 0 ? vsHand.median >= 0.8 : null,
    },
    {
      name: `${DIRECT}: WAL per record`,
      goal: '≤ 450 B',
      measured: measured(wal, `${fmtSummary(wal)} B`),
      met: wal.n > 0 ? wal.median <= 450 : null,
    },
    {
      name: `${DIRECT}: PostgreSQL CPU per record`,
      goal: '≤ 7 us',
      measured: measured(cpu, `${fmtSummary(cpu)} us`),
      met: cpu.n > 0 ? cpu.median <= 7 : null,
    },
    {
      name: `PostgresStorage with ${backlogText} records waiting: server CPU per record vs an empty buffer`,
      goal: '≤ 1.2×',
      measured: measured(
        deepCpu,
        `${fmtRatio(deepCpu.median)} (rounds ${fmt(deepCpu.min)}–${fmt(deepCpu.max)}); records/s ${fmtRatio(1 / deepRate.median)}`,
      ),
      met: deepCpu.n > 0 ? deepCpu.median <= 1.2 : null,
    },
    {
      name: `PostgresStorage with ${backlogText} records waiting for a retry: server CPU per record vs an empty buffer`,
      goal: '≤ 1.2×',
      measured: measured(
        retryCpu,
        `${fmtRatio(retryCpu.median)} (rounds ${fmt(retryCpu.min)}–${fmt(retryCpu.max)})`,
      ),
      met: retryCpu.n > 0 ? retryCpu.median <= 1.2 : null,
    },
    {
      name: `PostgresStorage draining a ${backlogText}-record backlog: server CPU per record vs a small backlog`,
      goal: '≤ 1.2×',
      measured: measured(
        drainCpu,
        `${fmtRatio(drainCpu.median)} (rounds ${fmt(drainCpu.min)}–${fmt(drainCpu.max)})`,
      ),
      met: drainCpu.n > 0 ? drainCpu.median <= 1.2 : null,
    },
    {
      name: `PostgresStorage draining ${backlogText} due retries (after an outage): server CPU per record vs a small retry backlog`,
      goal: '≤ 1.2×',
      measured: measured(
        retryDrainCpu,
        `${fmtRatio(retryDrainCpu.median)} (rounds ${fmt(retryDrainCpu.min)}–${fmt(retryDrainCpu.max)})`,
      ),
      met: retryDrainCpu.n > 0 ? retryDrainCpu.median <= 1.2 : null,
    },
    {
      name: 'idle BufIO + PostgresStorage (flushInterval 10 ms): server round trips per second',
      goal: '≤ 2',
      measured: Number.isNaN(idle.bufioStatements)
        ? 'not measured'
        : `${fmt(idle.bufioStatements)} (the storage alone, watched: ${fmt(idle.watchedStatements)}; engine ${idle.engineWatches ? 'watches' : 'polls: it does not call watch() yet'})`,
      met: Number.isNaN(idle.bufioStatements) ? null : idle.bufioStatements <= 2,
    },
    {
      name: 'records appended by another instance: wake-up of an idle watcher',
      goal: '≤ 10 ms (the flushInterval)',
      measured:
        idle.wakeUp.n > 0
          ? `${fmt(idle.wakeUp.median)} ms (max ${fmt(idle.wakeUp.max)})`
          : 'not measured',
      met: idle.wakeUp.n > 0 ? idle.wakeUp.median <= 10 : null,
    },
  ];

  const rounds = config.quick ? 2 : 3;
  return {
    ...base,
    method: [
      `**Against the limit.** Each contender moves records of ~45 bytes of JSON through one PostgreSQL table (a fresh one per run, dropped afterwards) in batches of ${BATCH}: the ${HAND} (bench/baselines/postgres-cycle.ts: one \`INSERT … SELECT unnest($1)\` and one \`DELETE … WHERE id IN (SELECT … ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED) RETURNING\` per cycle on one connection, with JSON serialization both ways; no lease, no retries, no size); ${DIRECT} (\`append\` of ${BATCH} records, \`reserve(${BATCH})\`, \`ack\`, in a loop); ${THROUGH_BUFIO} (\`await push()\` loops into a started buffer, batchSize ${BATCH}, flushInterval 10 ms, concurrency 2; done when the worker has seen every record); and ${PG_BOSS_LOOP} (\`insert\` in chunks of ${PG_BOSS_CHUNK} while one loop \`fetch\`es ${BATCH} jobs and \`complete\`s them; pg-boss in a schema of its own, maintenance off). Up to ${(config.quick ? 20_000 : 100_000).toLocaleString('en-US')} records or ${config.quick ? 1.5 : 5} s per run, ${rounds} rounds, the order rotating (\`roundOrder\`), after one untimed warm-up run each.`,
      '**Server cost.** CPU is the user + system time of the backends serving the contender (found by `application_name`, read from `/proc/<pid>/stat`: PostgreSQL runs on this machine; `pg_stat_statements` cannot be enabled without a restart of the shared server). WAL is the `pg_current_wal_lsn()` delta over the run: the whole cluster’s, so other sessions on the shared server can only add to it. Row writes are `pg_stat_user_tables` inserts / updates / deletes on the contender’s tables per record moved (HOT: the share of updates that were heap-only).',
      `**At depth.** One storage fills ${backlogText} records (appends of 5,000); another fills as many and releases them all for a retry an hour away (a worker outage). Then, in ${config.quick ? 3 : 5} interleaved rounds of ${(config.quick ? 10_000 : 50_000).toLocaleString('en-US')} records each: the storage-driven cycle on an empty table, on the table with the backlog, and on the table with the retry backlog; and a drain (\`reserve\` + \`ack\` of ${BATCH}) of a freshly filled small backlog and of the deep one (which shrinks by a round’s worth each round), and the same for retries once they are due (a reserve whose clock has passed their retry time: the worker is back after the outage). The ratios compare server CPU per record within a round. This server runs with autovacuum off: the dead rows of a drain stay, as on a busy server between vacuums; a reserve starts its scans past the keys it took a second ago (\`ScanFloor\`), not at the head of the index where their dead entries are.`,
      `**Idle.** A started BufIO over PostgresStorage with flushInterval 10 ms and nothing to do, for ${idle.seconds} s after a 1 s settle: statements sent through its pool (counted in a wrapped \`pg.Pool\`) per second, and its backends’ CPU. The engine on this branch ${idle.engineWatches ? 'calls `watch()`' : 'does not call `watch()` yet: it polls (`reserve` and `recover` every flushInterval)'}; the storage alone, watched as the engine contract asks (\`watch\`, plus \`recover()\` every \`recoveryInterval\` = leaseTimeout / 2 = 15 s), is the other figure. Wake-up: the time from another instance’s \`append\` of one record resolving to the watcher’s listener call (LISTEN/NOTIFY on the watcher’s session connection), 20 times.`,
      'The machine is shared and was busy during this run: compare ratios within the run, not absolute numbers.',
    ],
    tables: [
      {
        title: `moving records through one table in batches of ${BATCH} (median over rounds, min–max)`,
        columns: [
          'contender',
          'records/s',
          `vs ${HAND}`,
          'WAL B/record',
          'server CPU us/record',
          'row writes/record',
          'ins / upd / del per record',
          'HOT updates',
        ],
        rows: cycleRows,
      },
      {
        title: `at depth: ${backlogText} records waiting (median over rounds, min–max)`,
        columns: ['case', 'records/s', 'server CPU us/record', 'CPU vs reference'],
        rows: depthRows,
      },
      {
        title: 'idle cost of one instance',
        columns: ['instance', 'statements/s', 'server CPU ms/s'],
        rows: [
          [
            `BufIO + PostgresStorage, flushInterval 10 ms (engine ${idle.engineWatches ? 'watches' : 'polls'})`,
            fmt(idle.bufioStatements),
            fmt(idle.bufioCpuMsPerSecond),
          ],
          [
            'PostgresStorage watched, recover() every recoveryInterval',
            fmt(idle.watchedStatements),
            fmt(idle.watchedCpuMsPerSecond),
          ],
        ],
      },
    ],
    measurements,
    targets,
    notes: [
      ...cycles.notes,
      ...depth.notes,
      ...idle.notes,
      ...(Number.isNaN(depth.fillRate)
        ? []
        : [`depth: the backlog filled at ${fmt(depth.fillRate)} records/s`]),
    ],
    seconds: (now() - started) / 1000,
  };
}
