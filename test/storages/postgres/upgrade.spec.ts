import { expect, it } from '@jest/globals';
import { PostgresStorage } from '../../../lib/storages/postgres/index.js';
import { describeWith } from '../../support/services.js';
import { countRows, POSTGRES_URL, postgresSpec } from './support.js';

const describePostgres = await describeWith('postgres');

/** The table BufIO 0.2.0 created (`git show a05289b:lib/storages/postgres/statements.ts`). */
function ddl020(table: string): string {
  return `CREATE TABLE IF NOT EXISTS "${table}" (
  id bigserial PRIMARY KEY,
  payload text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  visible_at bigint NOT NULL DEFAULT 0,
  lease_holder text,
  lease_until bigint
);
CREATE INDEX IF NOT EXISTS "${table}_reserve_idx" ON "${table}" ((attempts = 0), id);
CREATE INDEX IF NOT EXISTS "${table}_lease_idx" ON "${table}" (lease_until) WHERE lease_until IS NOT NULL;`;
}

interface Rec {
  readonly n: number;
}

describePostgres('PostgresStorage.migrate() on a table made by BufIO 0.2', () => {
  const spec = postgresSpec('v020');

  /** A storage over `table`, not migrated yet: the test decides when. */
  function open(table: string): PostgresStorage<Rec> {
    const storage = new PostgresStorage<Rec>({ connectionString: POSTGRES_URL, table });
    spec.cleanup(() => storage.close());
    return storage;
  }

  it('converts it in place, keeping every record with its id, attempts and retry time', async () => {
    const table = spec.table();
    await spec.admin.query(ddl020(table));
    const now = Date.now();
    // What 0.2 leaves in its table: fresh records, records released for a retry (due and not
    // yet due), records leased by a running 0.2 process, and one it set aside.
    await spec.admin.query(
      `INSERT INTO "${table}" (payload, attempts, visible_at, lease_holder, lease_until)
       SELECT '{"n":' || n || '}', attempts, visible_at, holder, until FROM (VALUES
         (1, 0, 0, NULL, NULL), (2, 0, 0, NULL, NULL), (3, 0, 0, NULL, NULL),
         (4, 2, $1::bigint, NULL, NULL), (5, 1, 0, NULL, NULL),
         (6, 0, 0, 'old-host/1/abcd', $2::bigint), (7, 1, 5, 'old-host/1/abcd', $2::bigint),
         (8, 0, 0, 'bufio:undecodable', 8640000000000000)
       ) AS v(n, attempts, visible_at, holder, until) ORDER BY n`,
      [now + 60_000, now + 30_000],
    );
    const [a, b] = [open(table), open(table)];
    // Two instances starting at once: one converts, the other finds it done.
    await Promise.all([a.migrate(), b.migrate()]);
    await a.migrate();

    const columns = await spec.admin.query<{ column_name: string }>(
      'SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [table],
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id', 'payload']);
    const indexes = await spec.admin.query<{ indexname: string }>(
      'SELECT indexname FROM pg_indexes WHERE tablename = $1',
      [table],
    );
    expect(indexes.rows.map((r) => r.indexname)).toEqual([`${table}_pkey`]);
    expect(await countRows(spec.admin, table)).toBe(3);
    expect(await countRows(spec.admin, `${table}_retry`)).toBe(4);
    const setAside = await spec.admin.query(`SELECT id::int, payload FROM "${table}_unreadable"`);
    expect(setAside.rows).toEqual([{ id: 8, payload: '{"n":8}' }]);

    expect(await a.size()).toBe(7);
    // Leased by 0.2 (now a lease broken: one more delivery) and due retries first, then fresh.
    const batch = await a.reserve(10, { now });
    expect(batch.map((e) => [e.id, e.record.n, e.attempts, e.deliveries])).toEqual([
      ['5', 5, 1, 2],
      ['6', 6, 0, 2],
      ['7', 7, 1, 3],
      ['1', 1, 0, 1],
      ['2', 2, 0, 1],
      ['3', 3, 0, 1],
    ]);
    await a.ack(batch);
    expect(await a.size()).toBe(1);
    const later = await a.reserve(10, { now: now + 60_000 });
    expect(later.map((e) => [e.id, e.attempts, e.deliveries])).toEqual([['4', 2, 3]]);
    await a.ack(later);
    // The id sequence goes on: no id of a 0.2 record is given again.
    expect(await b.append([{ n: 9 }])).toEqual(['9']);
    expect(a.idScope).toMatch(/^pg:[0-9a-f-]{36}:\d+$/);
  });

  it('says what is missing, and to run migrate(), until a 0.2 table is converted', async () => {
    const table = spec.table();
    await spec.admin.query(ddl020(table));
    const storage = open(table);
    await expect(storage.append([{ n: 1 }])).rejects.toMatchObject({
      code: 'BUFIO_STORAGE_FAILED',
      message: expect.stringContaining(
        `table "${table}_meta" does not exist; create it with migrate()`,
      ),
    });
    expect(await countRows(spec.admin, table)).toBe(0);
    await storage.migrate();
    await expect(storage.append([{ n: 1 }])).resolves.toHaveLength(1);
  });

  it('converts an empty 0.2 table, and a converted table is left as it is', async () => {
    const table = spec.table();
    await spec.admin.query(ddl020(table));
    const storage = open(table);
    await storage.migrate();
    expect(await storage.size()).toBe(0);
    await storage.append([{ n: 1 }, { n: 2 }]);
    const scope = await spec.admin.query(`SELECT DISTINCT scope FROM "${table}_meta"`);
    await storage.migrate();
    expect(await storage.size()).toBe(2);
    expect((await spec.admin.query(`SELECT DISTINCT scope FROM "${table}_meta"`)).rows).toEqual(
      scope.rows,
    );
  });
});
