import pg from 'pg';
import type { ResolvedPostgresOptions } from './postgres-storage-options.js';
import { storageFailure } from './storage-failure.js';

const OWNED_POOL_DEFAULTS: pg.PoolConfig = {
  application_name: 'bufio',
  max: 10,
  connectionTimeoutMillis: 10_000,
  query_timeout: 30_000,
  keepAlive: true,
};

/** What a `PostgresPool` needs from its storage. */
export interface PostgresPoolOptions {
  readonly settings: Pick<
    ResolvedPostgresOptions<unknown>,
    'pool' | 'connectionString' | 'poolConfig'
  >;
  /** The table, for messages. */
  readonly table: string;
  /** Statements run often, by name: each is prepared once per pooled connection (see `query`). */
  readonly prepared: ReadonlyMap<string, string>;
  /** Receives the failure of an idle pooled connection. */
  report(error: Error): void;
}

/**
 * The pool a `PostgresStorage` runs its statements on: the user's (left open on `close()`), or one
 * it creates from `connectionString` (ended on `close()`). Listens to the pool's `error` event
 * while open: without a listener, an idle pooled connection that the server closes (a restart,
 * `pg_terminate_backend`) is an uncaught 'error' event, and the process would crash.
 */
export class PostgresPool {
  /**
   * The settings the pool's clients are made with, for the storage's session connection; undefined
   * for a pool of the user's that does not expose them.
   */
  readonly connection: pg.ClientConfig | undefined;
  private readonly pool: pg.Pool;
  private readonly owned: boolean;
  private readonly onPoolError = (error: Error): void => {
    this.options.report(storageFailure('an idle pooled connection', this.options.table, error));
  };

  constructor(private readonly options: PostgresPoolOptions) {
    const { pool, connectionString, poolConfig } = options.settings;
    if (pool) {
      this.pool = pool;
      this.owned = false;
      // A pool from pg exposes the settings its clients are made with; another kind may not.
      const settings = (pool as { options?: unknown }).options;
      this.connection =
        typeof settings === 'object' && settings ? (settings as pg.ClientConfig) : undefined;
    } else {
      this.connection = { ...OWNED_POOL_DEFAULTS, ...poolConfig, connectionString };
      this.pool = new pg.Pool(this.connection);
      this.owned = true;
    }
    this.pool.on('error', this.onPoolError);
  }

  /** Runs one statement; a failure becomes a `StorageError` naming `operation` and the table. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    operation: string,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    // Named: a statement is parsed and planned once per pooled connection rather than on every
    // call, which matters for a small batch (planning a reserve costs as much as leasing 100
    // records). Behind PgBouncer this needs session pooling, or 1.21+ with prepared statements on.
    const name = this.options.prepared.get(text);
    try {
      return await this.pool.query<R>(name ? { name, text, values } : { text, values });
    } catch (error) {
      throw storageFailure(operation, this.options.table, error);
    }
  }

  /** Ends the pool if the storage created it, and stops listening to it. */
  async close(): Promise<void> {
    try {
      if (this.owned) await this.pool.end();
    } finally {
      this.pool.off('error', this.onPoolError);
    }
  }
}
