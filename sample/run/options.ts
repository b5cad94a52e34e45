import { parseArgs } from 'node:util';
import { SETTINGS, STORAGES } from '../settings.js';

/** What `npm run sample -- ...` was asked for. */
export interface RunOptions {
  readonly help: boolean;
}

/** A command line the sample cannot run with. */
export class UsageError extends Error {}

export const HELP = `Usage: npm run sample -- [options]

Boots the NestJS sample app (BufIOModule on ${SETTINGS.storage.default} storage, a @BufferWorker
writing batches to SQLite), sends it events over HTTP, shuts it down with SIGTERM, and checks that
every accepted event reached the database.

Options (each also read from its environment variable, through ConfigService):
  -n, --count <n>         events to send             ${SETTINGS.count.env}, default ${SETTINGS.count.default}
  -b, --batch-size <n>    records per batch          ${SETTINGS.batchSize.env}, default ${SETTINGS.batchSize.default}
  -i, --interval <ms>     flush interval             ${SETTINGS.flushInterval.env}, default ${SETTINGS.flushInterval.default}
  -s, --storage <kind>    where records wait: ${STORAGES.join(', ')}
                                                     ${SETTINGS.storage.env}, default ${SETTINGS.storage.default}
      --file-dir <path>   journal directory of the file storage (records an earlier
                          run left there are written too)
                                                     ${SETTINGS.fileDir.env}, default ${SETTINGS.fileDir.default}
  -c, --concurrency <n>   HTTP requests in flight    ${SETTINGS.concurrency.env}, default ${SETTINGS.concurrency.default}
  -p, --per-request <n>   events per POST            ${SETTINGS.perRequest.env}, default ${SETTINGS.perRequest.default}
  -d, --write-delay <ms>  simulated latency of each database write
                                                     ${SETTINGS.writeDelay.env}, default ${SETTINGS.writeDelay.default}
      --db <path>         SQLite file, replaced by each run
                                                     ${SETTINGS.dbPath.env}, default ${SETTINGS.dbPath.default}
  -h, --help              show this help

While it runs, the app also serves GET /metrics (Prometheus) and GET /health (terminus).

Examples: npm run sample -- --count 50000 --batch-size 1000 --interval 250
          npm run sample -- --storage file   (records wait in a journal on disk)`;

const FLAGS = {
  count: { short: 'n', env: SETTINGS.count.env },
  'batch-size': { short: 'b', env: SETTINGS.batchSize.env },
  interval: { short: 'i', env: SETTINGS.flushInterval.env },
  storage: { short: 's', env: SETTINGS.storage.env },
  'file-dir': { short: undefined, env: SETTINGS.fileDir.env },
  concurrency: { short: 'c', env: SETTINGS.concurrency.env },
  'per-request': { short: 'p', env: SETTINGS.perRequest.env },
  'write-delay': { short: 'd', env: SETTINGS.writeDelay.env },
  db: { short: undefined, env: SETTINGS.dbPath.env },
} as const;

/**
 * Reads the command line into environment variables, which the app then reads through
 * `ConfigService` like any setting: a flag wins over the variable. Values are checked by whoever
 * uses them (an invalid batch size is BufIOModule's to refuse, at boot).
 *
 * @throws UsageError for an unknown flag or a missing value.
 */
export function applyCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): RunOptions {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, flag] of Object.entries(FLAGS)) {
    options[name] = flag.short ? { type: 'string', short: flag.short } : { type: 'string' };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = values[name];
    if (typeof value === 'string') env[flag.env] = value;
  }
  return { help: values.help === true };
}
