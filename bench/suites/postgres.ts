import pg from 'pg';
import { bufioBatcher, type Batcher } from '../batcher.js';
import { HandLoop } from '../baselines/hand-loop.js';
import { insertRowPerRecord, perRecordProducers } from '../baselines/per-record.js';
import {
  fmt,
  fmtRatio,
  fmtSummary,
  interleave,
  now,
  ratios,
  summarize,
  type Measurement,
  type RunConfig,
  type SuiteResult,
  type Target,
} from '../harness.js';
import { makeRecords, type BenchRecord } from '../records.js';
import { checkpoint, connectPostgres, POSTGRES_URL, runTag } from '../services.js';

const BATCH_SIZES = [10, 100, 1000] as const;
const FLUSH_INTERVAL = 100;
const CONNECTIONS = 10;
const WARMUP_ROWS = 5000;
const WARMUP_MS = 300;
const PER_RECORD = 'INSERT per record';
const PER_RECORD_POOL = `INSERT per record, ${CONNECTIONS} connections`;

interface Contender {
  readonly name: string;
  readonly batchSize?: number;
  /**
   * Inserts `records` into the table, stopping early at `deadline` (ms, `now()` clock); resolves
   * with the rows inserted once every one of them is committed.
   */
  run(records: readonly BenchRecord[], deadline: number): Promise<number>;
}

/** One multi-row insert per batch: three arrays, unnested, in a prepared statement. */
function batchInserter(client: pg.Client, table: string): (batch: BenchRecord[]) => Promise<void> {
  const text = `INSERT INTO ${table} (id, name, amount) SELECT * FROM unnest($1::int[], $2::text[], $3::int[])`;
  return async (batch) => {
    const ids = new Array<number>(batch.length);
    const names = new Array<string>(batch.length);
    const amounts = new Array<number>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i]!;
      ids[i] = r.id;
      names[i] = r.name;
      amounts[i] = r.amount;
    }
    await client.query({ name: 'bench_insert_batch', text, values: [ids, names, amounts] });
  };
}

/** The producer every batching contender gets: one loop awaiting each push, then a drain. */
async function produce(
  batcher: Batcher<BenchRecord>,
  records: readonly BenchRecord[],
  deadline: number,
): Promise<number> {
  let pushed = 0;
  while (pushed < records.length) {
    if (pushed % 1000 === 0 && now() >= deadline) break;
    await batcher.push(records[pushed++]!);
  }
  await batcher.close();
  return pushed;
}

function rowsCell(counts: readonly number[]): string {
  if (counts.length === 0) return '–';
  const lo = Math.min(...counts);
  const hi = Math.max(...counts);
  return lo === hi
    ? lo.toLocaleString('en-US')
    : `${lo.toLocaleString('en-US')}–${hi.toLocaleString('en-US')}`;
}

/** Suite 2: end into PostgreSQL, a normal (logged) table on the local server. */
export async function postgresSuite(config: RunConfig): Promise<SuiteResult> {
  const started = now();
  const rounds = config.quick ? 3 : 4;
  const maxRows = config.quick ? 50_000 : 100_000;
  const timeBox = config.quick ? 1000 : 4000;
  const base = {
    id: 'postgres',
    title: '2. End to end into PostgreSQL',
    method: [] as string[],
    tables: [],
    measurements: [],
    seconds: 0,
  };

  const admin = await connectPostgres();
  if (typeof admin === 'string') {
    return { ...base, targets: [], notes: [`not run: ${admin}`] };
  }
  const table = `bench_rows_${runTag()}`;
  const single = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  const batchClient = new pg.Client({ connectionString: POSTGRES_URL });
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: CONNECTIONS });
  pool.on('error', () => {});
  const failures: string[] = [];
  const results = new Map<string, number[]>();
  const rowCounts = new Map<string, number[]>();
  const contenders: Contender[] = [];
  try {
    await admin.query(
      `CREATE TABLE ${table} (id integer PRIMARY KEY, name text NOT NULL, amount integer NOT NULL)`,
    );
    single.on('error', () => {});
    await batchClient.connect();
    // Open every pooled connection before timing.
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const c = await pool.connect();
        await new Promise((resolve) => setTimeout(resolve, 20));
        c.release();
      }),
    );

    contenders.push(
      {
        name: PER_RECORD,
        run: (records, deadline) =>
          perRecordProducers(records, 1, deadline, insertRowPerRecord(single, table)),
      },
      {
        name: PER_RECORD_POOL,
        run: (records, deadline) =>
          perRecordProducers(records, CONNECTIONS, deadline, insertRowPerRecord(pool, table)),
      },
    );
    const insert = batchInserter(batchClient, table);
    for (const batchSize of BATCH_SIZES) {
      contenders.push(
        {
          name: `hand loop, batch ${batchSize}`,
          batchSize,
          run: (records, deadline) =>
            produce(
              new HandLoop({ worker: insert, batchSize, flushInterval: FLUSH_INTERVAL }),
              records,
              deadline,
            ),
        },
        {
          name: `BufIO, batch ${batchSize}`,
          batchSize,
          run: (records, deadline) =>
            produce(
              bufioBatcher(insert, { batchSize, flushInterval: FLUSH_INTERVAL }),
              records,
              deadline,
            ),
        },
      );
    }

    const records = makeRecords(maxRows);
    // Warm-up, not kept: the JIT, the driver's prepared statements and the server's caches.
    for (const c of contenders) {
      await admin.query(`TRUNCATE ${table}`);
      await c.run(records.slice(0, WARMUP_ROWS), now() + WARMUP_MS).catch((error: unknown) => {
        failures.push(`${c.name}, warm-up: ${String(error)}`);
      });
    }
    await interleave(contenders, rounds, async (c, round) => {
      await admin.query(`TRUNCATE ${table}`);
      await checkpoint(admin);
      const t0 = now();
      let inserted: number;
      try {
        inserted = await c.run(records, t0 + timeBox);
      } catch (error) {
        failures.push(`${c.name}, round ${round + 1}: ${String(error)}`);
        return;
      }
      const seconds = (now() - t0) / 1000;
      const count = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
      if (Number(count.rows[0]?.n) !== inserted) {
        failures.push(
          `${c.name}, round ${round + 1}: ${count.rows[0]?.n} rows in the table, ${inserted} inserted`,
        );
        return;
      }
      results.set(c.name, [...(results.get(c.name) ?? []), inserted / seconds]);
      rowCounts.set(c.name, [...(rowCounts.get(c.name) ?? []), inserted]);
      config.log(
        `  postgres: ${c.name}: ${inserted} rows, ${fmt(inserted / seconds)} rows/s (round ${round + 1}/${rounds})`,
      );
    });
  } finally {
    await admin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await Promise.allSettled([admin.end(), single.end(), batchClient.end(), pool.end()]);
  }

  const perRecord = results.get(PER_RECORD) ?? [];
  const measurements: Measurement[] = contenders.map((c) => {
    const values = results.get(c.name) ?? [];
    return {
      contender: c.name,
      metric: 'rows per second',
      unit: 'rows/s',
      summary: summarize(values),
      ratio: { to: PER_RECORD, summary: summarize(ratios(values, perRecord)) },
      extra: { rows: rowCounts.get(c.name) ?? [], batchSize: c.batchSize, rounds: values },
    };
  });
  const handRatio = (batchSize: number): ReturnType<typeof summarize> =>
    summarize(
      ratios(
        results.get(`BufIO, batch ${batchSize}`) ?? [],
        results.get(`hand loop, batch ${batchSize}`) ?? [],
      ),
    );
  const rows = contenders.map((c) => {
    const m = measurements.find((x) => x.contender === c.name) as Measurement;
    const vsHand = c.name.startsWith('BufIO') && c.batchSize ? handRatio(c.batchSize) : undefined;
    return [
      c.name,
      rowsCell(rowCounts.get(c.name) ?? []),
      m.summary.n > 0 ? fmtSummary(m.summary) : 'failed',
      m.ratio && m.ratio.summary.n > 0 ? fmtRatio(m.ratio.summary.median) : '–',
      vsHand && vsHand.n > 0 ? fmtRatio(vsHand.median) : '–',
    ];
  });

  const targets: Target[] = [];
  const best = measurements.find((m) => m.contender === 'BufIO, batch 1000');
  targets.push({
    name: 'BufIO (batch 1000) vs one awaited INSERT per record',
    goal: '≥ 30×',
    measured:
      best?.ratio && best.ratio.summary.n > 0
        ? `${fmtRatio(best.ratio.summary.median)} (rounds ${fmt(best.ratio.summary.min)}–${fmt(best.ratio.summary.max)})`
        : 'n/a',
    met: best?.ratio && best.ratio.summary.n > 0 ? best.ratio.summary.median >= 30 : null,
  });
  for (const batchSize of BATCH_SIZES) {
    const r = handRatio(batchSize);
    targets.push({
      name: `BufIO vs hand-written batch loop, batch ${batchSize}`,
      goal: 'within 10% (≥ 0.9×)',
      measured: r.n > 0 ? `${fmtRatio(r.median)} (rounds ${fmt(r.min)}–${fmt(r.max)})` : 'n/a',
      met: r.n > 0 ? r.median >= 0.9 : null,
    });
  }

  return {
    ...base,
    method: [
      `A normal (logged, not \`UNLOGGED\`) table \`(id integer PRIMARY KEY, name text, amount integer)\` created for the run, truncated (then a \`CHECKPOINT\`) before every contender's run and dropped at the end; the server's durability settings untouched (see the machine section). Time runs from the first push (or INSERT) to the last row committed; then \`count(*)\` must equal the rows pushed (the primary key also refuses a row written twice).`,
      `Contenders: one awaited \`INSERT\` per record on one connection (what an app without a buffer does); the same from ${CONNECTIONS} concurrent loops over a pool of ${CONNECTIONS} connections; the hand loop (bench/baselines/hand-loop.ts) and BufIO (\`MemoryStorage\`, concurrency 1, default \`maxBufferedRecords\`), both fed by one producer loop that awaits each push and both with a worker doing one prepared \`INSERT … SELECT * FROM unnest($1::int[], $2::text[], $3::int[])\` per batch on one connection, at batch sizes ${BATCH_SIZES.join(', ')}, flush interval ${FLUSH_INTERVAL} ms.`,
      `Each run inserts ${maxRows.toLocaleString('en-US')} rows${config.quick ? ' (quick mode; 100,000 in a full run)' : ''}, or stops pushing after ${timeBox / 1000} s and counts what it inserted, whichever comes first: the slow contenders (one commit per record or per 10 records, each waiting for the WAL flush) would otherwise take minutes, and their rate does not depend on the row count. The rows column shows how many rows each run inserted. ${rounds} rounds, the order rotating and reversing from round to round (\`roundOrder\` in bench/harness.ts); a runner of our own (one timed run per contender per round). Ratios are taken within a round, then the median over rounds. Before the rounds, each contender runs once untimed (up to ${WARMUP_ROWS.toLocaleString('en-US')} rows or ${WARMUP_MS} ms) to warm the JIT, the driver and the server.`,
    ],
    tables: [
      {
        title: 'rows per second (median over rounds, min–max)',
        columns: [
          'contender',
          'rows per run',
          'rows/s',
          'vs INSERT per record',
          'vs hand loop, same batch',
        ],
        rows,
      },
    ],
    measurements,
    targets,
    notes: failures,
    seconds: (now() - started) / 1000,
  };
}
