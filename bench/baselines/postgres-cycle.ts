import type pg from 'pg';
import type { BenchRecord } from '../records.js';

/**
 * The limit for a queue in a PostgreSQL table: the SKIP LOCKED cycle written by hand. One
 * connection; each cycle inserts a batch with one `INSERT … SELECT unnest($1)` and takes the
 * oldest batch back with one `DELETE … WHERE id IN (SELECT … ORDER BY id LIMIT n FOR UPDATE SKIP
 * LOCKED) RETURNING`, serializing and parsing the records as JSON. No lease (a crash of the taker
 * loses the batch: the delete is committed before the work), no retries, no ordering of retries,
 * no size, no wake-ups: everything PostgresStorage does beyond this is what the comparison prices.
 */
export class PostgresCycle {
  constructor(
    private readonly client: pg.Client,
    private readonly table: string,
  ) {}

  /** The table: an id for order and the record's JSON, as a storage table holds it. */
  static ddl(table: string): string {
    return `CREATE TABLE ${table} (id bigserial PRIMARY KEY, payload text NOT NULL)`;
  }

  /** Inserts `batch`, then takes the oldest `batch.length` records back; returns how many. */
  async cycle(batch: readonly BenchRecord[]): Promise<number> {
    await this.client.query({
      name: 'bench_cycle_insert',
      text: `INSERT INTO ${this.table} (payload) SELECT unnest($1::text[])`,
      values: [batch.map((record) => JSON.stringify(record))],
    });
    const taken = await this.client.query<{ id: string; payload: string }>({
      name: 'bench_cycle_take',
      text: `DELETE FROM ${this.table} WHERE id IN (
        SELECT id FROM ${this.table} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
      ) RETURNING id, payload`,
      values: [batch.length],
    });
    let parsed = 0;
    for (const row of taken.rows) if ((JSON.parse(row.payload) as BenchRecord).id >= 0) parsed++;
    return parsed;
  }
}
