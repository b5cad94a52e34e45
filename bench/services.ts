import pg from 'pg';
import { Redis } from 'ioredis';

/** Where the benchmarks find the services; the same variables as the tests. */
export const POSTGRES_URL =
  process.env.BUFIO_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.BUFIO_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A connected client, or the reason there is none (the suite then reports it, not a crash). */
export async function connectPostgres(): Promise<pg.Client | string> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => {}); // a dropped connection fails the next query, which is reported
  try {
    await client.connect();
    return client;
  } catch (error) {
    await client.end().catch(() => {});
    return `PostgreSQL not reachable at ${POSTGRES_URL}: ${String(error)}`;
  }
}

export async function connectRedis(): Promise<Redis | string> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 3000,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    return `Redis not reachable at ${REDIS_URL}: ${String(error)}`;
  }
}

/** A name no other run (or parallel test) uses: tables, key prefixes, directories. */
export function runTag(): string {
  return `${process.pid}_${Date.now().toString(36)}`;
}

/**
 * Writes dirty pages out before a timed run, so that no run pays for the one before it. Needs a
 * superuser (the local test server's `postgres`); without the right, runs go on without it.
 */
export async function checkpoint(client: pg.Client): Promise<void> {
  await client.query('CHECKPOINT').catch(() => {});
}
