import type { Redis } from 'ioredis';

/** What a Redis server has done so far: CPU time and commands, from `INFO`. */
export interface RedisCounters {
  /** `used_cpu_sys` + `used_cpu_user`: every thread of the server, in seconds. */
  readonly cpuSeconds: number;
  /** `total_commands_processed`: commands from clients and the commands their scripts ran. */
  readonly commands: number;
}

/** What a Redis server spent on each record of a run. */
export interface RedisCost {
  /** Server CPU per record, in µs. */
  readonly cpuMicros: number;
  /** Commands per record, counting those run inside scripts. */
  readonly commands: number;
}

/** Reads the counters, over a connection of the caller's. */
export async function redisCounters(redis: Redis): Promise<RedisCounters> {
  const info = await redis.info();
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return {
    cpuSeconds: field('used_cpu_sys') + field('used_cpu_user'),
    commands: field('total_commands_processed'),
  };
}

/**
 * The cost per record between two readings. The `INFO` of the first reading is counted by the
 * second: one command is taken off. On a server that other clients use at the same time, their
 * work is counted too: measure on a server of the benchmark's own.
 */
export function costPerRecord(
  before: RedisCounters,
  after: RedisCounters,
  records: number,
): RedisCost {
  return {
    cpuMicros: ((after.cpuSeconds - before.cpuSeconds) * 1e6) / records,
    commands: (after.commands - before.commands - 1) / records,
  };
}

/** Runs `work` (which returns how many records it handled) and measures the server meanwhile. */
export async function withRedisCost<R extends { readonly records: number }>(
  redis: Redis,
  work: () => Promise<R>,
): Promise<R & { readonly server: RedisCost }> {
  const before = await redisCounters(redis);
  const result = await work();
  const after = await redisCounters(redis);
  return { ...result, server: costPerRecord(before, after, result.records) };
}
