import type { TableName } from './table-name.js';

/**
 * The SQL of one storage table. Only the validated, quoted table name is ever written into the
 * text; every value travels as a bind parameter.
 *
 * Columns:
 * - `id`: bigserial, the record id and its order. Returned as text, so ids are exact strings
 *   whatever type parsers the application installed in pg.
 * - `payload`: the serializer's text. `text` rather than `jsonb`: a custom serializer need not
 *   produce JSON, `jsonb` would reorder keys and refuse `\u0000` escapes, and `octet_length`
 *   then measures exactly the serialized bytes for `maxBatchBytes`.
 * - `attempts`: failed attempts so far; 0 marks a fresh record.
 * - `visible_at`: engine clock (epoch ms) before which a released record stays hidden; 0 when fresh.
 * - `lease_holder`, `lease_until`: who leased the record and until when (epoch ms); NULL when
 *   free. A lease whose `lease_until` has passed counts as free.
 */
export interface Statements {
  /** The table and its indexes, `IF NOT EXISTS`. */
  readonly ddl: string;
  /** `ddl`, under an advisory lock. */
  readonly migrate: string;
  /** $1: payloads (text[]). Returns ids in payload order. */
  readonly insert: string;
  /**
   * $1 now (visibility), $2 lease clock, $3 limit, $4 maxBytes or NULL, $5 holder, $6 lease_until.
   */
  readonly reserve: string;
  /** $1 ids. */
  readonly ack: string;
  /** $1 ids, $2 visible_at, $3 holder. */
  readonly release: string;
  /** $1 lease clock. */
  readonly size: string;
  /** $1 lease clock. */
  readonly recover: string;
  /** $1 ids, $2 holder, $3 new lease_until. */
  readonly renew: string;
  /** $1 holder. */
  readonly releaseHolder: string;
  /** $1 ids, $2 quarantine holder, $3 lease_until far in the future. */
  readonly quarantine: string;
}

/** Builds the statements of `table`. */
export function statementsFor(table: TableName, lockKey: string): Statements {
  const t = table.quoted;
  const reserveIndex = table.derived('_reserve_idx');
  const leaseIndex = table.derived('_lease_idx');
  const ddl = `CREATE TABLE IF NOT EXISTS ${t} (
  id bigserial PRIMARY KEY,
  payload text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  visible_at bigint NOT NULL DEFAULT 0,
  lease_holder text,
  lease_until bigint
);
CREATE INDEX IF NOT EXISTS ${reserveIndex} ON ${t} ((attempts = 0), id);
CREATE INDEX IF NOT EXISTS ${leaseIndex} ON ${t} (lease_until) WHERE lease_until IS NOT NULL;`;
  return {
    ddl,
    // One implicit transaction (a multi-statement simple query): the advisory lock serializes
    // instances migrating at once, whose CREATE ... IF NOT EXISTS would otherwise race.
    migrate: `SELECT pg_advisory_xact_lock(hashtext(${lockKey}));\n${ddl}`,

    // Rows are inserted, and take their ids, in ordinality order; RETURNING follows that order.
    insert: `
INSERT INTO ${t} (payload)
SELECT u.payload FROM unnest($1::text[]) WITH ORDINALITY AS u(payload, n) ORDER BY u.n
RETURNING id::text AS id`,

    // Due retries first, then fresh records, each in id order; the window keeps the prefix that
    // fits maxBytes (the first row always), so rows that will not be returned are not leased:
    // their row locks end with the statement.
    reserve: `
WITH candidates AS (
  SELECT id, attempts = 0 AS fresh, octet_length(payload) AS bytes
  FROM ${t}
  WHERE visible_at <= $1::bigint AND (lease_until IS NULL OR lease_until <= $2::bigint)
  ORDER BY attempts = 0, id
  LIMIT $3::int
  FOR UPDATE SKIP LOCKED
), chosen AS (
  SELECT id FROM (
    SELECT id,
      row_number() OVER w AS n,
      sum(bytes) OVER w AS running
    FROM candidates
    WINDOW w AS (ORDER BY fresh, id ROWS UNBOUNDED PRECEDING)
  ) ranked
  WHERE n = 1 OR $4::bigint IS NULL OR running <= $4::bigint
)
UPDATE ${t} AS r SET lease_holder = $5::text, lease_until = $6::bigint
FROM chosen WHERE r.id = chosen.id
RETURNING r.id::text AS id, r.payload, r.attempts`,

    // By id alone: the work is done, so even a copy another holder took after our lease lapsed
    // need not run again.
    ack: `DELETE FROM ${t} WHERE id = ANY($1::bigint[])`,

    // Only while we still hold the lease: a record another holder took since must stay theirs.
    release: `
UPDATE ${t} SET attempts = attempts + 1, visible_at = $2::bigint, lease_holder = NULL, lease_until = NULL
WHERE id = ANY($1::bigint[]) AND lease_holder = $3::text`,

    size: `SELECT count(*)::text AS n FROM ${t} WHERE lease_until IS NULL OR lease_until <= $1::bigint`,

    recover: `
UPDATE ${t} SET lease_holder = NULL, lease_until = NULL
WHERE lease_until <= $1::bigint`,

    renew: `
UPDATE ${t} SET lease_until = $3::bigint
WHERE id = ANY($1::bigint[]) AND lease_holder = $2::text`,

    releaseHolder: `
UPDATE ${t} SET lease_holder = NULL, lease_until = NULL
WHERE lease_until IS NOT NULL AND lease_holder = $1::text`,

    quarantine: `
UPDATE ${t} SET lease_holder = $2::text, lease_until = $3::bigint
WHERE id = ANY($1::bigint[])`,
  };
}
