import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { parseTableName } from '../../../lib/storages/postgres/table-name.js';
import { statementsFor } from '../../../lib/storages/postgres/statements.js';
import { describeWith } from '../../support/services.js';
import { adminPool, dropTables, POSTGRES_URL, uniqueTable } from './support.js';

const describePostgres = await describeWith('postgres');

/** Records waiting fresh, and waiting for a retry not yet due: the backlog of a long outage. */
const FRESH = 60_000;
const RETRIES = 30_000;
const LIMIT = 100;
const LEASES = 5;

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly 'Rows Removed by Filter'?: number;
  readonly Plans?: PlanNode[];
}

/** Rows a scan read: those it returned and those its filter dropped, over every loop. */
const rowsRead = (scan: PlanNode): number =>
  (scan['Actual Rows'] + (scan['Rows Removed by Filter'] ?? 0)) * scan['Actual Loops'];

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/**
 * Every statement the storage runs touches O(batch) rows whatever the backlog: no sequential scan
 * of the records' tables, and no scan that reads more rows than the batch it works on. Checked on
 * the plans PostgreSQL actually runs (`EXPLAIN ANALYZE`, rolled back), with a deep backlog.
 */
describePostgres('PostgresStorage statements at depth', () => {
  let admin: pg.Pool;
  let client: pg.PoolClient;
  const table = uniqueTable('depth');
  const sql = statementsFor(parseTableName(table), "'lock'");
  const now = Date.now();

  beforeAll(async () => {
    admin = adminPool();
    const storage = new PostgresStorage({ connectionString: POSTGRES_URL, table });
    await storage.migrate();
    await storage.close();
    await admin.query(
      `INSERT INTO "${table}" (payload) SELECT '{"n":' || g || '}' FROM generate_series(1, ${FRESH}) g`,
    );
    await admin.query(
      `INSERT INTO "${table}_retry" (id, payload, attempts, deliveries, visible_at)
       SELECT ${FRESH} + g, '{"n":0}', 1, 1, $1::bigint + g FROM generate_series(1, ${RETRIES}) g`,
      [now + 60_000],
    );
    await admin.query(`UPDATE "${table}_meta" SET waiting = ${FRESH + RETRIES} WHERE stripe = 0`);
    // A few leases of other holders, one of them lapsed.
    await admin.query(
      `INSERT INTO "${table}_leases" (holder_key, seq, holder, until, records, ids, payloads, attempts, deliveries)
       SELECT 42, s, 'h/1/x', CASE WHEN s = 0 THEN 0 ELSE $1::bigint END, 1,
         ARRAY[-s - 1]::bigint[], ARRAY['{}'], ARRAY[0], ARRAY[1]
       FROM generate_series(0, ${LEASES - 1}) s`,
      [now + 60_000],
    );
    await admin.query(`ANALYZE "${table}", "${table}_retry", "${table}_leases"`);
    client = await admin.connect();
  }, 60_000);

  afterAll(async () => {
    client.release();
    await dropTables(admin, [table]);
    await admin.end();
  });

  /**
   * The plan of `text` run with `values`: a custom plan (made for the values), or the generic
   * plan a prepared statement may switch to after five runs (made without them: a `LIMIT $1` of
   * unknown size), which must be as bounded.
   */
  async function explain(
    text: string,
    values: unknown[],
    mode: 'custom' | 'generic' = 'custom',
  ): Promise<PlanNode[]> {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL plan_cache_mode = force_${mode}_plan`);
      await client.query(`PREPARE bufio_plan AS ${text}`);
      const literal = (v: unknown): string =>
        typeof v === 'string' ? pg.escapeLiteral(v) : String(v);
      const literals = values.map((v) =>
        Array.isArray(v) ? `ARRAY[${v.map(literal).join(',')}]` : literal(v),
      );
      const result = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bufio_plan${literals.length > 0 ? `(${literals.join(', ')})` : ''}`,
      );
      return nodes(result.rows[0]?.['QUERY PLAN'][0].Plan as PlanNode);
    } finally {
      await client.query('ROLLBACK');
      await client.query('DEALLOCATE ALL');
    }
  }

  /**
   * No scan reads more than `bound` rows, and the records' tables are never scanned in full. The
   * small tables may be read whole: the leases (one row per batch in flight) and the 16 counters.
   */
  function expectBounded(plan: PlanNode[], bound: number): void {
    const small = new Map([
      [`${table}_leases`, LEASES],
      [`${table}_meta`, 16],
    ]);
    const read: string[] = [];
    for (const scan of plan.filter((n) => n['Relation Name']?.startsWith(table))) {
      const relation = scan['Relation Name']!;
      const where = `${scan['Node Type']} on ${relation}`;
      if (!small.has(relation) && scan['Actual Loops'] > 0) expect(where).not.toMatch(/^Seq Scan/);
      if (rowsRead(scan) > bound + (small.get(relation) ?? 0)) {
        read.push(`${where}: ${rowsRead(scan)}`);
      }
    }
    expect(read).toEqual([]);
  }

  it('starts the scan of fresh records at its bound, past the dead entries of records taken', async () => {
    // Records taken since the last vacuum (autovacuum is off on the test server) leave dead
    // index entries at the head of the primary key.
    await admin.query(`DELETE FROM "${table}" WHERE id <= 20000`);
    const reserveBuffers = async (floor: number): Promise<number> => {
      await client.query('BEGIN');
      try {
        const result = await client.query<{
          'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }];
        }>(
          `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT ctid FROM "${table}" WHERE id > $1
           ORDER BY id LIMIT ${LIMIT} FOR UPDATE SKIP LOCKED`,
          [floor],
        );
        const plan = result.rows[0]?.['QUERY PLAN'][0].Plan;
        return (plan?.['Shared Hit Blocks'] ?? 0) + (plan?.['Shared Read Blocks'] ?? 0);
      } finally {
        await client.query('ROLLBACK');
      }
    };
    const fromHead = await reserveBuffers(0);
    const fromFloor = await reserveBuffers(20000);
    // From the bound: the batch's own rows (one block access each) and a few index pages.
    expect(fromFloor).toBeLessThanOrEqual(LIMIT + 10);
    // From the head: the 20,000 dead entries too (at least their ~55 leaf pages).
    expect(fromHead - fromFloor).toBeGreaterThan(50);
  });

  describe.each(['custom', 'generic'] as const)('with a %s plan', (mode) => {
    it('reserves a batch reading the batch, not the backlog (with and without maxBytes)', async () => {
      const lease = [7, 1, 'me', now + 30_000, 0, 0, 0, 0];
      const plain = await explain(sql.reserve, [LIMIT, now, ...lease], mode);
      expectBounded(plain, LIMIT);
      const tableScans = plain.filter((n) => n['Relation Name'] === table);
      expect(tableScans.map((n) => n['Node Type'])).toContain('Index Scan');
      expectBounded(await explain(sql.reserveWithin, [LIMIT, now, ...lease, 5000], mode), LIMIT);
    });

    it('finds due retries without walking the ones still waiting', async () => {
      const lease = [7, 1, 'me', now + 30_000, 0, 0, 0, 0];
      const due = await explain(sql.reserve, [LIMIT, now + 60_000 + 50, ...lease], mode);
      const retryScans = due.filter((n) => n['Relation Name'] === `${table}_retry`);
      expect(retryScans.map((scan) => scan['Actual Rows'])).toContain(50);
      expectBounded(due, LIMIT);
    });

    it('acks, releases, renews, recovers, counts and appends in O(batch)', async () => {
      const ids = Array.from({ length: LIMIT }, (_, i) => FRESH + 1 + i);
      const plan = (text: string, values: unknown[]): Promise<PlanNode[]> =>
        explain(text, values, mode);
      expectBounded(await plan(sql.ack, [42, 1, ids, 0]), LIMIT);
      expectBounded(await plan(sql.ack, [43, 1, ids, 0]), LIMIT); // a lease gone: by id
      expectBounded(await plan(sql.ackAll, [42, 1, 1]), 1);
      expectBounded(await plan(sql.release, [42, 1, [-2], 0, now]), LIMIT);
      expectBounded(await plan(sql.renew, [42, [1, 2], now]), 2);
      expectBounded(await plan(sql.recover, [now, 7, 0, 'bufio_x', 'me']), 5);
      expectBounded(await plan(sql.size, []), 16);
      expectBounded(await plan(sql.leasedElsewhere, [7]), 5);
      expectBounded(await plan(sql.insert, [['{"n":1}', '{"n":2}'], 0, 'bufio_x', 'me']), 2);
    });
  });
});
