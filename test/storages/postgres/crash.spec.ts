import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import {
  adminPool,
  countRows,
  dropTables,
  killFixtures,
  POSTGRES_URL,
  seededRandom,
  sleep,
  spawnFixture,
  uniqueTable,
} from './support.js';

const describePostgres = await describeWith('postgres');

const ROUNDS = 5;
const LEASE_MS = '500';

describePostgres('PostgresStorage when its process is killed', () => {
  let admin: pg.Pool;
  const table = uniqueTable('crash');
  const done = `${table}_done`;

  beforeAll(async () => {
    admin = adminPool();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
    await admin.query(`CREATE TABLE "${done}" (id bigint NOT NULL, pid integer NOT NULL)`);
  });

  afterAll(async () => {
    killFixtures();
    await dropTables(admin, [table, done]);
    await admin.end();
  });

  it('processes every acknowledged record at least once across SIGKILLs at random moments', async () => {
    const seed = Number(process.env.BUFIO_TEST_SEED ?? Date.now() % 2 ** 31);
    const random = seededRandom(seed);
    const log = [`crash test seed ${seed} (replay: BUFIO_TEST_SEED=${seed})`];
    const acked = new Set<number>();

    for (let round = 0; round < ROUNDS; round++) {
      const child = spawnFixture('crash-child', {
        MODE: 'produce',
        TABLE: table,
        DONE_TABLE: done,
        LEASE_MS,
        FIRST_ID: String(round * 1_000_000),
        PRODUCERS: '20',
      });
      await child.waitForLine(/^ready$/);
      const delay = Math.floor(150 + random() * 900);
      await sleep(delay);
      child.process.kill('SIGKILL');
      expect(await child.exited).toBeNull();
      let count = 0;
      for (const line of child.lines) {
        const match = /^acked (\d+)$/.exec(line);
        if (match) {
          acked.add(Number(match[1]));
          count++;
        }
      }
      const doneRows = await countRows(admin, done);
      log.push(
        `round ${round}: killed after ${delay} ms, ${count} acknowledged, ${doneRows} done rows so far`,
      );
      expect(child.stderr).toEqual([]);
    }

    const drain = spawnFixture('crash-child', {
      MODE: 'drain',
      TABLE: table,
      DONE_TABLE: done,
      LEASE_MS,
    });
    const drained = await drain.waitForLine(/^drained /, 60_000);
    expect(await drain.exited).toBe(0);
    log.push(drained);

    const rows = await admin.query<{ id: string; n: string }>(
      `SELECT id::text AS id, count(*)::text AS n FROM "${done}" GROUP BY id`,
    );
    const processed = new Map(rows.rows.map((row) => [Number(row.id), Number(row.n)]));
    const missing = [...acked].filter((id) => !processed.has(id));
    const duplicated = [...processed.values()].filter((n) => n > 1).length;
    const unacknowledged = [...processed.keys()].filter((id) => !acked.has(id)).length;
    log.push(
      `${acked.size} acknowledged, ${processed.size} processed, ${missing.length} missing, ` +
        `${duplicated} processed more than once (killed between work and ack), ` +
        `${unacknowledged} processed but never seen acknowledged (killed between commit and print)`,
    );
    console.log(log.join('\n'));
    expect(acked.size).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    expect(await countRows(admin, table)).toBe(0);
  }, 90_000);
});
