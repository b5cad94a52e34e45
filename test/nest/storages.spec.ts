import { afterAll, describe, expect, it } from '@jest/globals';
import { Injectable, type ModuleMetadata } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { BufIO } from '../../lib/index.js';
import {
  BufferWorker,
  type BufferWorkerHandler,
  BufIOModule,
  BufIOService,
  InjectBuffer,
} from '../../lib/nest/index.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import { removeDir, tempDir } from '../storages/file/support.js';
import { countConnections } from '../storages/postgres/support.js';
import { describeWith, POSTGRES_URL, REDIS_URL } from '../support/services.js';
import { waitFor } from '../support/wait.js';
import { useNestApps } from '../support/nest-apps.js';

interface Ev {
  readonly id: number;
}

const RECORDS = 60;
const ids = (from: number, to: number): Ev[] =>
  Array.from({ length: to - from }, (_, i) => ({ id: from + i }));
/** Distinguishes this run's keys and tables from other runs' and other jest workers'. */
const RUN = `${process.pid}_${randomBytes(3).toString('hex')}`;

/** Where the workers put what they are given. */
@Injectable()
class Sink {
  readonly seen: number[] = [];
}

@BufferWorker('file-events')
class FileEventsWorker implements BufferWorkerHandler<Ev> {
  constructor(private readonly sink: Sink) {}
  work(records: Ev[]): void {
    this.sink.seen.push(...records.map((r) => r.id));
  }
}

@BufferWorker('redis-events')
class RedisEventsWorker implements BufferWorkerHandler<Ev> {
  constructor(private readonly sink: Sink) {}
  async work(records: Ev[]): Promise<void> {
    this.sink.seen.push(...records.map((r) => r.id));
  }
}

@BufferWorker('pg-events')
class PgEventsWorker implements BufferWorkerHandler<Ev> {
  constructor(private readonly sink: Sink) {}
  async work(records: Ev[]): Promise<void> {
    this.sink.seen.push(...records.map((r) => r.id));
  }
}

/** Pushes through the injected buffer, as application code does. */
function producerFor(name: string) {
  @Injectable()
  class Producer {
    constructor(@InjectBuffer(name) readonly buffer: BufIO<Ev>) {}
  }
  return Producer;
}

const apps = useNestApps();

/**
 * Boots an app with one buffer over a durable storage, pushes half the records through
 * `@InjectBuffer` and half through `BufIOService`, and checks they reach the `@BufferWorker`; then
 * pushes more and closes the app at once: `app.close()` must drain them and close the storage.
 */
async function bootPushAndClose(
  name: string,
  imports: ModuleMetadata['imports'],
  worker: new (sink: Sink) => BufferWorkerHandler<Ev>,
): Promise<{ storage: unknown; seen: number[] }> {
  const Producer = producerFor(name);
  const app = await apps.boot({ imports, providers: [Sink, worker, Producer] });
  const buffer = app.get(Producer).buffer;
  expect(app.get(BufIOService).get<Ev>(name)).toBe(buffer);
  const { seen } = app.get(Sink);

  for (const ev of ids(0, RECORDS / 2)) await buffer.push(ev);
  await app
    .get(BufIOService)
    .get<Ev>(name)
    .push(ids(RECORDS / 2, RECORDS));
  await waitFor(`the ${name} worker to get every record`, () => seen.length >= RECORDS);
  expect([...seen].sort((a, b) => a - b)).toEqual(ids(0, RECORDS).map((e) => e.id));

  // Pushed just before shutdown: the drain processes them before the storage closes.
  await buffer.push(ids(RECORDS, RECORDS + 25));
  const storage = buffer.storage;
  await apps.close(app);
  expect([...new Set(seen)].sort((a, b) => a - b)).toEqual(ids(0, RECORDS + 25).map((e) => e.id));
  expect(buffer.stats().state).toBe('stopped');
  return { storage, seen };
}

describe('BufIOModule with a FileStorage per buffer', () => {
  let directory = '';
  afterAll(async () => {
    if (directory) await removeDir(directory);
  });

  it('forFeature({ storage: new FileStorage() }): boots, processes, drains and closes on app.close()', async () => {
    directory = await tempDir('nest');
    const { storage } = await bootPushAndClose(
      'file-events',
      [
        BufIOModule.forFeature({
          name: 'file-events',
          storage: new FileStorage<Ev>({ directory }),
          batchSize: 10,
          flushInterval: 20,
        }),
      ],
      FileEventsWorker,
    );
    const file = storage as FileStorage<Ev>;
    await expect(file.append([{ id: -1 }])).rejects.toThrow('is closed');
    // Closed for good: its lock is released, and it left nothing behind.
    const reopened = await FileStorage.open<Ev>({ directory });
    expect(reopened.size()).toBe(0);
    await reopened.close();
  });
});

const describeRedis = await describeWith('redis');
describeRedis('BufIOModule with a RedisStorage per buffer', () => {
  // A hash tag, so that the storage keeps the prefix as given (and the cleanup below finds it).
  const prefix = `bufio-test:nest:{${RUN}}`;
  afterAll(async () => {
    const client = new Redis(REDIS_URL);
    const keys = await client.keys(`${prefix}:*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  it('forFeatureAsync with ConfigService: boots, processes, drains and closes on app.close()', async () => {
    const { storage } = await bootPushAndClose(
      'redis-events',
      [
        BufIOModule.forFeatureAsync({
          name: 'redis-events',
          imports: [
            ConfigModule.forRoot({
              ignoreEnvFile: true,
              load: [() => ({ REDIS_URL, EVENTS_PREFIX: prefix })],
            }),
          ],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            storage: new RedisStorage<Ev>({
              url: config.get<string>('REDIS_URL'),
              prefix: config.get<string>('EVENTS_PREFIX'),
            }),
            batchSize: 10,
            flushInterval: 20,
          }),
        }),
      ],
      RedisEventsWorker,
    );
    const redis = storage as RedisStorage<Ev>;
    // The client the storage created from the URL has quit.
    expect(redis.client.status).toBe('end');
    await expect(redis.append([{ id: -1 }])).rejects.toThrow('is closed');
    const client = new Redis(REDIS_URL);
    try {
      expect(await client.xlen(redis.keys.stream)).toBe(0);
    } finally {
      client.disconnect();
    }
  });
});

const describePostgres = await describeWith('postgres');
describePostgres('BufIOModule with a PostgresStorage per buffer', () => {
  const table = `bufio_nest_${RUN}`;
  const application = `bufio-nest-${RUN}`;
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  afterAll(async () => {
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.end();
  });

  it('forFeatureAsync with ConfigService: boots, processes, drains and closes on app.close()', async () => {
    const { storage } = await bootPushAndClose(
      'pg-events',
      [
        BufIOModule.forFeatureAsync({
          name: 'pg-events',
          imports: [
            ConfigModule.forRoot({
              ignoreEnvFile: true,
              load: [() => ({ DATABASE_URL: POSTGRES_URL, EVENTS_TABLE: table })],
            }),
          ],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            storage: new PostgresStorage<Ev>({
              connectionString: config.get<string>('DATABASE_URL'),
              table: config.get<string>('EVENTS_TABLE'),
              createTable: true,
              poolConfig: { application_name: application },
            }),
            batchSize: 10,
            flushInterval: 20,
          }),
        }),
      ],
      PgEventsWorker,
    );
    await expect((storage as PostgresStorage<Ev>).append([{ id: -1 }])).rejects.toThrow(
      'is closed',
    );
    // The pool the storage created has ended: no connection of it is left on the server.
    await waitFor(
      'the pool to disconnect',
      async () => (await countConnections(admin, application)) === 0,
    );
    const rows = await admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${table}"`);
    expect(rows.rows[0]?.n).toBe('0');
  });
});
