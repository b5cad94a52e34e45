import {
  PG_BOSS,
  PG_BOSS_CHUNK,
  pgBossFetchLoop,
  pgBossWorkers,
  startPgBoss,
} from '../baselines/pg-boss.js';
import { now } from '../harness.js';
import { connectPostgres, POSTGRES_URL } from '../services.js';
import type { Contender } from './durable-storages.js';

const WORKERS = 10;
const BATCH = 500;

/**
 * The durable suite's PostgreSQL peer: what users pick instead of BufIO for a buffer in
 * PostgreSQL. pg-boss runs in a schema of its own per run, dropped afterwards.
 */
export function pgBossContenders(tag: string): Contender[] {
  let run = 0;
  const contender = (
    name: string,
    consume: typeof pgBossFetchLoop | typeof pgBossWorkers,
    options: { workers: number; batchSize: number },
  ): Contender => ({
    name,
    group: 'PostgresStorage',
    baseline: false,
    async prepare() {
      const schema = `bench_pgboss_${tag}_${run++}`;
      const { boss, queue } = await startPgBoss(POSTGRES_URL, schema, `bufio-bench-${schema}`);
      return {
        async run(records, deadline) {
          const t0 = now();
          const count = await consume(boss, queue, records, deadline, options);
          return { records: count, seconds: (now() - t0) / 1000 };
        },
        async dispose() {
          await boss.stop({ graceful: false, wait: true });
          const admin = await connectPostgres();
          if (typeof admin === 'string') throw new Error(admin);
          try {
            await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          } finally {
            await admin.end();
          }
        },
      };
    },
  });
  return [
    contender(
      `${PG_BOSS}, insert chunks of ${PG_BOSS_CHUNK} + ${WORKERS} work handlers (batch ${BATCH})`,
      pgBossWorkers,
      { workers: WORKERS, batchSize: BATCH },
    ),
    contender(
      `${PG_BOSS}, insert chunks of ${PG_BOSS_CHUNK} + fetch/complete loop (batch ${BATCH})`,
      pgBossFetchLoop,
      { workers: 1, batchSize: BATCH },
    ),
  ];
}
