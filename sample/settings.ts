/**
 * The sample's settings: environment variables read through `ConfigService`, as in a real app.
 * `npm run sample -- --batch-size 200` sets `BUFIO_BATCH_SIZE=200` before the app boots.
 */
export const SETTINGS = {
  /** Records per batch, at most (the buffer's `batchSize`). */
  batchSize: { env: 'BUFIO_BATCH_SIZE', default: 500 },
  /** Longest a record waits before its batch is written, in ms (`flushInterval`). */
  flushInterval: { env: 'BUFIO_FLUSH_INTERVAL', default: 1000 },
  /** How long the drain may take at shutdown, in ms (`shutdownTimeout`). */
  shutdownTimeout: { env: 'BUFIO_SHUTDOWN_TIMEOUT', default: 10_000 },
  /** Where records wait: `memory` (lost on a crash) or `file` (a journal in `fileDir`). */
  storage: { env: 'BUFIO_STORAGE', default: 'memory' },
  /** The journal directory of the `file` storage. */
  fileDir: { env: 'BUFIO_FILE_DIR', default: '.bufio-data/events-journal' },
  /** The SQLite database the worker writes to. */
  dbPath: { env: 'BUFIO_DB_PATH', default: '.bufio-data/sample.db' },
  /** Simulated latency of each database write, in ms: shows batching against a slower store. */
  writeDelay: { env: 'SAMPLE_WRITE_DELAY_MS', default: 0 },
  /** HTTP port of `sample/server.ts` (0: any free port). */
  port: { env: 'PORT', default: 3000 },
  /** Events the load script sends. */
  count: { env: 'SAMPLE_COUNT', default: 20_000 },
  /** HTTP requests the load script keeps in flight. */
  concurrency: { env: 'SAMPLE_CONCURRENCY', default: 32 },
  /** Events per POST the load script sends (1: one event per request). */
  perRequest: { env: 'SAMPLE_PER_REQUEST', default: 1 },
} as const;

/** Storages the sample can run on: those that exist in `lib/storages/`. */
export const STORAGES = ['memory', 'file'] as const;
