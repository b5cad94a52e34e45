import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** How a fixture program ended. */
export interface Exit {
  /** The exit code; null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A program from `test/fixtures`, run from `dist` as a child process, its output in lines. */
export interface Fixture {
  readonly process: ChildProcess;
  /** Complete stdout lines so far: a line cut short by a SIGKILL is left out. */
  readonly lines: string[];
  /** Complete stderr lines so far. */
  readonly stderr: string[];
  readonly exited: Promise<Exit>;
  /**
   * Resolves with the first line that matches; rejects, with the end of stderr, when the program
   * exits first or after `timeoutMs`.
   */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
}

/** How to run a fixture. */
export interface FixtureOptions {
  /** Arguments after the script. */
  readonly args?: readonly string[];
  /** Added to this process's environment (`NODE_OPTIONS` is cleared: the child is no jest). */
  readonly env?: Readonly<Record<string, string>>;
  /** A pipe to write to (`process.stdin`), rather than no input. */
  readonly stdin?: boolean;
}

const running = new Set<ChildProcess>();

/**
 * Runs `dist/test/fixtures/<name>.js` (`name` like `'file/lock-child'`). `npm run build` compiles
 * the fixtures; call `killFixtures` in `afterAll` so that a failed test leaves no process behind.
 */
export function startFixture(name: string, options: FixtureOptions = {}): Fixture {
  const child = spawn(
    process.execPath,
    [`${ROOT}dist/test/fixtures/${name}.js`, ...(options.args ?? [])],
    {
      env: { ...process.env, NODE_OPTIONS: '', ...options.env },
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  const watchers = new Set<() => void>();
  const wake = (): void => {
    for (const watch of [...watchers]) watch();
  };
  // readline hands over a last line without its newline at the end: keep only complete ones.
  let partial = '';
  (child.stdout as NodeJS.ReadableStream).setEncoding('utf8');
  (child.stdout as NodeJS.ReadableStream).on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    if (parts.length === 0) return;
    lines.push(...parts);
    wake();
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    stderr.push(line);
  });
  let ended = false;
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      ended = true;
      resolve({ code, signal });
      wake();
    });
  });
  return {
    process: child,
    lines,
    stderr,
    exited,
    waitForLine(match, timeoutMs = 15_000) {
      const test = typeof match === 'function' ? match : (line: string) => match.test(line);
      return new Promise<string>((resolve, reject) => {
        let seen = 0;
        const finish = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        const fail = (why: string): void => {
          finish();
          reject(new Error(`${name}: ${why}; stderr: ${stderr.join('\n').slice(-2000)}`));
        };
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const line = lines[seen]!;
            if (test(line)) {
              finish();
              resolve(line);
              return;
            }
          }
          if (ended) fail(`exited before printing a line matching ${String(match)}`);
        };
        const timer = setTimeout(
          () => fail(`no line matching ${String(match)} within ${timeoutMs} ms`),
          timeoutMs,
        );
        watchers.add(check);
        check();
      });
    },
  };
}

/** Runs a fixture to its end; SIGKILLs it after `killAfterMs` when given. */
export async function runFixture(
  name: string,
  options: FixtureOptions & { readonly killAfterMs?: number } = {},
): Promise<Fixture & Exit> {
  const fixture = startFixture(name, options);
  const timer =
    options.killAfterMs === undefined
      ? undefined
      : setTimeout(() => fixture.process.kill('SIGKILL'), options.killAfterMs);
  const exit = await fixture.exited;
  clearTimeout(timer);
  return Object.assign(fixture, exit);
}

/** SIGKILLs every fixture still running. */
export function killFixtures(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** The words after `tag` on every line that starts with it (`A 1 2 3` gives 1, 2, 3 for `A`). */
export function tagged(lines: readonly string[], tag: string): string[] {
  const words: string[] = [];
  for (const line of lines) {
    if (line.startsWith(`${tag} `)) words.push(...line.slice(tag.length + 1).split(' '));
  }
  return words;
}
