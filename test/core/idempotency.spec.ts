import { expect, it } from '@jest/globals';
import path from 'node:path';
import type { CrashStorage } from '../fixtures/storages/crash-producer.js';
import { crashAndDrain } from '../support/crash-rounds.js';
import { describeWith } from '../support/services.js';
import { useChildDirectory } from '../storages/file/support.js';
import { childProcessSpec, POSTGRES_URL, uniqueTable } from '../storages/postgres/support.js';

const describePostgres = await describeWith('postgres');

const ROUNDS = 4;

/**
 * The README's idempotency recipe under real SIGKILLs: the worker writes each record under
 * `context.ids[i]` with `ON CONFLICT DO NOTHING`, and every batch of some is written twice (a
 * planned failure after the write), besides what the kills make the storages deliver again. With
 * keys that stay the same on every delivery, after a restart and after a lease is taken over,
 * the table holds exactly one row per record.
 */
describePostgres('effectively once: a worker keyed by context.ids, across SIGKILLs', () => {
  const spec = childProcessSpec('idem');
  const childDirectory = useChildDirectory('idempotency');

  const storages: [string, () => Promise<CrashStorage>][] = [
    [
      'FileStorage',
      async () => ({
        kind: 'file',
        directory: path.join(await childDirectory(), 'journal'),
        durability: 'fsync',
        segmentBytes: 16 * 1024,
      }),
    ],
    [
      'PostgresStorage',
      async () => ({ kind: 'postgres', url: POSTGRES_URL, table: spec.table, leaseTimeout: 500 }),
    ],
  ];

  it.each(storages)(
    '%s: one row per record, every acknowledged push written',
    async (name, open) => {
      const storage = await open();
      const rows = uniqueTable('idem_rows');
      await spec.admin.query(
        `CREATE TABLE ${rows} (key text PRIMARY KEY, record integer NOT NULL, writes integer NOT NULL)`,
      );
      try {
        const outcome = await crashAndDrain({
          label: `${name} idempotency test`,
          rounds: ROUNDS,
          storage: () => storage,
          killAfterMs: [100, 700],
          producers: 20,
          rows: { url: POSTGRES_URL, table: rows },
        });
        expect(outcome.exits).toEqual([...Array<string>(ROUNDS).fill('SIGKILL'), 'exit 0']);
        expect(outcome.lost).toEqual([]);
        expect(outcome.acknowledged.size).toBeGreaterThan(0);

        const written = await spec.admin.query<{ record: number; n: string; writes: string }>(
          `SELECT record, count(*) AS n, sum(writes) AS writes FROM ${rows} GROUP BY record`,
        );
        const perRecord = new Map(written.rows.map((row) => [row.record, Number(row.n)]));
        // No record written under two keys...
        expect([...perRecord].filter(([, n]) => n !== 1)).toEqual([]);
        // ...every acknowledged push written...
        expect([...outcome.acknowledged].filter((id) => !perRecord.has(id))).toEqual([]);
        // ...and nothing written that no process pushed.
        expect([...perRecord.keys()].filter((id) => !outcome.processed.has(id))).toEqual([]);
        // Records were written more than once (the planned failures after the write, on every
        // run; deliveries a kill cut short), and their keys held them to one row.
        const rewritten = written.rows.filter((row) => Number(row.writes) > 1).length;
        expect(rewritten).toBeGreaterThan(0);
        process.stdout.write(
          `${name}: ${perRecord.size} records, one row each; ${rewritten} written more than once\n`,
        );
      } finally {
        await spec.admin.query(`DROP TABLE IF EXISTS ${rows}`);
      }
    },
    90_000,
  );
});
