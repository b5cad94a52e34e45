import type { INestApplication } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DrainSummary } from '@risemaxi/bufio';
import { BufIOService } from '@risemaxi/bufio/nest';
import { FileStorage } from '@risemaxi/bufio/file';
import { createSampleApp } from './bootstrap.js';
import { EventsRepository } from './events/events.repository.js';
import { applyCommandLine, HELP, UsageError } from './run/options.js';
import { sendLoad } from './run/load.js';
import { formatReport } from './run/report.js';
import { SETTINGS } from './settings.js';

/**
 * `npm run sample`: boots the app, sends it a load over HTTP, shuts it down with SIGTERM and
 * reports what reached the database.
 */
async function main(): Promise<number> {
  const options = applyCommandLine(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const startedAt = performance.now();
  const dbPath = resolve(process.env[SETTINGS.dbPath.env] ?? SETTINGS.dbPath.default);
  process.env[SETTINGS.dbPath.env] = dbPath;
  // A fresh database per run, so that its row count is this run's.
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${dbPath}${suffix}`, { force: true });

  const app = await createSampleApp({ logger: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  const config = app.get(ConfigService);
  const setting = (key: keyof typeof SETTINGS): number => {
    const { env, default: fallback } = SETTINGS[key];
    const value = Number(config.get(env, fallback));
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`${env} must be a whole number >= 1, got ${config.get(env)}`);
    }
    return value;
  };
  const count = setting('count');
  const concurrency = setting('concurrency');
  const perRequest = setting('perRequest');
  const bufio = app.get(BufIOService);
  const events = bufio.get('events');
  // Records an earlier run left in the journal are written by this one, on top of its own.
  const recovered =
    events.storage instanceof FileStorage ? (events.storage.recovery?.records ?? 0) : 0;
  const url = await app.getUrl();
  process.stdout.write(
    `BufIO sample: ${count.toLocaleString('en-US')} events, POST ${url}/events ` +
      `(${concurrency} in flight, ${perRequest} per request) -> buffer "events" ` +
      `(${storageLabel(config.get(SETTINGS.storage.env, SETTINGS.storage.default), config.get(SETTINGS.fileDir.env, SETTINGS.fileDir.default))} storage, batchSize ${config.get(SETTINGS.batchSize.env, SETTINGS.batchSize.default)}, ` +
      `flushInterval ${config.get(SETTINGS.flushInterval.env, SETTINGS.flushInterval.default)} ms) -> SQLite\n`,
  );

  const progress = progressLine(count, () => events.stats());
  const load = await sendLoad({
    url,
    count,
    concurrency,
    perRequest,
    onProgress: progress.update,
    progressEvery: 100,
  });
  progress.done();

  const repo = app.get(EventsRepository);
  let drain: DrainSummary | undefined;
  events.once('drained', (summary) => {
    drain = summary;
  });
  const shutdownAt = performance.now();
  await terminate(app);
  const shutdownMs = performance.now() - shutdownAt;

  // Counted from the file, reopened after the app closed it: what a restart would find.
  const db = new Database(dbPath, { readonly: true });
  const rows = (db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  db.close();
  const report = formatReport({
    load,
    batches: repo.writes,
    rows,
    drain,
    shutdownMs,
    totalMs: performance.now() - startedAt,
    dbPath,
    recovered,
  });
  process.stdout.write(report.lines.join('\n'));
  return report.ok ? 0 : 1;
}

/**
 * Shuts the app down the way an orchestrator does: a real SIGTERM, handled by the hooks that
 * `enableShutdownHooks()` installed (BufIO drains in `beforeApplicationShutdown`). Our own
 * listener joins that same shutdown through `app.close()` (Nest runs one shutdown sequence,
 * however many callers) to learn when it is over, and keeps the process alive when Nest re-sends
 * the signal at the end, so that the report can still be printed.
 */
function terminate(app: INestApplication): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = false;
    process.on('SIGTERM', () => {
      if (received) return; // Nest re-raising the signal after its shutdown: we exit on our own
      received = true;
      app.close().then(resolve, reject);
    });
    process.kill(process.pid, 'SIGTERM');
  });
}

function storageLabel(kind: string, fileDir: string): string {
  return kind === 'file' ? `file (${fileDir})` : kind;
}

/** One progress line, rewritten in place on a terminal; a few plain lines otherwise. */
function progressLine(
  total: number,
  stats: () => { processed: number; buffered: number },
): { update: (sent: number) => void; done: () => void } {
  const tty = process.stdout.isTTY === true;
  const started = performance.now();
  let lastQuarter = 0;
  const render = (sent: number): string => {
    const { processed, buffered } = stats();
    const rate = Math.round((sent * 1000) / Math.max(1, performance.now() - started));
    const pct = Math.floor((100 * sent) / Math.max(1, total));
    return (
      `  sent ${sent.toLocaleString('en-US').padStart(9)} / ${total.toLocaleString('en-US')} (${String(pct).padStart(3)}%)` +
      `  ${rate.toLocaleString('en-US').padStart(7)} events/s  buffered ${buffered.toLocaleString('en-US').padStart(7)}` +
      `  written ${processed.toLocaleString('en-US').padStart(9)}`
    );
  };
  return {
    update: (sent) => {
      if (tty) {
        process.stdout.write(`\r${render(sent)}`);
        return;
      }
      const quarter = Math.floor((4 * sent) / Math.max(1, total));
      if (quarter > lastQuarter) {
        lastQuarter = quarter;
        process.stdout.write(`${render(sent)}\n`);
      }
    },
    done: () => {
      if (tty) process.stdout.write('\n');
    },
  };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage = error instanceof UsageError;
    process.stderr.write(
      `${usage ? 'usage error' : 'error'}: ${error instanceof Error ? error.message : String(error)}\n` +
        (usage ? 'Run `npm run sample -- --help` for the options.\n' : ''),
    );
    process.exitCode = usage ? 2 : 1;
  },
);
