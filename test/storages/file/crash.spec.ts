import { afterAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { removeDir, tempDir } from './file-test-support.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHILD = path.join(ROOT, 'dist/test/fixtures/file/crash-child.js');
const ROUNDS = 8;

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Run {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Runs the child; with `killAfterMs`, SIGKILLs it after that long. */
function runChild(args: string[], killAfterMs?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer =
      killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

let directory = '';
afterAll(async () => {
  if (directory) await removeDir(directory);
});

describe('FileStorage under SIGKILL', () => {
  it('loses no acknowledged record across random kills, and drains them all after', async () => {
    const seed = Number(process.env.BUFIO_CRASH_SEED ?? Date.now() % 1_000_000);
    console.log(`crash test seed: ${seed} (replay with BUFIO_CRASH_SEED=${seed})`);
    const rand = random(seed);
    directory = await tempDir('crash');
    const journal = path.join(directory, 'journal');
    const processedLog = path.join(directory, 'processed.log');

    const acknowledged = new Set<number>();
    const kills: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const killAfter = Math.round(250 + rand() * 750);
      const durability = round % 3 === 2 ? 'none' : 'fsync';
      const run = await runChild(
        ['produce', journal, processedLog, String(round * 10_000_000), durability],
        killAfter,
      );
      expect(run.signal).toBe('SIGKILL');
      expect(run.stderr).not.toMatch(/bufio error|Error/);
      // A line cut by the kill is not a complete id: only count lines ended by a newline.
      const lines = run.stdout.split('\n').slice(0, -1);
      for (const line of lines) acknowledged.add(Number(line));
      kills.push(
        `round ${round}: ${durability}, killed after ${killAfter} ms, ${lines.length} acked`,
      );
    }
    console.log(kills.join('\n'));

    const drainStarted = Date.now();
    const drain = await runChild(['drain', journal, processedLog]);
    console.log(`drain took ${Date.now() - drainStarted} ms: ${drain.stdout.trim()}`);
    expect(drain.stderr).toBe('');
    expect(drain.code).toBe(0);
    const summary = JSON.parse(drain.stdout) as {
      recovered: number;
      summary: { remaining: number; timedOut: boolean };
    };
    expect(summary.summary).toMatchObject({ remaining: 0, timedOut: false });

    const processed = new Map<number, number>();
    for (const line of (await fs.readFile(processedLog, 'utf8')).split('\n')) {
      if (line === '') continue;
      const id = Number(line);
      processed.set(id, (processed.get(id) ?? 0) + 1);
    }
    const lost = [...acknowledged].filter((id) => !processed.has(id));
    const duplicates = [...processed.values()].filter((count) => count > 1).length;
    console.log(
      `acknowledged ${acknowledged.size}, processed ${processed.size} distinct, ` +
        `${duplicates} processed more than once, ${lost.length} lost; drain recovered ${summary.recovered}`,
    );
    expect(acknowledged.size).toBeGreaterThan(ROUNDS * 100);
    expect(lost).toEqual([]);
    // Every processed id was pushed by some round (no record made up or mangled).
    for (const id of processed.keys()) {
      expect(Number.isSafeInteger(id) && id % 10_000_000 < 5_000_000).toBe(true);
    }

    // The drain left the journal empty: a new open finds nothing to do.
    const after = await FileStorage.open<unknown>({ directory: journal });
    expect(after.size()).toBe(0);
    await after.close();
  }, 60_000);
});
