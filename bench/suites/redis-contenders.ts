import type { Redis } from 'ioredis';
import type { Storage } from '../../lib/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import type { Batcher } from '../batcher.js';
import { BullMQQueue, type BullMQAdd } from '../baselines/bullmq-queue.js';
import { perRecordProducers, xaddPerRecord } from '../baselines/per-record.js';
import { StreamCycle } from '../baselines/redis-stream-cycle.js';
import {
  fmt,
  fmtRatio,
  fmtSummary,
  now,
  ratios,
  summarize,
  type Table,
  type Target,
} from '../harness.js';
import type { BenchRecord } from '../records.js';
import { type RedisCost, withRedisCost } from '../redis-server.js';
import { connectRedis, REDIS_URL } from '../services.js';

/** What one timed run did, and what Redis spent on it. */
export interface RedisRunResult {
  readonly records: number;
  readonly seconds: number;
  readonly server: RedisCost;
}

/** A Redis contender of the durable suite (the suite's `Contender`, for the Redis group). */
export interface RedisContender {
  readonly name: string;
  readonly group: 'RedisStorage';
  readonly baseline: boolean;
  prepare(): Promise<{
    run(records: readonly BenchRecord[], deadline: number): Promise<RedisRunResult>;
    dispose(): Promise<void>;
  }>;
}

/** How the durable suite drives BufIO, so that every storage is driven alike. */
export interface DurableDrive {
  readonly producers: number;
  /** The suite's quick mode: shorter runs. */
  readonly quick: boolean;
  throughBufIO(
    storage: Storage<BenchRecord>,
    records: readonly BenchRecord[],
    deadline: number,
  ): Promise<{ readonly records: number; readonly seconds: number }>;
}

export const XADD_PER_RECORD = 'XADD per record';
export const BUFIO_REDIS = 'BufIO + RedisStorage';
export const STREAM_CYCLE = 'hand-written stream cycle (the limit)';
const BULLMQ_VARIANTS: readonly [BullMQAdd, number][] = [
  ['add', 1],
  ['add', 50],
  ['addBulk', 1],
  ['addBulk', 50],
];

/** Records per BullMQ run at most (full and quick mode). */
const BULLMQ_RECORDS = 30_000;
const BULLMQ_RECORDS_QUICK = 3_000;

export function bullmqName(add: BullMQAdd, concurrency: number): string {
  return `BullMQ ${add}, worker concurrency ${concurrency}`;
}

async function connect(): Promise<Redis> {
  const redis = await connectRedis();
  if (typeof redis === 'string') throw new Error(redis);
  return redis;
}

/**
 * `producers` loops each await `push` of the next record until the records run out or `deadline`
 * passes; the clock stops once the batcher has processed every record pushed.
 */
export async function throughBatcher(
  batcher: Batcher<BenchRecord>,
  records: readonly BenchRecord[],
  deadline: number,
  producers: number,
): Promise<{ records: number; seconds: number }> {
  const t0 = now();
  let next = 0;
  const producer = async (): Promise<void> => {
    while (next < records.length && now() < deadline) {
      await batcher.push(records[next++]!);
    }
  };
  await Promise.all(Array.from({ length: producers }, producer));
  await batcher.drain();
  return { records: next, seconds: (now() - t0) / 1000 };
}

/**
 * The Redis group of the durable suite: the per-record baseline, BufIO over RedisStorage, the
 * hand-written cycle it is measured against, and BullMQ, the peer users pick instead; each run
 * also reports what Redis spent per record (CPU, and commands, those in scripts included).
 */
export function redisContenders(tag: string, drive: DurableDrive): RedisContender[] {
  let run = 0;
  const key = (what: string): string => `bufio-bench:${tag}:${what}:${run++}`;
  const contender = (
    name: string,
    baseline: boolean,
    open: (admin: Redis) => Promise<{
      run(
        records: readonly BenchRecord[],
        deadline: number,
      ): Promise<{ records: number; seconds: number }>;
      dispose(): Promise<void>;
    }>,
  ): RedisContender => ({
    name,
    group: 'RedisStorage',
    baseline,
    async prepare() {
      const admin = await connect();
      const opened = await open(admin);
      return {
        run: (records, deadline) => withRedisCost(admin, () => opened.run(records, deadline)),
        dispose: async () => {
          await opened.dispose();
          admin.disconnect();
        },
      };
    },
  });
  return [
    contender(XADD_PER_RECORD, true, async (admin) => {
      const redis = await connect();
      const stream = key('xadd');
      return {
        run: async (records, deadline) => {
          const t0 = now();
          const written = await perRecordProducers(
            records,
            drive.producers,
            deadline,
            xaddPerRecord(redis, stream),
          );
          return { records: written, seconds: (now() - t0) / 1000 };
        },
        dispose: async () => {
          await admin.del(stream);
          redis.disconnect();
        },
      };
    }),
    contender(BUFIO_REDIS, false, async (admin) => {
      const storage = new RedisStorage<BenchRecord>({ url: REDIS_URL, prefix: key('storage') });
      return {
        run: (records, deadline) => drive.throughBufIO(storage, records, deadline),
        dispose: async () => {
          await storage.close(); // BufIO's stop() has closed it already; closing is idempotent
          await admin.del(...Object.values(storage.keys));
        },
      };
    }),
    contender(STREAM_CYCLE, false, async (admin) => {
      const [writer, reader] = [await connect(), await connect()];
      const stream = key('cycle');
      const cycle = await StreamCycle.create<BenchRecord>(writer, reader, stream, () => undefined);
      return {
        run: async (records, deadline) => {
          const result = await throughBatcher(cycle, records, deadline, drive.producers);
          await cycle.close();
          return result;
        },
        dispose: async () => {
          await admin.del(stream);
          writer.disconnect();
          reader.disconnect();
        },
      };
    }),
    ...BULLMQ_VARIANTS.map(([add, concurrency]) =>
      contender(bullmqName(add, concurrency), false, async () => {
        const url = new URL(REDIS_URL);
        const queue = new BullMQQueue<BenchRecord>(
          {
            host: url.hostname,
            port: Number(url.port || 6379),
            password: url.password || undefined,
            // BullMQ's workers block on their reads: it refuses a retry limit per request.
            maxRetriesPerRequest: null,
          },
          key('bullmq').replace(/:/g, '-'),
          add,
          concurrency,
          `bufio-bench-bull`,
        );
        // BullMQ processes a few thousand jobs a second: a capped run keeps its drain short.
        const cap = drive.quick ? BULLMQ_RECORDS_QUICK : BULLMQ_RECORDS;
        return {
          run: (records, deadline) =>
            throughBatcher(queue, records.slice(0, cap), deadline, drive.producers),
          dispose: () => queue.close(),
        };
      }),
    ),
  ];
}

type Runs = ReadonlyMap<string, readonly { readonly records: number; readonly seconds: number }[]>;

function costs(runs: Runs, name: string): RedisCost[] {
  return (runs.get(name) ?? []).flatMap((run) => {
    const server = (run as Partial<RedisRunResult>).server;
    return server ? [server] : [];
  });
}

function rates(runs: Runs, name: string): number[] {
  return (runs.get(name) ?? []).map((run) => run.records / run.seconds);
}

/** How the Redis group is measured, for the durable suite's method. */
export const REDIS_METHOD: readonly string[] = [
  `Redis group: \`${STREAM_CYCLE}\` is the limit, written as a careful developer would (bench/baselines/redis-stream-cycle.ts): the pushes of a tick in one \`EVALSHA\` of an \`XADD\` loop, a consumer reading \`XREADGROUP COUNT 1000\` and acknowledging with \`XACK\` + \`XDEL\`; it has no retries, leases or recovery. BullMQ (bench/baselines/bullmq-queue.ts) is what users pick instead: one job per record with \`removeOnComplete\`, pushed with \`add\` (each push awaits its job) or \`addBulk\` (the pushes of a tick in one call), a BullMQ worker with concurrency 1 or 50; a BullMQ run takes at most ${BULLMQ_RECORDS.toLocaleString('en-US')} records (${BULLMQ_RECORDS_QUICK.toLocaleString('en-US')} in quick mode), as it processes a few thousand a second. The same producers drive each. Every Redis run also reads the server's \`INFO\` before and after: its CPU time and commands per record are in the second table (on a Redis other clients use at the same time, their work is counted too).`,
];

/** What Redis spent per record for each Redis contender of the durable suite (none: no table). */
export function redisServerTables(runs: Runs): Table[] {
  const names = [
    XADD_PER_RECORD,
    STREAM_CYCLE,
    BUFIO_REDIS,
    ...BULLMQ_VARIANTS.map(([add, c]) => bullmqName(add, c)),
  ].filter((name) => costs(runs, name).length > 0);
  const bufio = summarize(costs(runs, BUFIO_REDIS).map((c) => c.cpuMicros)).median;
  if (names.length === 0) return [];
  return [
    {
      title:
        'what Redis spent per record (median over rounds, min–max): CPU of the server (INFO used_cpu_sys + used_cpu_user) and commands (total_commands_processed, those run by scripts included)',
      columns: ['contender', 'Redis CPU per record (µs)', 'commands per record', 'CPU vs BufIO'],
      rows: names.map((name) => {
        const cpu = summarize(costs(runs, name).map((c) => c.cpuMicros));
        const commands = summarize(costs(runs, name).map((c) => c.commands));
        return [name, fmtSummary(cpu), fmt(commands.median), fmtRatio(cpu.median / bufio)];
      }),
    },
  ];
}

/** The scale-out issue's Redis targets, end to end (the storage-level ones are in suite redis). */
export function redisDurableTargets(runs: Runs): Target[] {
  const ratio = (a: string, b: string): Target['measured'] => {
    const r = summarize(ratios(rates(runs, a), rates(runs, b)));
    return r.n > 0 ? `${fmtRatio(r.median)} (rounds ${fmt(r.min)}–${fmt(r.max)})` : 'not measured';
  };
  const median = (a: string, b: string): number =>
    summarize(ratios(rates(runs, a), rates(runs, b))).median;
  const cpu = summarize(costs(runs, BUFIO_REDIS).map((c) => c.cpuMicros));
  const measured = (a: string, b: string): boolean =>
    rates(runs, a).length > 0 && rates(runs, b).length > 0;
  return [
    {
      name: `${BUFIO_REDIS} vs ${XADD_PER_RECORD}`,
      goal: '≥ 2×',
      measured: ratio(BUFIO_REDIS, XADD_PER_RECORD),
      met: measured(BUFIO_REDIS, XADD_PER_RECORD)
        ? median(BUFIO_REDIS, XADD_PER_RECORD) >= 2
        : null,
    },
    {
      name: `${BUFIO_REDIS} vs ${STREAM_CYCLE}, end to end (the engine included)`,
      goal: '≥ 0.9×',
      measured: ratio(BUFIO_REDIS, STREAM_CYCLE),
      met: measured(BUFIO_REDIS, STREAM_CYCLE) ? median(BUFIO_REDIS, STREAM_CYCLE) >= 0.9 : null,
    },
    {
      name: `${BUFIO_REDIS}: Redis CPU per record`,
      goal: '≤ 3 µs',
      measured: cpu.n > 0 ? `${fmtSummary(cpu)} µs` : 'not measured',
      met: cpu.n > 0 ? cpu.median <= 3 : null,
    },
  ];
}
