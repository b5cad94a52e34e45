import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import Database from 'better-sqlite3';
import { createSampleApp } from '../../sample/bootstrap.js';

/** The repository's root, where `dist/` is. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A temporary directory for one test file's databases; `remove()` deletes it. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `bufio-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Rows in the sample's events table, read from the file. */
export function countRows(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A child process with its output collected. */
export interface Child {
  readonly process: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves when it exits, with its code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `node <script> ...args` from the repository root. */
export function runNode(script: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result: Child = {
    process: child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    }),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    result.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    result.stderr += chunk.toString();
  });
  return result;
}

/** Waits until `pattern` appears in the child's stdout; fails if it exits first. */
export async function waitForOutput(
  child: Child,
  pattern: RegExp,
  timeoutMs = 15_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = child.stdout.match(pattern);
    if (match) return match;
    if (child.process.exitCode !== null || child.process.signalCode !== null) {
      throw new Error(
        `the process exited before printing ${pattern}:\n${child.stdout}\n${child.stderr}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${child.stdout}\n${child.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Boots the sample app in this process for the tests of one file, on an ephemeral port, with
 * nothing flushing on its own (a batch of 1000, a ten-minute interval), and closes it after them.
 */
export function useSampleApp(label: string): {
  app(): INestApplication;
  url(path: string): string;
} {
  const dir = tempDir(label);
  const saved = { ...process.env };
  let app: INestApplication | undefined;
  let base = '';
  beforeAll(async () => {
    Object.assign(process.env, {
      BUFIO_DB_PATH: join(dir.path, 'events.db'),
      BUFIO_BATCH_SIZE: '1000',
      BUFIO_FLUSH_INTERVAL: '600000',
    });
    app = await createSampleApp({ logger: false, shutdownHooks: false });
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });
  afterAll(async () => {
    await app?.close();
    process.env = saved;
    dir.remove();
  });
  return {
    app: () => app as INestApplication,
    url: (path) => `${base}${path}`,
  };
}
