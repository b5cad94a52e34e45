import PgBoss from 'pg-boss';
import { now } from '../harness.js';
import type { BenchRecord } from '../records.js';

/** The newest pg-boss that runs on Node 20 (11 and later need Node 22). */
export const PG_BOSS = 'pg-boss 10.4.2';

/** pg-boss `insert` takes an array of jobs: chunks of this many records. */
export const PG_BOSS_CHUNK = 1000;

/**
 * pg-boss in a schema of its own (dropped afterwards by the caller), on one queue, with its
 * background maintenance and cron off so that they do not run during the timing.
 */
export async function startPgBoss(
  connectionString: string,
  schema: string,
  application: string,
): Promise<{ boss: PgBoss; queue: string }> {
  const boss = new PgBoss({
    connectionString,
    schema,
    application_name: application,
    max: 10,
    supervise: false,
    schedule: false,
  });
  boss.on('error', () => undefined);
  await boss.start();
  const queue = 'bench';
  await boss.createQueue(queue);
  return { boss, queue };
}

/**
 * Inserts `records` in chunks, as a producer that has them in hand would, until they run out or
 * `deadline` passes (`now()` clock); `consume` runs alongside and must resolve once it has seen
 * `total()` records. Returns how many were inserted (and processed).
 */
async function insertAndConsume(
  boss: PgBoss,
  queue: string,
  records: readonly BenchRecord[],
  deadline: number,
  consume: (total: () => number) => Promise<void>,
): Promise<number> {
  let inserted = 0;
  let done = false;
  const consuming = consume(() => (done ? inserted : Infinity));
  for (let i = 0; i < records.length && now() < deadline; i += PG_BOSS_CHUNK) {
    const chunk = records.slice(i, i + PG_BOSS_CHUNK);
    await boss.insert(chunk.map((data) => ({ name: queue, data })));
    inserted += chunk.length;
  }
  done = true;
  await consuming;
  return inserted;
}

/**
 * pg-boss as its docs show it: `work` handlers (here `workers` of them, each fetching up to
 * `batchSize` jobs, completed when the handler resolves). pg-boss polls: a worker that finds
 * jobs still waits `pollingIntervalSeconds` (0.5 s at least) less the time the batch took.
 */
export async function pgBossWorkers(
  boss: PgBoss,
  queue: string,
  records: readonly BenchRecord[],
  deadline: number,
  options: { workers: number; batchSize: number },
): Promise<number> {
  return insertAndConsume(boss, queue, records, deadline, async (total) => {
    let processed = 0;
    let resolveAll!: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const check = setInterval(() => {
      if (processed >= total()) resolveAll();
    }, 5);
    for (let w = 0; w < options.workers; w++) {
      await boss.work<BenchRecord>(
        queue,
        { batchSize: options.batchSize, pollingIntervalSeconds: 0.5 },
        async (jobs) => {
          processed += jobs.length;
        },
      );
    }
    await all;
    clearInterval(check);
    await boss.offWork(queue);
  });
}

/** pg-boss at its fastest: a loop that `fetch`es up to `batchSize` jobs and `complete`s them. */
export async function pgBossFetchLoop(
  boss: PgBoss,
  queue: string,
  records: readonly BenchRecord[],
  deadline: number,
  options: { batchSize: number },
): Promise<number> {
  return insertAndConsume(boss, queue, records, deadline, async (total) => {
    let processed = 0;
    while (processed < total()) {
      const jobs = await boss.fetch<BenchRecord>(queue, { batchSize: options.batchSize });
      if (jobs.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      await boss.complete(
        queue,
        jobs.map((job) => job.id),
      );
      processed += jobs.length;
    }
  });
}
