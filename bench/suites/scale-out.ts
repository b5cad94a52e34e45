import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import type {
  FromScaleOutWorker,
  ScaleOutConfig,
  ScaleOutReport,
  ToScaleOutWorker,
} from '../fixtures/scale-out-worker.js';
import {
  fmt,
  fmtRatio,
  fmtSummary,
  interleave,
  now,
  ratios,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Table,
  type Target,
} from '../harness.js';
import { ServerCostProbe } from '../probes/postgres-server-cost.js';
import { costPerRecord, redisCounters, type RedisCounters } from '../redis-server.js';
import { connectPostgres, connectRedis, POSTGRES_URL, REDIS_URL, runTag } from '../services.js';
import { ENGINE } from './durable-storages.js';
import { dropTables, storageTables } from './postgres-storage.js';

const PROCESS_COUNTS = [1, 2, 4] as const;
/** Producer loops per process: each process is a copy of the same application. */
const PRODUCERS = 100;
const READY_MS = 60_000;
/** A run whose processes report no progress for this long is ended and its counts checked. */
const STALL_MS = 30_000;
const STOP_MS = 60_000;
const STORAGE_NAMES = ['RedisStorage', 'PostgresStorage'] as const;
const WORKER_SCRIPT = fileURLToPath(new URL('../fixtures/scale-out-worker.js', import.meta.url));

type StorageName = (typeof STORAGE_NAMES)[number];
type Message<K extends FromScaleOutWorker['type']> = Extract<FromScaleOutWorker, { type: K }>;

/** One forked process of a run, and what it said. */
class WorkerProcess {
  /** Records its worker has processed so far, from its `progress` messages. */
  processed = 0;
  /** How it ended, once it has. */
  ended: string | undefined;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly received = new Map<string, FromScaleOutWorker>();
  private readonly listeners = new Set<() => void>();
  private stderr = '';

  constructor(config: ScaleOutConfig) {
    this.child = fork(WORKER_SCRIPT, [JSON.stringify(config)], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-2000);
    });
    this.child.on('message', (message: FromScaleOutWorker) => {
      if (message.type === 'progress') this.processed = message.processed;
      else this.received.set(message.type, message);
      this.changed();
    });
    this.child.on('error', (error) => {
      this.stderr += `\n${String(error)}`;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.ended = signal ? `was ended by ${signal}` : `exited with code ${code}`;
        this.changed();
        resolve();
      });
    });
  }

  /** Calls `listener` on every message and at the exit; returns its removal. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The message of that type, once sent; rejects when the process exits first or at the timeout. */
  next<K extends FromScaleOutWorker['type']>(type: K, timeoutMs: number): Promise<Message<K>> {
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        finish();
        reject(new Error(`a scale-out process ${why} before sending "${type}"${this.tail()}`));
      };
      const check = (): void => {
        const message = this.received.get(type);
        if (message) {
          finish();
          resolve(message as Message<K>);
        } else if (this.ended) fail(this.ended);
      };
      const timer = setTimeout(() => fail(`took over ${timeoutMs} ms`), timeoutMs);
      const off = this.onChange(check);
      const finish = (): void => {
        clearTimeout(timer);
        off();
      };
      check();
    });
  }

  send(message: ToScaleOutWorker): void {
    if (!this.ended) this.child.send(message);
  }

  /** Ends a process that is still running (a run that failed). */
  kill(): void {
    if (!this.ended) this.child.kill('SIGKILL');
  }

  tail(): string {
    return this.stderr ? `; its stderr: ${this.stderr.trim()}` : '';
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/**
 * Resolves `true` once the processes together have processed `total` records, `false` when their
 * count has not moved for `stallMs`; rejects when one of them exits.
 */
function whenProcessed(
  processes: readonly WorkerProcess[],
  total: number,
  stallMs: number,
): Promise<boolean> {
  const processed = (): number => processes.reduce((sum, p) => sum + p.processed, 0);
  return new Promise((resolve, reject) => {
    let seen = -1;
    let movedAt = now();
    const check = (): void => {
      const dead = processes.find((p) => p.ended);
      if (dead) {
        finish();
        reject(new Error(`a scale-out process ${dead.ended} during the run${dead.tail()}`));
      } else if (processed() >= total) {
        finish();
        resolve(true);
      }
    };
    const watchdog = setInterval(() => {
      const count = processed();
      if (count !== seen) [seen, movedAt] = [count, now()];
      else if (now() - movedAt > stallMs) {
        finish();
        resolve(false);
      }
    }, 250);
    const offs = processes.map((p) => p.onChange(check));
    const finish = (): void => {
      clearInterval(watchdog);
      for (const off of offs) off();
    };
    check();
  });
}

// ---------------------------------------------------------------------------------------------
// The shared buffers, and what their servers spend

/** What the server spent on the run, per record. */
interface ServerSpend {
  readonly cpuMicros: number;
  /** Redis: commands (those run by scripts included); PostgreSQL: WAL bytes. */
  readonly other: number;
}

/** One run's buffer, made before its processes start, dropped after they exit. */
interface SharedBuffer {
  /** The Redis prefix or the PostgreSQL table. */
  readonly buffer: string;
  /** The `application_name` of the processes' PostgreSQL connections. */
  readonly application: string;
  /** Starts measuring the server; the processes are connected. */
  startCost(): Promise<void>;
  stopCost(records: number): Promise<ServerSpend>;
  drop(): Promise<void>;
}

interface ScaleOutStorage {
  readonly name: StorageName;
  readonly kind: ScaleOutConfig['storage'];
  readonly url: string;
  /** What `ServerSpend.other` is, as a column title. */
  readonly otherColumn: string;
  create(id: string): Promise<SharedBuffer>;
  close(): Promise<void>;
}

function redisBuffers(admin: Redis, tag: string): ScaleOutStorage {
  return {
    name: 'RedisStorage',
    kind: 'redis',
    url: REDIS_URL,
    otherColumn: 'Redis commands/record',
    async create(id) {
      const prefix = `bufio-bench:${tag}:scale:${id}`;
      // The keys the processes' storages will use, named by a storage that sends nothing.
      const namer = new RedisStorage({ client: admin, prefix });
      const keys = Object.values(namer.keys);
      await namer.close();
      let before: RedisCounters | undefined;
      return {
        buffer: prefix,
        application: '',
        async startCost() {
          before = await redisCounters(admin);
        },
        async stopCost(records) {
          if (!before) throw new Error('stopCost before startCost');
          const cost = costPerRecord(before, await redisCounters(admin), records);
          return { cpuMicros: cost.cpuMicros, other: cost.commands };
        },
        async drop() {
          await admin.del(...keys);
        },
      };
    },
    close: async () => {
      admin.disconnect();
    },
  };
}

function postgresBuffers(admin: pg.Client): ScaleOutStorage {
  return {
    name: 'PostgresStorage',
    kind: 'postgres',
    url: POSTGRES_URL,
    otherColumn: 'WAL B/record',
    async create(id) {
      const table = `bench_scale_${id}`;
      const application = `bufio-bench-scale-${id}`;
      // The tables exist before the processes open them, as a deployment's migration makes them.
      const setup = new PostgresStorage({ connectionString: POSTGRES_URL, table });
      try {
        await setup.migrate();
      } finally {
        await setup.close();
      }
      let probe: ServerCostProbe | undefined;
      return {
        buffer: table,
        application,
        async startCost() {
          probe = new ServerCostProbe(admin, application);
          await probe.start();
        },
        async stopCost(records) {
          if (!probe) throw new Error('stopCost before startCost');
          const { cpuMs, walBytes } = await probe.stop();
          return { cpuMicros: (cpuMs * 1000) / records, other: walBytes / records };
        },
        async drop() {
          await probe?.stop(); // a run that failed may not have stopped it
          await dropTables(admin, storageTables(table));
        },
      };
    },
    close: () => admin.end(),
  };
}

// ---------------------------------------------------------------------------------------------
// One run: `processes` processes on one buffer

/** Whether each record was processed exactly once, over every process of a run. */
interface ExactCounts {
  readonly once: number;
  /** Extra processings of a record appended twice (another idempotency key, the same id). */
  readonly storedTwice: number;
  /**
   * Extra processings of one stored record (its idempotency key seen again): what a process
   * killed with a lease causes. Nobody is killed here.
   */
  readonly deliveredAgain: number;
  readonly missing: number;
  /** Records processed whose id is none of the run's. */
  readonly strangers: number;
}

interface ScaleOutRun {
  readonly round: number;
  readonly records: number;
  /** From the first push to the last record processed, over every process. */
  readonly seconds: number;
  readonly server: ServerSpend;
  /** CPU of every process of the run, per record, in µs. */
  readonly clientCpuMicros: number;
  /** Cores kept busy over the run: by its processes and its server, by the server alone. */
  readonly runCores: number;
  readonly serverCores: number;
  /** Cores busy on the whole machine over the run, other users' processes included. */
  readonly machineCores: number;
  readonly payloadBytes: number;
  /** Records per worker call, over every process. */
  readonly meanBatch: number;
  readonly counts: ExactCounts;
  /** False when the processes stopped making progress before every record was processed. */
  readonly complete: boolean;
  readonly errors: readonly string[];
}

/** CPU time of every core of the machine so far (ms), busy and in all. */
function machineCpu(): { busy: number; all: number } {
  let busy = 0;
  let all = 0;
  for (const { times } of os.cpus()) {
    const sum = times.user + times.nice + times.sys + times.idle + times.irq;
    all += sum;
    busy += sum - times.idle;
  }
  return { busy, all };
}

/** Adds up the processes' counts; asks them for the keys of any id processed more than once. */
async function countExactly(
  processes: readonly WorkerProcess[],
  reports: readonly ScaleOutReport[],
  total: number,
): Promise<ExactCounts> {
  const times = new Uint32Array(total);
  let strangers = 0;
  for (const report of reports) {
    strangers += report.strangers;
    for (let id = 0; id < total; id++) times[id]! += report.counts[id]!;
  }
  let once = 0;
  let missing = 0;
  const repeated: number[] = [];
  for (let id = 0; id < total; id++) {
    const n = times[id]!;
    if (n === 0) missing++;
    else if (n === 1) once++;
    else repeated.push(id);
  }
  for (const p of processes) p.send({ type: 'keys', ids: repeated });
  const replies = await Promise.all(processes.map((p) => p.next('keys', STOP_MS)));
  const keysOf = new Map<number, string[]>();
  for (const { keys } of replies) {
    for (const [id, list] of keys) keysOf.set(id, [...(keysOf.get(id) ?? []), ...list]);
  }
  let storedTwice = 0;
  let deliveredAgain = 0;
  for (const keys of keysOf.values()) {
    const distinct = new Set(keys).size;
    storedTwice += distinct - 1;
    deliveredAgain += keys.length - distinct;
  }
  return { once, storedTwice, deliveredAgain, missing, strangers };
}

async function runOnce(
  storage: ScaleOutStorage,
  count: number,
  total: number,
  id: string,
  round: number,
): Promise<ScaleOutRun> {
  const shared = await storage.create(id);
  const processes: WorkerProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const firstId = Math.floor((i * total) / count);
      processes.push(
        new WorkerProcess({
          storage: storage.kind,
          url: storage.url,
          buffer: shared.buffer,
          application: shared.application,
          firstId,
          count: Math.floor(((i + 1) * total) / count) - firstId,
          total,
          producers: PRODUCERS,
          engine: ENGINE,
        }),
      );
    }
    await Promise.all(processes.map((p) => p.next('ready', READY_MS)));
    await shared.startCost();
    const cpuBefore = machineCpu();
    const t0 = now();
    for (const p of processes) p.send({ type: 'go' });
    const complete = await whenProcessed(processes, total, STALL_MS);
    const window = (now() - t0) / 1000;
    const cpuAfter = machineCpu();
    const server = await shared.stopCost(total);
    for (const p of processes) p.send({ type: 'stop' });
    const reports = (await Promise.all(processes.map((p) => p.next('report', STOP_MS)))).map(
      (message) => message.report,
    );
    const counts = await countExactly(processes, reports, total);
    await Promise.all(processes.map((p) => p.exited));

    const firstPush = Math.min(...reports.map((r) => r.firstPushAt));
    const lastProcessed = Math.max(...reports.map((r) => r.lastProcessedAt).filter((t) => t > 0));
    const clientCpuMicros = reports.reduce((sum, r) => sum + r.cpuMicros, 0) / total;
    const serverSeconds = (server.cpuMicros * total) / 1e6;
    const errors = reports.flatMap((r, i) => [
      ...r.errors.map((e) => `process ${i + 1}: ${e}`),
      ...(r.drain.timedOut || r.drain.remaining > 0
        ? [`process ${i + 1}: its drain ${JSON.stringify(r.drain)}`]
        : []),
    ]);
    return {
      round,
      records: total,
      seconds: (lastProcessed - firstPush) / 1000,
      server,
      clientCpuMicros,
      runCores: ((clientCpuMicros * total) / 1e6 + serverSeconds) / window,
      serverCores: serverSeconds / window,
      machineCores:
        ((cpuAfter.busy - cpuBefore.busy) / (cpuAfter.all - cpuBefore.all)) * os.cpus().length,
      payloadBytes: reports.reduce((sum, r) => sum + r.payloadBytes, 0) / reports.length,
      meanBatch:
        reports.reduce((sum, r) => sum + r.processed, 0) /
        reports.reduce((sum, r) => sum + r.batches, 0),
      counts,
      complete,
      errors,
    };
  } finally {
    for (const p of processes) p.kill();
    await Promise.all(processes.map((p) => p.exited));
    await shared.drop();
  }
}

// ---------------------------------------------------------------------------------------------
// The suite

interface Contender {
  readonly storage: ScaleOutStorage;
  readonly processes: number;
}

const processesText = (n: number): string => `${n} process${n === 1 ? '' : 'es'}`;
const runsText = (n: number): string => `${n} run${n === 1 ? '' : 's'}`;
const label = (name: StorageName, processes: number): string =>
  `${name}, ${processesText(processes)}`;
const median = (values: readonly number[]): number => summarize(values).median;

/** Per-round ratios of each run's rate to the 1-process run of the same round. */
function ratiosToOne(runs: readonly ScaleOutRun[], one: readonly ScaleOutRun[]): number[] {
  const rate = (r: ScaleOutRun): number => r.records / r.seconds;
  const paired = runs.flatMap((r) => {
    const base = one.find((o) => o.round === r.round);
    return base ? [[rate(r), rate(base)] as const] : [];
  });
  return ratios(
    paired.map(([a]) => a),
    paired.map(([, b]) => b),
  );
}

/**
 * Where the machine rather than the design is the limit, from what the runs measured: how many
 * cores one process already keeps busy, and whether the machine's cores were busy at the largest
 * process count.
 */
function machineNote(
  name: StorageName,
  byCount: ReadonlyMap<number, readonly ScaleOutRun[]>,
): string | undefined {
  const cores = os.cpus().length;
  const measured = PROCESS_COUNTS.filter((n) => (byCount.get(n) ?? []).length > 0);
  const one = byCount.get(1) ?? [];
  const top = measured[measured.length - 1];
  if (one.length === 0 || top === undefined || top === 1) return undefined;
  const at = (n: number) => {
    const runs = byCount.get(n) ?? [];
    return {
      run: median(runs.map((r) => r.runCores)),
      server: median(runs.map((r) => r.serverCores)),
      machine: median(runs.map((r) => r.machineCores)),
      cpuPerRecord: median(runs.map((r) => r.clientCpuMicros + r.server.cpuMicros)),
      others: median(runs.map((r) => Math.max(0, r.machineCores - r.runCores))),
    };
  };
  const first = at(1);
  const last = at(top);
  const ratio = median(ratiosToOne(byCount.get(top) ?? [], one));
  const server = name === 'RedisStorage' ? 'Redis' : 'PostgreSQL';
  const saturated = measured.find((n) => at(n).machine >= 0.85 * cores);
  const parts = [
    `${name}: this machine has ${cores} cores (os.cpus()), shared by the processes, the ${server} server and the machine's other users.`,
    `One process kept ${fmt(first.run)} cores busy (${fmt(first.run - first.server)} its own, ${fmt(first.server)} the server's): at its CPU cost per record, more processes could reach at most ${fmtRatio(cores / first.run)} of its rate on ${cores} cores, with nothing else running; other users kept about ${fmt(first.others)} cores busy meanwhile, leaving ${fmt(Math.max(0, cores - first.others))}.`,
    `${processesText(top)} reached ${fmtRatio(ratio)}, keeping ${fmt(last.run)} cores busy (the whole machine: ${fmt(last.machine)} of ${cores}), at ${fmtRatio(last.cpuPerRecord / first.cpuPerRecord)} the CPU per record of one process.`,
    saturated !== undefined
      ? `The machine, not the design, is the limit from ${processesText(saturated)} on: its cores were at least 85% busy (other users’ work included); a larger machine (or the server on its own) is needed to see how the design scales beyond.`
      : `The machine kept idle CPU up to ${processesText(top)} (${fmt(last.machine)} of ${cores} cores busy): there, the rate is not limited by the number of cores but by round trips, the server's locks or the design.`,
  ];
  if (name === 'RedisStorage' && last.server >= 0.9) {
    parts.push(`Redis used ${fmt(last.server)} cores: its one command thread is saturated.`);
  }
  return parts.join(' ');
}

/** Suite "scale-out": 1, 2 and 4 processes sharing one buffer, with exact counts. */
export async function scaleOutSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 1 : 3;
  const total = config.quick ? 50_000 : 200_000;
  const tag = runTag();
  const notes: string[] = [];
  const storages: ScaleOutStorage[] = [];
  const redis = await connectRedis();
  if (typeof redis === 'string') notes.push(`RedisStorage not measured: ${redis}`);
  else storages.push(redisBuffers(redis, tag));
  const postgres = await connectPostgres();
  if (typeof postgres === 'string') notes.push(`PostgresStorage not measured: ${postgres}`);
  else storages.push(postgresBuffers(postgres));

  const contenders: Contender[] = storages.flatMap((storage) =>
    PROCESS_COUNTS.map((processes) => ({ storage, processes })),
  );
  const runs = new Map<string, ScaleOutRun[]>();
  const failures = new Map<string, number>();
  let n = 0;
  await interleave(contenders, rounds, async ({ storage, processes }, round) => {
    const key = label(storage.name, processes);
    try {
      const run = await runOnce(storage, processes, total, `${tag}_${n++}`, round);
      runs.set(key, [...(runs.get(key) ?? []), run]);
      const c = run.counts;
      config.log(
        `  scale-out: ${key}: ${fmt(run.records / run.seconds)}/s, ${fmt(run.server.cpuMicros)} µs server CPU per record, ` +
          `${fmt(run.runCores)} cores busy (machine ${fmt(run.machineCores)}), batches of ${fmt(run.meanBatch)}; once ${c.once}, ` +
          `duplicates ${c.storedTwice + c.deliveredAgain}, missing ${c.missing} (round ${round + 1}/${rounds})`,
      );
      for (const error of run.errors.slice(0, 5))
        notes.push(`${key}, round ${round + 1}: ${error}`);
      if (!run.complete) {
        notes.push(
          `${key}, round ${round + 1}: no progress for ${STALL_MS / 1000} s before every record was processed`,
        );
      }
    } catch (error) {
      failures.set(key, (failures.get(key) ?? 0) + 1);
      notes.push(`${key}, round ${round + 1}: ${String(error)}`);
    }
  });
  for (const storage of storages) await storage.close();

  const measurements: Measurement[] = [];
  const tables: Table[] = [];
  const targets: Target[] = [];
  const payload = median([...runs.values()].flat().map((r) => r.payloadBytes));
  for (const storage of storages) {
    const byCount = new Map(
      PROCESS_COUNTS.map((p) => [p, runs.get(label(storage.name, p)) ?? []] as const),
    );
    const one = byCount.get(1) ?? [];
    const rows = PROCESS_COUNTS.map((processes) => {
      const list = byCount.get(processes) ?? [];
      if (list.length === 0) return [String(processes), 'failed', ...Array<string>(9).fill('–')];
      const rate = summarize(list.map((r) => r.records / r.seconds));
      const toOne = summarize(ratiosToOne(list, one));
      const sum = (pick: (c: ExactCounts) => number): number =>
        list.reduce((s, r) => s + pick(r.counts), 0);
      measurements.push({
        contender: label(storage.name, processes),
        metric: 'records per second, first push to last record processed over every process',
        unit: 'records/s',
        summary: rate,
        ratio: { to: label(storage.name, 1), summary: toOne },
        extra: { runs: list },
      });
      return [
        String(processes),
        fmtSummary(rate),
        toOne.n > 0 ? fmtRatio(toOne.median) : '–',
        fmtSummary(summarize(list.map((r) => r.server.cpuMicros))),
        fmt(median(list.map((r) => r.server.other))),
        fmt(median(list.map((r) => r.clientCpuMicros))),
        fmt(median(list.map((r) => r.meanBatch))),
        `${fmt(median(list.map((r) => r.runCores)))} (${fmt(median(list.map((r) => r.serverCores)))}) / ${fmt(median(list.map((r) => r.machineCores)))}`,
        `${sum((c) => c.once).toLocaleString('en-US')} of ${(total * list.length).toLocaleString('en-US')}`,
        `${sum((c) => c.storedTwice)} / ${sum((c) => c.deliveredAgain)}`,
        String(sum((c) => c.missing)),
      ];
    });
    tables.push({
      title: `${storage.name}: ${total.toLocaleString('en-US')} records through one shared buffer (median over rounds, min–max; counts summed over rounds)`,
      columns: [
        'processes',
        'records/s',
        'vs 1 process',
        'server CPU µs/record',
        storage.otherColumn,
        'processes’ CPU µs/record',
        'records per worker call',
        `cores busy: run (server) / machine, of ${os.cpus().length}`,
        'processed exactly once',
        'duplicates: stored twice / delivered again',
        'missing',
      ],
      rows,
    });
    const note = machineNote(storage.name, byCount);
    if (note) notes.push(note);
  }

  for (const name of STORAGE_NAMES) {
    for (const processes of PROCESS_COUNTS) {
      const key = label(name, processes);
      const list = runs.get(key) ?? [];
      const failed = failures.get(key) ?? 0;
      const sum = (pick: (c: ExactCounts) => number): number =>
        list.reduce((s, r) => s + pick(r.counts), 0);
      const duplicates = sum((c) => c.storedTwice) + sum((c) => c.deliveredAgain);
      const missing = sum((c) => c.missing);
      const strangers = sum((c) => c.strangers);
      const stalled = list.filter((r) => !r.complete).length;
      const measuredAny = list.length > 0 || failed > 0;
      targets.push({
        name: `${key} sharing one buffer: every record processed exactly once`,
        goal: '0 duplicates, 0 missing',
        measured: measuredAny
          ? `${(total * list.length).toLocaleString('en-US')} records in ${runsText(list.length)}: ` +
            `${duplicates} duplicates (${sum((c) => c.storedTwice)} stored twice, ${sum((c) => c.deliveredAgain)} delivered again), ${missing} missing` +
            `${strangers > 0 ? `, ${strangers} records of no run` : ''}${stalled > 0 ? `, ${runsText(stalled)} stalled` : ''}${failed > 0 ? `, ${runsText(failed)} failed (see the notes)` : ''}`
          : 'not measured',
        met: measuredAny
          ? failed === 0 && stalled === 0 && duplicates === 0 && missing === 0 && strangers === 0
          : null,
      });
    }
  }

  return {
    id: 'scale-out',
    title: 'Scale-out: 1, 2 and 4 processes sharing one buffer',
    method: [
      `For RedisStorage and PostgresStorage, ${PROCESS_COUNTS.join(', ')} processes (bench/fixtures/scale-out-worker.ts, forked with an IPC channel) share one buffer: the same Redis prefix, or the same PostgreSQL table, fresh for each run and removed after it (the table is made by \`migrate()\` before the processes start). Each process runs a started BufIO over its own storage instance (batchSize ${ENGINE.batchSize}, flushInterval ${ENGINE.flushInterval} ms, concurrency ${ENGINE.concurrency}, as in the durable suite; PostgreSQL pools of 4 connections per process) and ${PRODUCERS} producers of its own, each awaiting \`push\` of its next record, until its share of the ${total.toLocaleString('en-US')} records is pushed: ${total.toLocaleString('en-US')} / n per process. A record is the benchmarks’ record (bench/records.ts) with a note, ${Number.isNaN(payload) ? 'about 100' : fmt(payload)} bytes of JSON; its id is its index in the run. Its worker takes whatever batches its process leases, its own records or another process’s.`,
      'The processes connect, open the buffer and start their engines before the clock. The rate is the run’s records over the time from the first push of any process to the last batch processed by any process (epoch clocks of the processes, `performance.timeOrigin + performance.now()`). Each process then stops its engine (a drain) and sends the parent how many times it processed each id; an id processed more than once is classified by the idempotency keys its processings carried (`WorkContext.ids`): under two keys, the record was stored twice (a duplicate append); under one key, the stored record was delivered again, which is what a process killed while holding a lease causes. Nobody is killed here, so both must be 0, as must ids never processed (missing). The target asserts these counts at every process count; there is no throughput target: this machine has 2 cores, which the processes share with the servers.',
      'Server cost over the same run: for Redis, the `INFO` delta (`used_cpu_sys` + `used_cpu_user`, `total_commands_processed`; bench/redis-server.ts), the whole server’s, so other clients of the shared Redis add to it; for PostgreSQL, the CPU of the backends serving the processes (their `application_name`, read from `/proc/<pid>/stat`) and the cluster’s WAL delta (bench/probes/postgres-server-cost.ts). The processes’ own CPU is `process.cpuUsage()` from the start signal to the stop signal; the machine’s busy cores come from `os.cpus()` over the run, everyone’s processes included.',
      `${rounds} round${rounds === 1 ? '' : 's'} (\`--quick\`: 1 round of 50,000 records; otherwise 3 of 200,000), the order of the six (storage, processes) pairs rotating and reversing from round to round (\`roundOrder\`); the ratio is to the 1-process run of the same storage in the same round. Every run starts fresh processes, so each starts with a cold JIT, as a newly deployed instance does. The machine is shared and was busy during this run: compare ratios within the run, not absolute numbers.`,
    ],
    tables,
    measurements,
    targets,
    notes,
    seconds: (now() - started) / 1000,
  };
}
