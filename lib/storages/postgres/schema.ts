import type { TableName } from './table-name.js';

/** Counter rows in `T_meta`: statements pick one, so that concurrent ones rarely share a row. */
export const STRIPES = 16;

/**
 * The tables and index (the layout is described in statements.ts), created if missing, in one
 * `DO` block. A table of the 0.2 layout (one table with `attempts`, `visible_at`, `lease_holder`,
 * `lease_until`) is converted in place: released and leased records move to `T_retry` (a lease
 * taken by a 0.2 process counts as a delivery, since it is broken), records 0.2 set aside move to
 * `T_unreadable`, the old indexes and columns go, and the counters start from the records found.
 * Idempotent, and cheap once done.
 */
export function schemaDdl(table: TableName): string {
  const t = table.quoted;
  const retry = table.sibling('_retry');
  const leases = table.sibling('_leases');
  const unreadable = table.sibling('_unreadable');
  const meta = table.sibling('_meta');
  // For to_regclass: the quoted name, as a SQL string literal (it holds no single quote).
  const literal = (name: string): string => `'${name}'`;
  // Queue tables churn: vacuum them after a fixed number of dead rows, not a share of the table.
  const vacuum = 'autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000';
  return `DO $bufio$
DECLARE
  upgrading boolean := EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass(${literal(t)}) AND attname = 'lease_until' AND NOT attisdropped);
  counting boolean := to_regclass(${literal(meta)}) IS NULL;
BEGIN
  IF to_regclass(${literal(t)}) IS NULL THEN
    CREATE TABLE ${t} (id bigserial PRIMARY KEY, payload text NOT NULL) WITH (${vacuum});
  END IF;
  IF to_regclass(${literal(retry)}) IS NULL THEN
    CREATE TABLE ${retry} (
      id bigint NOT NULL,
      payload text NOT NULL,
      attempts integer NOT NULL,
      deliveries integer NOT NULL,
      visible_at bigint NOT NULL,
      CONSTRAINT ${table.derived('_retry_pkey')} PRIMARY KEY (id)
    ) WITH (${vacuum});
    CREATE INDEX ${table.derived('_retry_due')} ON ${retry} (visible_at, id);
  END IF;
  IF to_regclass(${literal(leases)}) IS NULL THEN
    CREATE TABLE ${leases} (
      holder_key bigint NOT NULL,
      seq integer NOT NULL,
      holder text NOT NULL,
      until bigint NOT NULL,
      records integer NOT NULL,
      ids bigint[] NOT NULL,
      payloads text[] NOT NULL,
      attempts integer[],
      deliveries integer[],
      settled bigint[],
      CONSTRAINT ${table.derived('_leases_pkey')} PRIMARY KEY (holder_key, seq)
    );
    BEGIN
      -- lz4 compresses a batch several times faster than the default pglz; servers built
      -- without it (or before PostgreSQL 14) keep the default.
      EXECUTE 'ALTER TABLE ${leases} ALTER COLUMN ids SET COMPRESSION lz4, '
        'ALTER COLUMN payloads SET COMPRESSION lz4, ALTER COLUMN attempts SET COMPRESSION lz4, '
        'ALTER COLUMN deliveries SET COMPRESSION lz4';
    EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
      NULL;
    END;
  END IF;
  IF to_regclass(${literal(unreadable)}) IS NULL THEN
    CREATE TABLE ${unreadable} (
      id bigint NOT NULL,
      payload text NOT NULL,
      reason text NOT NULL,
      set_aside_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ${table.derived('_unread_pkey')} PRIMARY KEY (id)
    );
  END IF;
  IF counting THEN
    CREATE TABLE ${meta} (
      stripe smallint NOT NULL,
      waiting bigint NOT NULL,
      scope uuid NOT NULL,
      CONSTRAINT ${table.derived('_meta_pkey')} PRIMARY KEY (stripe)
    );
  END IF;
  IF upgrading THEN
    INSERT INTO ${unreadable} (id, payload, reason)
    SELECT id, payload, 'set aside by bufio 0.2 (lease_holder bufio:undecodable)' FROM ${t}
    WHERE lease_holder = 'bufio:undecodable';
    INSERT INTO ${retry} (id, payload, attempts, deliveries, visible_at)
    SELECT id, payload, attempts, attempts + (lease_until IS NOT NULL)::int,
      CASE WHEN lease_until IS NULL THEN visible_at ELSE 0 END
    FROM ${t}
    WHERE (attempts > 0 OR lease_until IS NOT NULL)
      AND lease_holder IS DISTINCT FROM 'bufio:undecodable';
    DELETE FROM ${t} WHERE attempts > 0 OR lease_until IS NOT NULL;
    DROP INDEX IF EXISTS ${table.sibling('_reserve_idx')};
    DROP INDEX IF EXISTS ${table.sibling('_lease_idx')};
    ALTER TABLE ${t} DROP COLUMN attempts, DROP COLUMN visible_at,
      DROP COLUMN lease_holder, DROP COLUMN lease_until;
    ALTER TABLE ${t} SET (${vacuum});
  END IF;
  IF counting THEN
    INSERT INTO ${meta} (stripe, waiting, scope)
    SELECT g, CASE WHEN g = 0 THEN (SELECT count(*) FROM ${t}) + (SELECT count(*) FROM ${retry}) ELSE 0 END, s
    FROM generate_series(0, ${STRIPES - 1}) AS g, gen_random_uuid() AS s;
  END IF;
END
$bufio$;`;
}
