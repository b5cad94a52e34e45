import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { BufIO, UnsupportedError } from '../../lib/index.js';
import type { Storage } from '../../lib/core/storage.js';
import { FileStorage } from '../../lib/storages/file/index.js';
import { PostgresStorage } from '../../lib/storages/postgres/index.js';
import { RedisStorage } from '../../lib/storages/redis/index.js';
import { describeWith, POSTGRES_URL, REDIS_URL } from '../support/services.js';
import { removeDir, tempDir } from './file/support.js';
import { dropTables, uniqueTable } from './postgres/support.js';
import { deleteKeys, uniquePrefix } from './redis/redis-keys.js';

/** What every durable storage does with lanes: it has one, says so, and refuses any other. */
function describeSingleLane(
  name: string,
  describeIt: typeof describe | typeof describe.skip,
  open: () => Promise<Storage<number>>,
): void {
  describeIt(`${name} has a single lane`, () => {
    it('declares no optional feature', async () => {
      const storage = await open();
      expect(storage.features ?? {}).toEqual({});
      expect(storage.coalesce).toBeUndefined();
      await storage.close();
    });

    it('refuses a lane other than 0 with UnsupportedError, storing nothing of the call', async () => {
      const storage = await open();
      for (const lane of [1, 7, -1, 0.5]) {
        const error = await Promise.resolve(storage.append([1, 2], { lane })).catch(
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(UnsupportedError);
        expect(error).toMatchObject({
          code: 'BUFIO_UNSUPPORTED',
          message: `${name} has one lane (no features.priority): append got lane ${lane}`,
        });
      }
      expect(await storage.size()).toBe(0);
      await expect(Promise.resolve(storage.append([1], { lane: 0 }))).resolves.toHaveLength(1);
      await expect(Promise.resolve(storage.append([2], {}))).resolves.toHaveLength(1);
      await expect(Promise.resolve(storage.append([3]))).resolves.toHaveLength(1);
      expect(await storage.size()).toBe(3);
      await storage.close();
    });

    it('is refused by a buffer with priority lanes, at construction', async () => {
      const storage = await open();
      expect(
        () => new BufIO<number>({ storage, priority: { lanes: 2 }, worker: () => undefined }),
      ).toThrow(UnsupportedError);
      expect(
        () => new BufIO<number>({ storage, coalesce: { key: String }, worker: () => undefined }),
      ).toThrow(UnsupportedError);
      await storage.close();
    });
  });
}

const directories: string[] = [];
afterAll(async () => {
  for (const directory of directories) await removeDir(directory);
});
describeSingleLane('FileStorage', describe, async () => {
  const directory = await tempDir('lanes');
  directories.push(directory);
  return new FileStorage<number>({ directory });
});

const prefix = uniquePrefix('lanes');
let prefixes = 0;
afterAll(() => deleteKeys(prefix));
describeSingleLane('RedisStorage', await describeWith('redis'), async () => {
  return new RedisStorage<number>({ url: REDIS_URL, prefix: `${prefix}:${prefixes++}` });
});

const tables: string[] = [];
afterAll(async () => {
  if (tables.length === 0) return;
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  await dropTables(admin, tables);
  await admin.end();
});
describeSingleLane('PostgresStorage', await describeWith('postgres'), async () => {
  const table = uniqueTable('lanes');
  tables.push(table);
  return new PostgresStorage<number>({
    connectionString: POSTGRES_URL,
    table,
    createTable: true,
    poolConfig: { max: 2 },
  });
});
