import os from 'node:os';
import { connectPostgres, connectRedis } from './services.js';

/** What the numbers were measured on. */
export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly v8: string;
  readonly postgres: string;
  readonly redis: string;
  readonly loadAverage: string;
}

async function postgresInfo(): Promise<string> {
  const client = await connectPostgres();
  if (typeof client === 'string') return client;
  try {
    const { rows } = await client.query<{ version: string; sync: string; fsync: string }>(
      `SELECT current_setting('server_version') AS version,
              current_setting('synchronous_commit') AS sync,
              current_setting('fsync') AS fsync`,
    );
    const row = rows[0];
    return `${row?.version ?? '?'} (synchronous_commit=${row?.sync ?? '?'}, fsync=${row?.fsync ?? '?'})`;
  } finally {
    await client.end();
  }
}

async function redisInfo(): Promise<string> {
  const redis = await connectRedis();
  if (typeof redis === 'string') return redis;
  try {
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    const aof = (await redis.config('GET', 'appendonly')) as string[];
    return `${version} (appendonly=${aof[1] ?? '?'})`;
  } finally {
    redis.disconnect();
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    postgres: await postgresInfo(),
    redis: await redisInfo(),
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / '),
  };
}
