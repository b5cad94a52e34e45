import { Redis } from 'ioredis';
import { BufIO } from '../../lib/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import type { Batcher } from '../batcher.js';
import { perRecordProducers, xaddPerRecord } from '../baselines/per-record.js';
import { StreamCycle } from '../baselines/redis-stream-cycle.js';
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
  type Table,
  type Target,
} from '../harness.js';
import { makeRecords, type BenchRecord } from '../records.js';
import { type RedisCost, redisCounters, withRedisCost } from '../redis-server.js';
import { connectRedis, REDIS_URL, runTag } from '../services.js';
import { throughBatcher } from './redis-contenders.js';

const PRODUCERS = 100;
const BATCH = 1000;
const HAND = 'hand-written stream cycle (the limit)';
const DIRECT = 'RedisStorage, driven directly';
const NAIVE = 'XADD per record';

interface Run {
  readonly records: number;
  readonly seconds: number;
  readonly server: RedisCost;
}

async function connect(): Promise<Redis> {
  const redis = await connectRedis();
  if (typeof redis === 'string') throw new Error(redis);
  return redis;
}

/**
 * RedisStorage behind the face the hand-written cycle shows: pushes are `append` of one record
 * (the storage gathers a tick's appends in one call, as the cycle does by hand); one consumer
 * reserves up to 1000 records, hands them to the worker and acks them, and when it finds
 * nothing waits for `watch()` (or 50 ms, the cycle's `BLOCK`).
 */
class StorageCycle implements Batcher<BenchRecord> {
  private pushed = 0;
  private processed = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly waiters: (() => void)[] = [];
  private readonly consuming: Promise<void>;
  private readonly unwatch: () => void;

  constructor(private readonly storage: RedisStorage<BenchRecord>) {
    this.unwatch = storage.watch(() => this.wake?.());
    this.consuming = this.consume();
  }

  push(record: BenchRecord): Promise<void> {
    return this.storage.append([record]).then(() => void this.pushed++);
  }

  drain(): Promise<void> {
    if (this.processed >= this.pushed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drain();
    this.stopped = true;
    this.wake?.();
    await this.consuming;
    this.unwatch();
  }

  private async consume(): Promise<void> {
    while (!this.stopped) {
      const batch = await this.storage.reserve(BATCH, { now: Date.now() });
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        continue;
      }
      await this.storage.ack(batch);
      this.processed += batch.length;
      if (this.processed >= this.pushed) for (const wake of this.waiters.splice(0)) wake();
    }
  }
}

interface CycleContender {
  readonly name: string;
  run(records: readonly BenchRecord[], deadline: number): Promise<Run>;
}

function cycleContenders(tag: string): CycleContender[] {
  let run = 0;
  return [
    {
      name: NAIVE,
      async run(records, deadline) {
        const [admin, redis] = [await connect(), await connect()];
        const key = `bufio-bench:${tag}:naive:${run++}`;
        try {
          return await withRedisCost(admin, async () => {
            const t0 = now();
            const written = await perRecordProducers(
              records,
              PRODUCERS,
              deadline,
              xaddPerRecord(redis, key),
            );
            return { records: written, seconds: (now() - t0) / 1000 };
          });
        } finally {
          await admin.del(key);
          admin.disconnect();
          redis.disconnect();
        }
      },
    },
    {
      name: HAND,
      async run(records, deadline) {
        const [admin, writer, reader] = [await connect(), await connect(), await connect()];
        const key = `bufio-bench:${tag}:cycle:${run++}`;
        try {
          const cycle = await StreamCycle.create<BenchRecord>(writer, reader, key, () => undefined);
          return await withRedisCost(admin, async () => {
            const result = await throughBatcher(cycle, records, deadline, PRODUCERS);
            await cycle.close();
            return result;
          });
        } finally {
          await admin.del(key);
          for (const client of [admin, writer, reader]) client.disconnect();
        }
      },
    },
    {
      name: DIRECT,
      async run(records, deadline) {
        const admin = await connect();
        const storage = new RedisStorage<BenchRecord>({
          url: REDIS_URL,
          prefix: `bufio-bench:${tag}:direct:${run++}`,
        });
        try {
          await storage.size(); // connected before the clock starts, as the cycle's clients are
          const cycle = new StorageCycle(storage);
          return await withRedisCost(admin, async () => {
            const result = await throughBatcher(cycle, records, deadline, PRODUCERS);
            await cycle.close();
            return result;
          });
        } finally {
          await storage.close();
          await admin.del(...Object.values(storage.keys));
          admin.disconnect();
        }
      },
    },
  ];
}

/** 12.2: RedisStorage against the hand-written cycle, driven alike, and what Redis spends. */
async function measureCycle(
  config: RunConfig,
  tag: string,
): Promise<{ table: Table; targets: Target[]; measurements: Measurement[]; notes: string[] }> {
  const rounds = config.quick ? 2 : 3;
  const records = makeRecords(config.quick ? 50_000 : 200_000);
  const timeBox = config.quick ? 1000 : 3000;
  const contenders = cycleContenders(tag);
  const runs = new Map<string, Run[]>();
  const notes: string[] = [];
  for (const c of contenders) await c.run(records.slice(0, 10_000), now() + 300); // warm-up
  await interleave(contenders, rounds, async (c, round) => {
    try {
      const result = await c.run(records, now() + timeBox);
      runs.set(c.name, [...(runs.get(c.name) ?? []), result]);
      config.log(
        `  redis: ${c.name}: ${fmt(result.records / result.seconds)}/s, ${fmt(result.server.cpuMicros)} µs and ${fmt(result.server.commands)} commands per record (round ${round + 1}/${rounds})`,
      );
    } catch (error) {
      notes.push(`${c.name}, round ${round + 1}: ${String(error)}`);
    }
  });
  const rates = (name: string): number[] =>
    (runs.get(name) ?? []).map((r) => r.records / r.seconds);
  const cpu = (name: string) => summarize((runs.get(name) ?? []).map((r) => r.server.cpuMicros));
  const measurements: Measurement[] = contenders.map((c) => ({
    contender: c.name,
    metric: 'records per second, append to acknowledged (storage level)',
    unit: 'records/s',
    summary: summarize(rates(c.name)),
    ratio: { to: HAND, summary: summarize(ratios(rates(c.name), rates(HAND))) },
    extra: { runs: runs.get(c.name) ?? [] },
  }));
  const table: Table = {
    title: `append to acknowledged, ${PRODUCERS} producers and one consumer (batches of ${BATCH}); what Redis spent per record`,
    columns: [
      'contender',
      'records/s',
      'vs the hand-written cycle',
      'Redis CPU per record (µs)',
      'commands per record',
    ],
    rows: contenders.map((c) => {
      const ratio = summarize(ratios(rates(c.name), rates(HAND)));
      const commands = summarize((runs.get(c.name) ?? []).map((r) => r.server.commands));
      return [
        c.name,
        fmtSummary(summarize(rates(c.name))),
        ratio.n > 0 ? fmtRatio(ratio.median) : '–',
        fmtSummary(cpu(c.name)),
        fmt(commands.median),
      ];
    }),
  };
  const toHand = summarize(ratios(rates(DIRECT), rates(HAND)));
  const toNaive = summarize(ratios(rates(DIRECT), rates(NAIVE)));
  const directCpu = cpu(DIRECT);
  const targets: Target[] = [
    {
      name: `${DIRECT} vs ${HAND}`,
      goal: '≥ 0.9×',
      measured:
        toHand.n > 0
          ? `${fmtRatio(toHand.median)} (rounds ${fmt(toHand.min)}–${fmt(toHand.max)})`
          : 'not measured',
      met: toHand.n > 0 ? toHand.median >= 0.9 : null,
    },
    {
      name: `${DIRECT} vs ${NAIVE}`,
      goal: '≥ 2×',
      measured: toNaive.n > 0 ? `${fmtRatio(toNaive.median)}` : 'not measured',
      met: toNaive.n > 0 ? toNaive.median >= 2 : null,
    },
    {
      name: `${DIRECT}: Redis CPU per record`,
      goal: '≤ 3 µs',
      measured: directCpu.n > 0 ? `${fmtSummary(directCpu)} µs` : 'not measured',
      met: directCpu.n > 0 ? directCpu.median <= 3 : null,
    },
  ];
  return { table, targets, measurements, notes };
}

// ---------------------------------------------------------------------------------------------
// Depth: the same loops with a million records waiting

/** Appends `count` records in calls of 1000, ten calls in flight. */
async function fill(storage: RedisStorage<BenchRecord>, count: number): Promise<void> {
  const chunk = makeRecords(BATCH);
  for (let done = 0; done < count; done += 10 * BATCH) {
    const calls = Math.min(10, Math.ceil((count - done) / BATCH));
    await Promise.all(Array.from({ length: calls }, () => storage.append(chunk)));
  }
}

/** Reserves and releases (visible at once) until `count` records went round: a failing worker. */
async function failRound(storage: RedisStorage<BenchRecord>, count: number): Promise<number> {
  let done = 0;
  while (done < count) {
    const batch = await storage.reserve(BATCH, { now: Date.now() });
    if (batch.length === 0) break;
    await storage.release(batch, 0);
    done += batch.length;
  }
  return done;
}

/** Append and consume `count` records behind whatever waits (oldest first). */
async function freshRound(storage: RedisStorage<BenchRecord>, count: number): Promise<number> {
  const chunk = makeRecords(BATCH);
  let acked = 0;
  for (let appended = 0; appended < count; appended += BATCH) {
    await storage.append(chunk);
    const batch = await storage.reserve(BATCH, { now: Date.now() });
    await storage.ack(batch);
    acked += batch.length;
  }
  return acked;
}

interface DepthPoint {
  readonly loop: string;
  readonly waiting: number;
  readonly microsPerRecord: number;
  readonly server: RedisCost;
}

/**
 * 13.5: per-record cost with an empty buffer and with `depth` records waiting, for the two loops
 * an outage runs: fresh records appended and consumed behind a backlog, and a failing worker
 * that releases every batch for a retry (every record goes through `retry`, `due` and `lease`).
 */
async function measureDepth(config: RunConfig, tag: string): Promise<DepthPoint[]> {
  const depth = config.quick ? 100_000 : 1_000_000;
  const perRun = config.quick ? 10_000 : 25_000;
  const admin = await connect();
  const points: DepthPoint[] = [];
  const open = (what: string): RedisStorage<BenchRecord> =>
    new RedisStorage<BenchRecord>({ url: REDIS_URL, prefix: `bufio-bench:${tag}:${what}` });
  const storages: RedisStorage<BenchRecord>[] = [];
  /**
   * Two storages, one shallow and one deep, measured in the order shallow, deep, deep, shallow,
   * so that a drift of the machine's speed weighs on both alike; each point sums its two runs.
   */
  const compare = async (
    loop: string,
    [shallow, deep]: readonly [number, number],
    prepare: (storage: RedisStorage<BenchRecord>, waiting: number) => Promise<void>,
    work: (storage: RedisStorage<BenchRecord>) => Promise<number>,
  ): Promise<void> => {
    const sides = [shallow, deep].map((waiting) => ({
      waiting,
      storage: open(`${loop.split(' ')[0] ?? 'loop'}-${waiting}`),
      records: 0,
      ms: 0,
      cpuSeconds: 0,
      commands: 0,
    }));
    for (const side of sides) {
      storages.push(side.storage);
      await prepare(side.storage, side.waiting);
    }
    for (const side of [sides[0], sides[1], sides[1], sides[0]] as typeof sides) {
      const before = await redisCounters(admin);
      const t0 = now();
      side.records += await work(side.storage);
      side.ms += now() - t0;
      const after = await redisCounters(admin);
      side.cpuSeconds += after.cpuSeconds - before.cpuSeconds;
      side.commands += after.commands - before.commands - 1;
    }
    for (const side of sides) {
      points.push({
        loop,
        waiting: side.waiting,
        microsPerRecord: (side.ms * 1000) / side.records,
        server: {
          cpuMicros: (side.cpuSeconds * 1e6) / side.records,
          commands: side.commands / side.records,
        },
      });
      config.log(
        `  redis depth: ${loop}, ${side.waiting.toLocaleString('en-US')} waiting: ${fmt((side.cpuSeconds * 1e6) / side.records)} µs of Redis CPU per record`,
      );
    }
  };
  try {
    await compare(
      'fresh records behind a backlog',
      [0, depth],
      async (storage, waiting) => {
        await fill(storage, waiting);
        await freshRound(storage, 5 * BATCH); // warm
      },
      (storage) => freshRound(storage, perRun),
    );
    await compare(
      'a failing worker: every batch released',
      [10_000, depth],
      async (storage, waiting) => {
        await fill(storage, waiting);
        await failRound(storage, waiting);
      },
      (storage) => failRound(storage, perRun),
    );
  } finally {
    for (const storage of storages) {
      await storage.close();
      await admin.del(...Object.values(storage.keys));
    }
    admin.disconnect();
  }
  return points;
}

// ---------------------------------------------------------------------------------------------
// Idle cost

/** What an instance's clients sent: commands, and writes to their sockets (round trips). */
interface Sent {
  commands: number;
  writes: number;
}

/**
 * A client that counts what it and its duplicates send: every command (those of a pipeline or a
 * transaction each), and every write to a socket, which carries a command, a pipeline or a
 * transaction: one round trip.
 */
function countingClient(url: string): { client: Redis; sent: Sent } {
  const sent: Sent = { commands: 0, writes: 0 };
  const instrument = (client: Redis): Redis => {
    const send = client.sendCommand.bind(client);
    client.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
      sent.commands++;
      return send(...args);
    }) as Redis['sendCommand'];
    client.on('connect', () => {
      const socket = client.stream;
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        sent.writes++;
        return write(...args);
      }) as typeof socket.write;
    });
    const duplicate = client.duplicate.bind(client);
    client.duplicate = ((...args: Parameters<Redis['duplicate']>) =>
      instrument(duplicate(...args) as Redis)) as Redis['duplicate'];
    return client;
  };
  return { client: instrument(new Redis(url, { maxRetriesPerRequest: 0 })), sent };
}

interface IdlePoint {
  readonly what: string;
  readonly commandsPerSecond: number;
  readonly roundTripsPerSecond: number;
}

/**
 * 12.5: commands an idle instance sends per second (every command of a pipeline counted, so at
 * least its round trips): the storage's part (watch, and `recover()` every `recoveryInterval`, as
 * the engine calls them), and a started BufIO over it at two flush intervals.
 */
async function measureIdle(config: RunConfig, tag: string): Promise<IdlePoint[]> {
  const seconds = config.quick ? 3 : 10;
  const points: IdlePoint[] = [];
  const idleFor = async (what: string, setUp: (client: Redis) => Promise<() => Promise<void>>) => {
    const { client, sent } = countingClient(REDIS_URL);
    const tearDown = await setUp(client);
    await sleep(500); // started: its first calls are not idle cost
    const before = { ...sent };
    await sleep(seconds * 1000);
    const point = {
      what,
      commandsPerSecond: (sent.commands - before.commands) / seconds,
      roundTripsPerSecond: (sent.writes - before.writes) / seconds,
    };
    await tearDown();
    client.disconnect();
    points.push(point);
    config.log(
      `  redis idle: ${what}: ${fmt(point.roundTripsPerSecond)} round trips/s, ${fmt(point.commandsPerSecond)} commands/s`,
    );
  };
  let n = 0;
  const prefix = (): string => `bufio-bench:${tag}:idle:${n++}`;
  await idleFor('RedisStorage: watch() + recover() every recoveryInterval', async (client) => {
    const storage = new RedisStorage<BenchRecord>({ client, prefix: prefix() });
    await storage.recover();
    const stop = storage.watch(() => undefined);
    const timer = setInterval(() => void storage.recover(), storage.recoveryInterval);
    return async () => {
      clearInterval(timer);
      stop();
      await storage.close();
      await client.del(...Object.values(storage.keys));
    };
  });
  for (const flushInterval of [10, 1000]) {
    await idleFor(`BufIO + RedisStorage, flushInterval ${flushInterval} ms`, async (client) => {
      const storage = new RedisStorage<BenchRecord>({ client, prefix: prefix() });
      const bufio = new BufIO<BenchRecord>({ storage, flushInterval, worker: () => undefined });
      bufio.on('error', () => undefined);
      bufio.start();
      return async () => {
        await bufio.stop();
        await client.del(...Object.values(storage.keys));
      };
    });
  }
  return points;
}

/** Suite "redis": RedisStorage against the hand-written cycle, at depth, and idle. */
export async function redisSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const redis = await connectRedis();
  if (typeof redis === 'string') {
    return {
      id: 'redis',
      title: 'Redis: the storage against the hand-written cycle, at depth, and idle',
      method: [],
      tables: [],
      measurements: [],
      targets: [],
      notes: [`not measured: ${redis}`],
      seconds: 0,
    };
  }
  redis.disconnect();
  const tag = runTag();
  const cycle = await measureCycle(config, tag);
  const depth = await measureDepth(config, tag);
  const idle = await measureIdle(config, tag);

  const depthRows = depth.map((p) => {
    const base = depth.find((q) => q.loop === p.loop) as DepthPoint;
    return [
      p.loop,
      p.waiting.toLocaleString('en-US'),
      fmt(p.microsPerRecord),
      fmt(p.server.cpuMicros),
      fmt(p.server.commands),
      fmtRatio(p.server.cpuMicros / base.server.cpuMicros),
    ];
  });
  const depthTargets: Target[] = [...new Set(depth.map((p) => p.loop))].map((loop) => {
    const [shallow, deep] = depth.filter((p) => p.loop === loop) as [DepthPoint, DepthPoint];
    const ratio = deep.server.cpuMicros / shallow.server.cpuMicros;
    return {
      name: `RedisStorage, ${loop}: Redis CPU per record with ${deep.waiting.toLocaleString('en-US')} waiting vs ${shallow.waiting.toLocaleString('en-US')}`,
      goal: '≤ 1.2×',
      measured: `${fmtRatio(ratio)} (${fmt(deep.server.cpuMicros)} vs ${fmt(shallow.server.cpuMicros)} µs; wall ${fmtRatio(deep.microsPerRecord / shallow.microsPerRecord)})`,
      met: ratio <= 1.2,
    };
  });
  const busiest = idle.filter((p) => p.what.startsWith('BufIO'));
  const storageIdle = idle.find((p) => p.what.startsWith('RedisStorage'));
  const idleTargets: Target[] = [
    {
      name: 'an idle BufIO + RedisStorage instance: round trips per second, at any flushInterval',
      goal: '≤ 2',
      measured: busiest
        .map(
          (p) => `${fmt(p.roundTripsPerSecond)} (${p.what.replace('BufIO + RedisStorage, ', '')})`,
        )
        .join('; '),
      met: busiest.every((p) => p.roundTripsPerSecond <= 2),
    },
    {
      name: "an idle RedisStorage (the storage's part: watch and recovery): round trips per second",
      goal: '≤ 2',
      measured: storageIdle ? fmt(storageIdle.roundTripsPerSecond) : 'not measured',
      met: storageIdle ? storageIdle.roundTripsPerSecond <= 2 : null,
    },
  ];

  return {
    id: 'redis',
    title: 'Redis: the storage against the hand-written cycle, at depth, and idle',
    method: [
      `Storage level: ${PRODUCERS} producers each await the write of one record at a time; one consumer takes up to ${BATCH} records, and acknowledges them. \`${HAND}\` is bench/baselines/redis-stream-cycle.ts (\`EVALSHA\` of an \`XADD\` loop per tick, \`XREADGROUP COUNT ${BATCH}\`, \`XACK\` + \`XDEL\`); \`${DIRECT}\` is \`append\` / \`reserve\` / \`ack\` of RedisStorage without the engine (the engine's own overhead is measured in the durable suite, end to end); \`${NAIVE}\` only writes. Each run reads the server's \`INFO\` before and after: CPU (\`used_cpu_sys\` + \`used_cpu_user\`) and \`total_commands_processed\` (commands run by scripts included) per record. On a Redis that other clients use meanwhile, their work is counted too.`,
      `Depth: the same storage with an empty buffer and with ${config.quick ? '100,000' : '1,000,000'} records waiting (for the failing worker, against 10,000), for the two loops of an outage: fresh records appended and consumed behind the backlog, and a failing worker that releases every batch (visible again at once), so that every record goes through the retry keys. Cost per record: Redis CPU (the target) and wall time.`,
      `Idle: what an idle instance sends per second, counted in its ioredis clients (the connection \`watch()\` duplicates included): round trips (writes to the socket: a command, a pipeline or a transaction each) and commands (every command of a pipeline or a transaction), over ${config.quick ? 3 : 10} s after a 0.5 s start. The storage's part is \`watch()\` plus \`recover()\` every \`recoveryInterval\`, which is what an engine that uses \`watch\` calls; the BufIO rows are the engine as built in this run.`,
    ],
    tables: [
      cycle.table,
      {
        title:
          'cost per record with records waiting (two runs each, in the order shallow, deep, deep, shallow)',
        columns: [
          'loop',
          'records waiting',
          'wall µs per record',
          'Redis CPU µs per record',
          'commands per record',
          'CPU vs the shallow run',
        ],
        rows: depthRows,
      },
      {
        title: 'an idle instance: what its clients send per second',
        columns: ['instance', 'round trips/s', 'commands/s'],
        rows: idle.map((p) => [p.what, fmt(p.roundTripsPerSecond), fmt(p.commandsPerSecond)]),
      },
    ],
    measurements: cycle.measurements,
    targets: [...cycle.targets, ...depthTargets, ...idleTargets],
    notes: cycle.notes,
    seconds: (now() - started) / 1000,
  };
}
