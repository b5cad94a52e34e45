import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A fixture program from `test/fixtures/redis`, run from `dist`, with its stdout in lines. */
export interface Child {
  readonly process: ChildProcess;
  /** Complete stdout lines so far (a line cut by SIGKILL is left out). */
  readonly lines: string[];
  readonly stderr: string[];
  readonly exited: Promise<number | null>;
  /** Resolves when a line satisfies `test`, or rejects after `timeoutMs`. */
  waitFor(test: (line: string) => boolean, timeoutMs: number): Promise<string>;
}

/** Starts `dist/test/fixtures/redis/<name>.js` with one JSON argument. */
export function startFixture(name: string, config: unknown): Child {
  const child = spawn(
    process.execPath,
    [`${ROOT}dist/test/fixtures/redis/${name}.js`, JSON.stringify(config)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  const stderr: string[] = [];
  const watchers = new Set<() => void>();
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const watch of [...watchers]) watch();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => resolve(code)),
  );
  return {
    process: child,
    lines,
    stderr,
    exited,
    waitFor(test, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const line = lines[seen] as string;
            if (test(line)) {
              done();
              resolve(line);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${name}: no matching line within ${timeoutMs} ms; stderr: ${stderr.join('').slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
        void exited.then(() => {
          if (watchers.has(check)) {
            check();
            if (watchers.has(check)) {
              done();
              reject(new Error(`${name} exited; stderr: ${stderr.join('').slice(-2000)}`));
            }
          }
        });
      });
    },
  };
}

/** Ids listed on lines starting with `tag` (`P id id ...`). */
export function idsOf(lines: readonly string[], tag: string): string[] {
  const ids: string[] = [];
  for (const line of lines) {
    if (line.startsWith(`${tag} `)) ids.push(...line.slice(tag.length + 1).split(' '));
  }
  return ids;
}

/** A small seeded PRNG (mulberry32), so that a failing random schedule can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
