import { afterAll, beforeAll, describe, it } from '@jest/globals';
import pg from 'pg';
import type { Storage } from '../../../lib/index.js';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { type ConformanceRecord, describeStorageConformance } from '../../../lib/testing/index.js';
import { describeWith } from '../../support/services.js';
import { adminPool, dropTables, POSTGRES_URL, uniqueTable } from './support.js';

const describePostgres = await describeWith('postgres');

interface Opened {
  readonly table: string;
  readonly pool: pg.Pool;
}

describePostgres('PostgresStorage (conformance)', () => {
  let admin: pg.Pool;
  const opened = new Map<Storage<ConformanceRecord>, Opened>();
  const tables = new Set<string>();

  beforeAll(() => {
    admin = adminPool();
  });

  afterAll(async () => {
    await dropTables(admin, tables);
    await admin.end();
  });

  // Each storage gets a pool of its own, so that "crashing" one can end its connections: like a
  // killed process, it then neither renews its leases nor frees them.
  const open = async (table: string): Promise<Storage<ConformanceRecord>> => {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    const storage = new PostgresStorage<ConformanceRecord>({
      pool,
      table,
      leaseTimeout: 200,
      onError: () => undefined,
    });
    await storage.migrate();
    opened.set(storage, { table, pool });
    return storage;
  };

  describeStorageConformance(
    'PostgresStorage',
    {
      create: () => {
        const table = uniqueTable('conf');
        tables.add(table);
        return open(table);
      },
      reopen: async (previous, crashed) => {
        const { table, pool } = opened.get(previous) as Opened;
        if (crashed) await pool.end();
        return open(table);
      },
      destroy: async (storages) => {
        for (const storage of storages) {
          const { table, pool } = opened.get(storage) as Opened;
          await storage.close();
          if (!pool.ended) await pool.end();
          opened.delete(storage);
          await dropTables(admin, [table]);
          tables.delete(table);
        }
      },
      // A payload the JSON serializer refuses, appended as any other (counted as waiting): what a
      // change of serializer leaves behind for the records written before it.
      plantUnreadable: async (storage) => {
        const { table } = opened.get(storage) as Opened;
        await admin.query(
          `WITH planted AS (INSERT INTO "${table}" (payload) VALUES ('{"n": oops') RETURNING id)
           UPDATE "${table}_meta" SET waiting = waiting + 1 WHERE stripe = 0`,
        );
      },
      leaseWaitMs: 3000,
    },
    { describe, it },
  );
});
