import { StorageError } from '../../core/errors.js';
import type { PostgresPool } from './postgres-pool.js';
import { schemaDdl } from './schema.js';
import type { TableName } from './table-name.js';

/**
 * The SQL of one buffer. Only validated, quoted names are ever written into the text; every value
 * travels as a bind parameter.
 *
 * Layout. `T` is the configured table; the others are named after it. A record is in exactly one
 * of `T`, `T_retry`, `T_leases` and `T_unreadable` at any time, and every move between them is one
 * statement, so a crash never leaves a record nowhere or in two places.
 *
 * - `T (id bigserial PRIMARY KEY, payload text)`: fresh records, never delivered. Only inserted
 *   and deleted, never updated, with no index but the primary key, which also gives the order:
 *   a record costs what a hand-written `INSERT` + `DELETE … FOR UPDATE SKIP LOCKED` costs.
 *   `id` is the record's id for good (bigserial: never reused, whatever moves it makes); returned
 *   as text, so ids are exact whatever type parsers the application installed in pg. `payload` is
 *   the serializer's text: `text` rather than `jsonb`, since a custom serializer need not produce
 *   JSON, `jsonb` would reorder keys and refuse `\u0000`, and `octet_length` then measures exactly
 *   the serialized bytes for `maxBatchBytes`.
 * - `T_retry (id, payload, attempts, deliveries, visible_at)`: records delivered before, waiting
 *   again: released for a retry (`attempts` failed attempts, hidden until `visible_at`, epoch ms
 *   of the engines' clock), or recovered from a lease that ended without an ack or a release
 *   (`visible_at` 0). `deliveries` counts the leases they had. Indexed by `(visible_at, id)`, so
 *   that due retries are found without walking the ones still waiting.
 * - `T_leases (holder_key, seq, holder, until, records, ids, payloads, attempts, deliveries,
 *   settled)`: one row per reserved batch. Reserving deletes the batch's rows from `T` and
 *   `T_retry` and writes them here as arrays, in the same statement; the arrays are compressed
 *   out of line (TOAST, lz4 where the server has it), so a lease costs a fraction of a row per
 *   record and no record row is ever rewritten to lease it. Records from `T_retry` come first:
 *   `attempts` and `deliveries` cover only them (NULL if none), the records after them are fresh
 *   (0 attempts, 1 delivery). `deliveries` is already counted for this lease. `until` (epoch ms) is extended while the holder works (one row per batch, not per
 *   record); `settled` lists the records acknowledged, released or set aside from a batch that
 *   is not yet done; the row goes once all `records` are. A lease whose `until` passed, or whose
 *   holder is proven dead, is recovered: its unsettled records go back to `T_retry`.
 *   `holder` is `host/pid/random`, for people; `holder_key` (a random bigint) and `seq` (the
 *   holder's counter) identify the batch. A positive `holder_key` is also held as a session
 *   advisory lock by its holder's session connection while it lives, so a free lock proves the
 *   holder gone (a crash, a kill, a restart) and its leases are recovered at once.
 * - `T_unreadable (id, payload, reason, set_aside_at)`: records whose payload did not deserialize,
 *   kept for a person to look at; never delivered nor counted.
 * - `T_meta (stripe, waiting, scope)`: how many records wait (in `T` and `T_retry`), as 16
 *   counters that each statement adjusts one of (chosen by the caller), so that `size()` reads 16
 *   rows instead of counting the table, and concurrent statements rarely wait on the same row;
 *   `scope` (a UUID made when the table was created) names this store in idempotency keys.
 *
 * Appends notify the channel `channel` (payload: the appender's token), for `watch()`.
 */
export interface Statements {
  /** Creates what is missing and upgrades a 0.2 table in place; idempotent. */
  readonly ddl: string;
  /** `ddl`, under an advisory lock. */
  readonly migrate: string;
  /**
   * $1 payloads (text[]), $2 stripe, $3 channel, $4 token. Returns one row: `first` and `n` when
   * the ids are `first`, `first + 1`, … in payload order (nothing else took ids meanwhile), else
   * `ids`, in payload order.
   */
  readonly insert: string;
  /**
   * $1 limit, $2 now (visibility), $3 holder_key, $4 seq, $5 holder, $6 until, $7 stripe; where
   * the scans start (see ScanFloor): $8 the id fresh records are taken above, $9 and $10 the
   * `(visible_at, id)` retries are taken above. Returns `id, payload, attempts, deliveries,
   * visible_at`: due retries first, then fresh records (with NULL attempts, deliveries and
   * visible_at: 0 attempts, 1 delivery), each part unordered.
   */
  readonly reserve: string;
  /**
   * `reserve`, keeping the prefix within $11 bytes (the first record always), retries in due
   * order, then fresh records in id order.
   */
  readonly reserveWithin: string;
  /** $1 holder_key, $2 seq, $3 how many records this settles: ends a lease settled by it. */
  readonly ackAll: string;
  /**
   * $1 holder_key, $2 seq, $3 ids, $4 stripe. Settles `ids` of the lease; without the lease (it
   * was recovered meanwhile), deletes them from `T_retry` if they still wait there.
   */
  readonly ack: string;
  /** $1 holder_key, $2 seq, $3 ids, $4 stripe, $5 visible_at: back to `T_retry`, attempt counted. */
  readonly release: string;
  /** $1 holder_key, $2 seq, $3 ids, $4 reasons (text[], as `ids`): to `T_unreadable`. */
  readonly setAside: string;
  /** $1 holder_key, $2 seqs (int[]), $3 new until. */
  readonly renew: string;
  /**
   * $1 now, $2 own holder_key, $3 stripe, $4 channel, $5 token: leases that lapsed, or whose
   * holder is gone (its presence lock is free), go back to `T_retry`, due now (not at 0: scans
   * of due retries start past the keys taken, see ScanFloor). Returns `n` records.
   */
  readonly recover: string;
  /**
   * $1 holder_key, $2 stripe, $3 now: this holder's leases go back, their deliveries uncounted.
   */
  readonly giveBack: string;
  /** Returns `n`: records waiting, from the counters. */
  readonly size: string;
  /** $1 own holder_key. Returns `n`: records in other holders' leases. */
  readonly leasedElsewhere: string;
  /** $1 the quoted table name. Returns `scope` and the table's `oid`. */
  readonly scope: string;
  /** The names of the tables, for messages. */
  readonly tables: {
    readonly records: string;
    readonly retries: string;
    readonly leases: string;
    readonly unreadable: string;
    readonly meta: string;
  };
}

/** `holder_key` and `seq` of one lease, as bind parameters. */
const LEASE = 'holder_key = $1::bigint AND seq = $2::int';

/** Builds the statements of `table`. */
export function statementsFor(table: TableName, lockKey: string): Statements {
  const t = table.quoted;
  const retry = table.sibling('_retry');
  const leases = table.sibling('_leases');
  const unreadable = table.sibling('_unreadable');
  const meta = table.sibling('_meta');
  const ddl = schemaDdl(table);

  // The records a reserve took, from both sources, as one relation; and what every reserve does
  // with them: one lease row, one counter update.
  // The lease row lists the retried records first: its attempts and deliveries arrays cover only
  // them (NULL when there are none), and the fresh records after them have 0 and 1, so a batch of
  // fresh records stores (and compresses) only its ids and payloads. The batch comes back with
  // NULL attempts for fresh records, which the client reads as 0 attempts, 1 delivery.
  const takenAndLeased = `
leased AS (
  INSERT INTO ${leases} (holder_key, seq, holder, until, records, ids, payloads, attempts, deliveries)
  SELECT $3::bigint, $4::int, $5::text, $6::bigint, r.n + f.n,
    r.ids || f.ids, r.payloads || f.payloads, r.attempts, r.deliveries
  FROM (
    SELECT count(*) AS n, array_agg(id) AS ids, array_agg(payload) AS payloads,
      array_agg(attempts) AS attempts, array_agg(deliveries) AS deliveries
    FROM retried
  ) r, (SELECT count(*) AS n, array_agg(id) AS ids, array_agg(payload) AS payloads FROM fresh) f
  WHERE r.n + f.n > 0
  RETURNING records
),
counted AS (
  UPDATE ${meta} SET waiting = waiting - (SELECT records FROM leased)
  WHERE stripe = $7::int AND EXISTS (SELECT 1 FROM leased)
)
SELECT id::text AS id, payload, attempts, deliveries, visible_at::text AS visible_at FROM retried
UNION ALL SELECT id::text, payload, NULL, NULL, NULL FROM fresh`;
  const retriedWhere = (ctids: string): string => `
retried AS (
  DELETE FROM ${retry} WHERE ctid = ANY (ARRAY(${ctids}))
  RETURNING id, payload, attempts, deliveries + 1 AS deliveries, visible_at
)`;
  const freshWhere = (ctids: string): string => `
fresh AS (
  DELETE FROM ${t} WHERE ctid = ANY (ARRAY(${ctids})) RETURNING id, payload
)`;
  // Due retries first (the oldest due first), then fresh records in id order, each source locked
  // with SKIP LOCKED so that instances never wait on each other's batches. Rows are deleted by
  // ctid: rows of `T` and `T_retry` are never updated, so the locked ctid is the row, and neither
  // a second index descent nor a join (which could scan the table) is needed.
  const dueRetries = (columns: string): string => `
due AS (
  SELECT ${columns} FROM ${retry}
  WHERE visible_at <= $2::bigint AND (visible_at, id) > ($9::bigint, $10::bigint)
  ORDER BY visible_at, id LIMIT $1::int FOR UPDATE SKIP LOCKED
)`;
  const freshLimit = `greatest($1::int - (SELECT count(*) FROM due), 0)`;

  // Settling part of a lease: the rows of the batch it names, and the lease row narrowed to the
  // records still open, or ended once none is. Statements on one lease are serialized by the row
  // lock taken here, so concurrent settlements of one batch count correctly.
  const settling = (extra = ''): string => `
lease AS (
  SELECT ids, payloads, attempts, deliveries, records - coalesce(cardinality(settled), 0) AS open
  FROM ${leases} WHERE ${LEASE} FOR UPDATE
),
settling AS (SELECT * FROM unnest($3::bigint[]${extra}) AS s(id${extra ? ', reason' : ''})),
batch AS (
  SELECT u.id, u.payload, coalesce(u.attempts, 0) AS attempts, coalesce(u.deliveries, 1) AS deliveries
  FROM lease, unnest(lease.ids, lease.payloads, lease.attempts, lease.deliveries)
    AS u(id, payload, attempts, deliveries)
  JOIN settling USING (id)
),
ended AS (
  DELETE FROM ${leases} WHERE ${LEASE}
    AND (SELECT open FROM lease) <= (SELECT count(*) FROM settling)
),
narrowed AS (
  UPDATE ${leases} SET settled = coalesce(settled, '{}') || $3::bigint[]
  WHERE ${LEASE} AND (SELECT open FROM lease) > (SELECT count(*) FROM settling)
)`;
  const adjustWaiting = (sign: '+' | '-', rows: string, stripe: string): string => `
counted AS (
  UPDATE ${meta} SET waiting = waiting ${sign} (SELECT count(*) FROM ${rows})
  WHERE stripe = ${stripe}::int AND EXISTS (SELECT 1 FROM ${rows})
)`;
  // Leases that ended without ack or release: their open records go back, to be delivered again.
  const endLeases = (
    which: string,
    deliveries: string,
    visibleAt: string,
    stripe: string,
    notify: string,
  ): string => `
WITH ended AS (
  DELETE FROM ${leases} l USING (
    SELECT holder_key, seq FROM ${leases} WHERE ${which} FOR UPDATE SKIP LOCKED
  ) dead
  WHERE l.holder_key = dead.holder_key AND l.seq = dead.seq
  RETURNING l.ids, l.payloads, l.attempts, l.deliveries, l.settled
),
back AS (
  INSERT INTO ${retry} (id, payload, attempts, deliveries, visible_at)
  SELECT u.id, u.payload, coalesce(u.attempts, 0), ${deliveries}, ${visibleAt}::bigint
  FROM ended, unnest(ended.ids, ended.payloads, ended.attempts, ended.deliveries)
    AS u(id, payload, attempts, deliveries)
  WHERE ended.settled IS NULL OR u.id <> ALL (ended.settled)
  ON CONFLICT (id) DO NOTHING
  RETURNING 1
),
counted AS (
  UPDATE ${meta} SET waiting = waiting + (SELECT count(*) FROM back)
  WHERE stripe = ${stripe}::int AND EXISTS (SELECT 1 FROM back)
  RETURNING ${notify}
)
SELECT count(*)::int AS n FROM back`;

  return {
    ddl,
    // One implicit transaction (a multi-statement simple query): the advisory lock serializes
    // instances migrating at once, whose CREATE ... IF NOT EXISTS would otherwise race.
    migrate: `SELECT pg_advisory_xact_lock(hashtext(${lockKey}));\n${ddl}`,

    // Rows are inserted, and take their ids, in ordinality order, so ids ascend in payload order:
    // sorted, they are the payloads' ids, and one row carries them (a range when contiguous, the
    // usual case) rather than a row per record. The counter update notifies (once per statement,
    // at commit, when the rows are visible).
    insert: `
WITH appended AS (
  INSERT INTO ${t} (payload)
  SELECT u.payload FROM unnest($1::text[]) WITH ORDINALITY AS u(payload, n) ORDER BY u.n
  RETURNING id
),
counted AS (
  UPDATE ${meta} SET waiting = waiting + (SELECT count(*) FROM appended)
  WHERE stripe = $2::int
  RETURNING pg_notify($3::text, $4::text)
)
SELECT min(id)::text AS first, count(*)::int AS n,
  CASE WHEN max(id) - min(id) + 1 = count(*) THEN NULL ELSE array_agg(id ORDER BY id)::text[] END AS ids
FROM appended`,

    reserve: `
WITH ${dueRetries('ctid')},
${retriedWhere('SELECT ctid FROM due')},
${freshWhere(`SELECT ctid FROM ${t} WHERE id > $8::bigint ORDER BY id LIMIT ${freshLimit} FOR UPDATE SKIP LOCKED`)},
${takenAndLeased}`,

    // The window keeps the prefix that fits (the first row always); rows locked but not chosen
    // are neither deleted nor leased: their row locks end with the statement.
    reserveWithin: `
WITH ${dueRetries('ctid, id, visible_at, octet_length(payload) AS bytes')},
waiting AS (
  SELECT ctid, id, octet_length(payload) AS bytes FROM ${t} WHERE id > $8::bigint
  ORDER BY id LIMIT ${freshLimit} FOR UPDATE SKIP LOCKED
),
chosen AS (
  SELECT retry, id, ctid FROM (
    SELECT retry, id, ctid, row_number() OVER w AS n, sum(bytes) OVER w AS running
    FROM (
      SELECT true AS retry, visible_at, id, ctid, bytes FROM due
      UNION ALL SELECT false, NULL, id, ctid, bytes FROM waiting
    ) candidates
    WINDOW w AS (ORDER BY retry DESC, visible_at, id ROWS UNBOUNDED PRECEDING)
  ) ranked
  WHERE n = 1 OR running <= $11::bigint
),
${retriedWhere('SELECT ctid FROM chosen WHERE retry')},
${freshWhere('SELECT ctid FROM chosen WHERE NOT retry')},
${takenAndLeased}`,

    ackAll: `
DELETE FROM ${leases}
WHERE ${LEASE} AND records - coalesce(cardinality(settled), 0) <= $3::int`,

    ack: `
WITH ${settling()},
lost AS (
  DELETE FROM ${retry} WHERE NOT EXISTS (SELECT 1 FROM lease) AND id = ANY ($3::bigint[])
  RETURNING 1
),
${adjustWaiting('-', 'lost', '$4')}
SELECT (SELECT count(*) FROM lease)::int AS leased`,

    release: `
WITH ${settling()},
moved AS (
  INSERT INTO ${retry} (id, payload, attempts, deliveries, visible_at)
  SELECT id, payload, attempts + 1, deliveries, $5::bigint FROM batch
  ON CONFLICT (id) DO NOTHING
  RETURNING 1
),
${adjustWaiting('+', 'moved', '$4')}
SELECT count(*)::int AS n FROM moved`,

    setAside: `
WITH ${settling(', $4::text[]')},
moved AS (
  INSERT INTO ${unreadable} (id, payload, reason)
  SELECT id, payload, reason FROM batch JOIN settling USING (id)
  ON CONFLICT (id) DO NOTHING
  RETURNING 1
)
SELECT count(*)::int AS n FROM moved`,

    renew: `UPDATE ${leases} SET until = $3::bigint WHERE holder_key = $1::bigint AND seq = ANY ($2::int[])`,

    // A positive holder_key is held as a session advisory lock while its holder lives (see
    // PostgresSession): if we can take it, the holder is gone.
    recover: endLeases(
      'until <= $1::bigint OR (holder_key > 0 AND holder_key <> $2::bigint AND pg_try_advisory_xact_lock(holder_key))',
      'coalesce(u.deliveries, 1)',
      '$1',
      '$3',
      'pg_notify($4::text, $5::text)',
    ),

    // Closing returns what it holds unprocessed: not a delivery that ended badly.
    giveBack: endLeases(
      'holder_key = $1::bigint',
      'greatest(coalesce(u.deliveries, 1) - 1, coalesce(u.attempts, 0))',
      '$3',
      '$2',
      '1',
    ),

    size: `SELECT greatest(coalesce(sum(waiting), 0), 0)::text AS n FROM ${meta}`,

    leasedElsewhere: `
SELECT coalesce(sum(records - coalesce(cardinality(settled), 0)), 0)::text AS n
FROM ${leases} WHERE holder_key <> $1::bigint`,

    scope: `
SELECT (SELECT scope::text FROM ${meta} ORDER BY stripe LIMIT 1) AS scope,
  to_regclass($1::text)::oid::text AS oid`,

    tables: { records: t, retries: retry, leases, unreadable, meta },
  };
}

/**
 * The names statements are prepared under (`<prefix>_<key>`), by text: every statement but the
 * DDL, which runs once.
 */
export function preparedNames(sql: Statements, prefix: string): Map<string, string> {
  return new Map(
    Object.entries(sql)
      .filter(([key, text]) => typeof text === 'string' && key !== 'ddl' && key !== 'migrate')
      .map(([key, text]) => [text as string, `${prefix}_${key}`]),
  );
}

/**
 * The store's id scope, `pg:<scope>:<oid>`: the UUID made when the tables were created, and the
 * table's OID (see `PostgresStorage.idScope`).
 *
 * @throws StorageError (as a rejection) when the tables are missing: run `migrate()`.
 */
export async function readIdScope(
  pool: PostgresPool,
  sql: Statements,
  table: string,
): Promise<string> {
  const result = await pool.query<{ scope: string | null; oid: string | null }>(
    'reserve',
    sql.scope,
    [table],
  );
  const { scope, oid } = result.rows[0] ?? { scope: null, oid: null };
  if (scope === null || oid === null) {
    throw new StorageError(
      `PostgreSQL reserve failed: ${sql.tables.meta} is empty or ${table} is missing; run migrate()`,
    );
  }
  return `pg:${scope}:${oid}`;
}
