import type pg from 'pg';
import { InvalidOptionsError } from '../../core/errors.js';
import { OptionChecker } from '../../core/options.js';
import { jsonSerializer, type Serializer } from './serializer.js';
import { parseTableName, type TableName } from './table-name.js';

/** What `append` does while PostgreSQL cannot be reached. */
export type OnUnavailablePolicy = 'reject' | 'block';

/** Options of `PostgresStorage`. Pass exactly one of `pool` and `connectionString`. */
export interface PostgresStorageOptions<T> {
  /**
   * A pool you own: the storage uses it and leaves it open on `close()`. The storage listens to
   * its `error` event while open, so an idle connection that dies cannot crash the process.
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
   * Create the table (and its indexes) if it is missing, before the first operation. Default
   * false: call `migrate()` yourself, or create it from `migrationSql()` in your own migrations.
   */
  createTable?: boolean;
  /**
   * How long a reserved batch stays leased to this process without being renewed, in ms. While the
   * process lives it renews its leases every third of this, so a worker call may run longer; if
   * the process dies, other processes take its records back this long after. Default 30000.
   */
  leaseTimeout?: number;
  /** Largest serialized record, in UTF-8 bytes; larger ones are refused. Default 1 MiB. */
  maxRecordBytes?: number;
  /** How records become text and back. Default: JSON (see `jsonSerializer`). */
  serializer?: Serializer<T>;
  /**
   * While PostgreSQL cannot be reached, `'reject'` (default) fails `append` at once with
   * `StorageUnavailableError`; `'block'` keeps retrying it for up to `unavailableTimeout` ms and
   * rejects only then.
   */
  onUnavailable?: OnUnavailablePolicy;
  /** With `onUnavailable: 'block'`, the longest an `append` waits for PostgreSQL, in ms. Default 10000. */
  unavailableTimeout?: number;
  /**
   * Receives errors that no call can return: an idle pooled connection that failed (PostgreSQL
   * restarted, `pg_terminate_backend`), a failed lease renewal, a stored record that could not be
   * deserialized and was set aside. Default: `process.emitWarning`.
   */
  onError?: (error: Error) => void;
}

/** The options with defaults applied and every value checked. */
export interface ResolvedPostgresOptions<T> {
  readonly pool: pg.Pool | undefined;
  readonly connectionString: string | undefined;
  readonly poolConfig: Omit<pg.PoolConfig, 'connectionString'>;
  readonly table: TableName;
  readonly createTable: boolean;
  readonly leaseTimeout: number;
  readonly maxRecordBytes: number;
  readonly serializer: Serializer<T>;
  /** Whether `serializer` is the default, whose output needs no text-safety check. */
  readonly trustedSerializer: boolean;
  readonly onUnavailable: OnUnavailablePolicy;
  readonly unavailableTimeout: number;
  readonly onError: (error: Error) => void;
}

export const POSTGRES_DEFAULTS = {
  table: 'bufio_records',
  leaseTimeout: 30_000,
  maxRecordBytes: 1024 * 1024,
  unavailableTimeout: 10_000,
  onUnavailable: 'reject',
} as const;

const KNOWN_OPTIONS = new Set<string>([
  'pool',
  'connectionString',
  'poolConfig',
  'table',
  'createTable',
  'leaseTimeout',
  'maxRecordBytes',
  'serializer',
  'onUnavailable',
  'unavailableTimeout',
  'onError',
]);

const CONTEXT = 'PostgresStorage';
// Below this a lease would need renewing faster than a round trip can be relied on.
const MIN_LEASE_TIMEOUT = 50;
const MAX_TIMER_DELAY = 2_147_483_647;
// PostgreSQL's own limit on a text value.
const MAX_TEXT_BYTES = 1024 * 1024 * 1024 - 1;

/**
 * Applies defaults and validates every option, throwing `InvalidOptionsError` that names the
 * option, the value and what is allowed.
 */
export function resolvePostgresOptions<T>(
  options: PostgresStorageOptions<T>,
): ResolvedPostgresOptions<T> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'an object', CONTEXT);
  }
  const check = new OptionChecker(CONTEXT);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      check.fail(key, (options as Record<string, unknown>)[key], 'no such option');
    }
  }
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
  if (options.createTable !== undefined && typeof options.createTable !== 'boolean') {
    check.fail('createTable', options.createTable, 'a boolean');
  }
  const serializer = options.serializer;
  if (
    serializer !== undefined &&
    (serializer === null ||
      typeof serializer !== 'object' ||
      typeof serializer.serialize !== 'function' ||
      typeof serializer.deserialize !== 'function')
  ) {
    check.fail(
      'serializer',
      serializer,
      'an object with serialize(record) and deserialize(text) methods',
    );
  }
  const onUnavailable = check.oneOf<OnUnavailablePolicy>(
    'onUnavailable',
    options.onUnavailable,
    POSTGRES_DEFAULTS.onUnavailable,
    ['reject', 'block'],
  );
  const unavailableTimeout = check.number(
    'unavailableTimeout',
    options.unavailableTimeout,
    POSTGRES_DEFAULTS.unavailableTimeout,
    0,
    MAX_TIMER_DELAY,
  );
  if (options.unavailableTimeout !== undefined && onUnavailable !== 'block') {
    check.fail(
      'unavailableTimeout',
      options.unavailableTimeout,
      "no unavailableTimeout unless onUnavailable is 'block'",
    );
  }
  const maxRecordBytes = check.integer(
    'maxRecordBytes',
    options.maxRecordBytes,
    POSTGRES_DEFAULTS.maxRecordBytes,
    1,
  );
  if (maxRecordBytes > MAX_TEXT_BYTES) {
    check.fail(
      'maxRecordBytes',
      maxRecordBytes,
      `at most ${MAX_TEXT_BYTES} (PostgreSQL's limit on a text value)`,
    );
  }
  return {
    pool,
    connectionString,
    poolConfig: poolConfig ?? {},
    table,
    createTable: options.createTable ?? false,
    leaseTimeout: check.number(
      'leaseTimeout',
      options.leaseTimeout,
      POSTGRES_DEFAULTS.leaseTimeout,
      MIN_LEASE_TIMEOUT,
      MAX_TIMER_DELAY,
    ),
    maxRecordBytes,
    serializer: serializer ?? jsonSerializer<T>(),
    trustedSerializer: serializer === undefined || serializer === jsonSerializer(),
    onUnavailable,
    unavailableTimeout,
    onError: check.optionalFunction('onError', options.onError) ?? warn,
  };
}

// Duck-typed rather than `instanceof pg.Pool`: an application may load its own copy of pg.
function isPool(value: unknown): value is pg.Pool {
  if (value === null || typeof value !== 'object') return false;
  const pool = value as Record<string, unknown>;
  return ['query', 'connect', 'on', 'off'].every((m) => typeof pool[m] === 'function');
}

function warn(error: Error): void {
  process.emitWarning(error.message, {
    type: 'BufIOWarning',
    code: (error as { code?: string }).code,
  });
}
