import type pg from 'pg';
import {
  SERVER_OPTION_NAMES,
  StorageOptionChecker,
  type ResolvedServerStorageOptions,
  type ServerStorageOptions,
} from '../storage-options.js';
import { parseTableName, type TableName } from './table-name.js';

/**
 * Options of `PostgresStorage`. Pass exactly one of `pool` and `connectionString`. The others shared
 * by the durable storages (`serializer`, `maxRecordBytes`, `onError`, `leaseTimeout`,
 * `onUnavailable`, `unavailableTimeout`) mean the same as for each; here, `onError` also receives
 * the failure of an idle pooled connection or of the instance's own session connection
 * (PostgreSQL restarted, `pg_terminate_backend`), and a record that cannot be deserialized is
 * moved to the table `<table>_unreadable`.
 */
export interface PostgresStorageOptions<T> extends ServerStorageOptions<T> {
  /**
   * A pool you own: the storage uses it and leaves it open on `close()`. The storage listens to
   * its `error` event while open, so an idle connection that dies cannot crash the process. Its
   * statements are prepared on the pool's connections (named `bufio_…`). An instance that
   * reserves also opens one connection of its own with the pool's settings (`pool.options`), for
   * its presence lock and `LISTEN`.
   */
  pool?: pg.Pool;
  /**
   * Where to connect (`postgres://user@host:5432/db`): the storage creates its own pool and ends
   * it on `close()`.
   */
  connectionString?: string;
  /**
   * Settings of the pool the storage creates from `connectionString` (not with `pool`). Defaults:
   * `application_name: 'bufio'`, `max: 10`, `connectionTimeoutMillis: 10000`,
   * `query_timeout: 30000`, `keepAlive: true`; what you pass wins.
   */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString'>;
  /**
   * The table, `name` or `schema.name`: ASCII letters, digits and `_`, not starting with a digit.
   * Quoted in SQL, so case-sensitive. Default `bufio_records`.
   */
  table?: string;
  /**
   * Create the tables (and convert a 0.2 table) if needed, before the first operation. Default
   * false: call `migrate()` yourself, or run `migrationSql()` in your own migrations.
   */
  createTable?: boolean;
}

/** The options with defaults applied and every value checked. */
export interface ResolvedPostgresOptions<T> extends ResolvedServerStorageOptions<T> {
  readonly pool: pg.Pool | undefined;
  readonly connectionString: string | undefined;
  readonly poolConfig: Omit<pg.PoolConfig, 'connectionString'>;
  readonly table: TableName;
  readonly createTable: boolean;
}

export const POSTGRES_DEFAULTS = {
  table: 'bufio_records',
} as const;

const KNOWN_OPTIONS = new Set<string>([
  'pool',
  'connectionString',
  'poolConfig',
  'table',
  'createTable',
  ...SERVER_OPTION_NAMES,
]);

const CONTEXT = 'PostgresStorage';
// PostgreSQL's own limit on a text value.
const MAX_TEXT_BYTES = 1024 * 1024 * 1024 - 1;

/**
 * Applies defaults and validates every option, throwing `InvalidOptionsError` that names the
 * option, the value and what is allowed.
 */
export function resolvePostgresOptions<T>(
  options: PostgresStorageOptions<T>,
): ResolvedPostgresOptions<T> {
  const check: StorageOptionChecker = new StorageOptionChecker(CONTEXT);
  check.known(options, KNOWN_OPTIONS);
  const { pool, connectionString, poolConfig } = options;
  if ((pool === undefined) === (connectionString === undefined)) {
    check.fail(
      pool === undefined ? 'connectionString' : 'pool',
      pool ?? connectionString,
      'exactly one of "pool" (a pg.Pool) and "connectionString" (a string)',
    );
  }
  if (pool !== undefined && !isPool(pool)) {
    check.fail('pool', pool, 'a pg.Pool (an object with query, connect, on and off methods)');
  }
  if (connectionString !== undefined) {
    if (typeof connectionString !== 'string' || connectionString.trim() === '') {
      check.fail('connectionString', connectionString, 'a non-empty string');
    }
  }
  if (poolConfig !== undefined) {
    if (pool !== undefined) {
      check.fail('poolConfig', poolConfig, 'no poolConfig with "pool": configure your own pool');
    }
    if (poolConfig === null || typeof poolConfig !== 'object') {
      check.fail('poolConfig', poolConfig, 'a pg PoolConfig object');
    }
    if ('connectionString' in poolConfig) {
      check.fail(
        'poolConfig.connectionString',
        poolConfig.connectionString,
        'the top-level "connectionString" option instead',
      );
    }
  }
  const table = parseTableName(
    options.table === undefined ? POSTGRES_DEFAULTS.table : options.table,
    CONTEXT,
  );
  return {
    pool,
    connectionString,
    poolConfig: poolConfig ?? {},
    table,
    createTable: check.boolean('createTable', options.createTable, false),
    ...check.server<T>(options, MAX_TEXT_BYTES, "PostgreSQL's limit on a text value"),
  };
}

// Duck-typed rather than `instanceof pg.Pool`: an application may load its own copy of pg.
function isPool(value: unknown): value is pg.Pool {
  if (value === null || typeof value !== 'object') return false;
  const pool = value as Record<string, unknown>;
  return ['query', 'connect', 'on', 'off'].every((m) => typeof pool[m] === 'function');
}
