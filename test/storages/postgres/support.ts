import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { POSTGRES_URL } from '../../support/services.js';

export { POSTGRES_URL };

/** Distinguishes this run's tables from other runs' and other jest workers'. */
export const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;

let tableCount = 0;

/** A table name no other test, worker or run uses: `bufio_<tag>_<run>_<n>`. */
export function uniqueTable(tag: string): string {
  return `bufio_${tag}_${RUN_ID}_${++tableCount}`;
}

/** A small pool for the test's own statements (setup, checks, pg_terminate_backend). */
export function adminPool(): pg.Pool {
  const pool = new pg.Pool({
    connectionString: POSTGRES_URL,
    max: 3,
    application_name: `bufio-test-admin-${RUN_ID}`,
  });
  pool.on('error', () => undefined);
  return pool;
}

export async function dropTables(admin: pg.Pool, tables: Iterable<string>): Promise<void> {
  for (const table of tables) await admin.query(`DROP TABLE IF EXISTS "${table}"`);
}

/** Terminates every backend whose application_name is `name`; returns how many. */
export async function terminateBackends(admin: pg.Pool, name: string): Promise<number> {
  const result = await admin.query<{ ok: boolean }>(
    'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  return result.rows.filter((row) => row.ok).length;
}

export async function countRows(admin: pg.Pool, table: string): Promise<number> {
  const result = await admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${table}"`);
  return Number(result.rows[0]?.n);
}

/** mulberry32: a small seeded generator, so a failing kill schedule can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 50 ms until it holds, or fails with `what` after `timeout` ms. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeout = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A fixture program running as a child process, with its stdout as lines. */
export interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  readonly stderr: string[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Resolves with the first line matching `pattern`, or rejects on exit or after `timeout`. */
  waitForLine(pattern: RegExp, timeout?: number): Promise<string>;
}

const running = new Set<ChildProcess>();

/** SIGKILLs every fixture still running (for afterAll, so a failed test leaves no process behind). */
export function killFixtures(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** Runs `dist/test/fixtures/postgres/<name>.js` with `env` added to this process's environment. */
export function spawnFixture(name: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, [`dist/test/fixtures/postgres/${name}.js`], {
    env: { ...process.env, NODE_OPTIONS: '', BUFIO_TEST_POSTGRES_URL: POSTGRES_URL, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  const watchers = new Set<() => void>();
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const watcher of watchers) watcher();
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    stderr.push(line);
  });
  let closed = false;
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      running.delete(child);
      closed = true;
      for (const watcher of watchers) watcher();
      resolve(code);
    });
  });
  return {
    process: child,
    lines,
    stderr,
    exited,
    waitForLine(pattern, timeout = 15_000) {
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeout} ms`));
        }, timeout);
        const check = (): void => {
          const found = lines.find((line) => pattern.test(line));
          if (found !== undefined || closed) {
            watchers.delete(check);
            clearTimeout(timer);
            if (found !== undefined) resolve(found);
            else
              reject(
                new Error(
                  `${name} exited before printing ${pattern}; stderr:\n${stderr.join('\n')}`,
                ),
              );
          }
        };
        watchers.add(check);
        check();
      });
    },
  };
}
