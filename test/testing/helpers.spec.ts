import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DrainTimeoutError, NoWorkerError } from '../../lib/index.js';
import { createTestBuffer, drain, manualTimers } from '../../lib/testing/index.js';
import { recordingWorker } from '../support/workers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('createTestBuffer', () => {
  it('processes records only when asked, in batches of batchSize', async () => {
    const worker = recordingWorker<number>();
    const buffer = createTestBuffer<number>({ worker: worker.work, batchSize: 3 });
    await buffer.push([1, 2, 3, 4, 5, 6, 7]); // more than a batch: still nothing
    await new Promise((r) => setTimeout(r, 5));
    expect(worker.batches).toEqual([]);
    expect(buffer.stats()).toMatchObject({ state: 'created', buffered: 7 });

    await buffer.flush();
    expect(worker.batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('retries failed records at once, so drain() finishes without waiting for backoff', async () => {
    let failures = 2;
    const worker = recordingWorker<number>();
    const buffer = createTestBuffer<number>({
      worker: (records, context) => {
        if (failures-- > 0) throw new Error('flaky');
        return worker.work(records, context);
      },
    });
    await buffer.push([1, 2]);
    const stats = await drain(buffer);
    expect(worker.batches).toEqual([[1, 2]]);
    expect(stats).toMatchObject({ processed: 2, failed: 4, retried: 4, buffered: 0, inFlight: 0 });
  });

  it('keeps a retry delay that is asked for', async () => {
    const buffer = createTestBuffer<number>({
      worker: () => {
        throw new Error('down');
      },
      // A jittered delay of up to ~23 days: below 100 ms with a probability of 5e-8.
      retry: { initialDelay: 2_000_000_000, maxDelay: 2_000_000_000, maxAttempts: 2 },
    });
    await buffer.push(1);
    // The retry waits: drain gives up after its timeout.
    await expect(drain(buffer, { timeout: 50 })).rejects.toThrow(DrainTimeoutError);
    await expect(drain(buffer, { timeout: 50 })).rejects.toThrow(
      'buffer "default" did not drain within 50 ms',
    );
    expect(buffer.stats()).toMatchObject({ failed: 1, retried: 1, buffered: 1 });
  });

  it('refuses wrong options as new BufIO does', () => {
    expect(() => createTestBuffer({ batchSize: 0 })).toThrow(
      'buffer "default": invalid option "batchSize": got 0, expected an integer >= 1',
    );
    expect(() => createTestBuffer(null as never)).toThrow(
      'invalid option "options": got null, expected an object',
    );
  });

  it('resolves pushAndWait callers with their result once drained', async () => {
    const buffer = createTestBuffer<string, string>({
      worker: (records) => records.map((r) => r.toUpperCase()),
    });
    const answer = buffer.pushAndWait('a');
    await drain(buffer);
    await expect(answer).resolves.toBe('A');
  });
});

describe('manualTimers', () => {
  it('fires the flush interval only on tick(), once the buffer is started', async () => {
    const timers = manualTimers();
    const worker = recordingWorker<number>();
    const buffer = createTestBuffer<number>({
      worker: worker.work,
      timers,
      flushInterval: 1000,
      batchSize: 10,
    });
    buffer.start();
    await buffer.push([1, 2]);
    expect(timers.pending).toBe(1);
    expect(timers.delays[0]).toBeGreaterThan(990);
    expect(worker.batches).toEqual([]);

    expect(timers.tick()).toBe(1);
    expect(worker.batches).toEqual([[1, 2]]); // dispatched within tick()
    expect(timers.pending).toBe(0);
    await new Promise((r) => setImmediate(r)); // that worker call finishes: the slot is free

    // The size trigger still works on a started buffer, within push.
    await buffer.push([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(worker.batches).toEqual([
      [1, 2],
      [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    ]);
    await buffer.stop();
    expect(timers.pending).toBe(0);
  });

  it('does not fire a cleared timer', () => {
    const timers = manualTimers();
    let fired = 0;
    const handle = timers.set(() => fired++, 10);
    timers.set(() => fired++, 20);
    timers.clear(handle);
    expect(timers.tick()).toBe(1);
    expect(fired).toBe(1);
    expect(timers.tick()).toBe(0);
  });
});

describe('drain', () => {
  it('lets blocked pushes in and processes them too', async () => {
    const worker = recordingWorker<number>();
    const buffer = createTestBuffer<number>({
      worker: worker.work,
      batchSize: 2,
      maxBufferedRecords: 2,
      onFull: 'block',
    });
    const pushes = [buffer.push([1, 2]), buffer.push([3, 4]), buffer.push(5)];
    expect(buffer.stats().blockedPushes).toBe(2);
    const stats = await drain(buffer);
    await Promise.all(pushes);
    expect(worker.batches.flat()).toEqual([1, 2, 3, 4, 5]);
    expect(stats).toMatchObject({ processed: 5, buffered: 0, blockedPushes: 0 });
  });

  it('gives up after its timeout on a worker call that never settles', async () => {
    const buffer = createTestBuffer<number>({ name: 'stuck', worker: () => new Promise(() => {}) });
    await buffer.push(1);
    await expect(drain(buffer, { timeout: 30 })).rejects.toThrow(
      'buffer "stuck" did not drain within 30 ms',
    );
  });

  it('rejects for a buffer without a worker, and for a wrong timeout', async () => {
    const buffer = createTestBuffer<number>({ name: 'lonely' });
    await buffer.push(1);
    await expect(drain(buffer)).rejects.toThrow(NoWorkerError);
    await expect(drain(buffer, { timeout: -1 })).rejects.toThrow(
      'drain(): invalid option "timeout": got -1, expected a finite number from 0 to',
    );
  });
});

describe('@risemaxi/bufio/testing', () => {
  it('imports neither NestJS nor Jest, anywhere in its module graph', () => {
    const bare = new Set<string>();
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      for (const [, spec] of source.matchAll(/^\s*(?:import|export)[^'"]*?from\s+'([^']+)'/gm)) {
        if (spec === undefined) continue;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else bare.add(spec);
      }
    };
    visit(resolve(ROOT, 'lib/testing/index.ts'));
    expect(seen.size).toBeGreaterThan(5);
    expect([...bare].filter((s) => /^(@nestjs\/|@jest\/|jest)/.test(s))).toEqual([]);
  });

  it('loads and runs in plain Node, outside any test runner', () => {
    const script = `
      import { createTestBuffer, drain } from './dist/lib/testing/index.js';
      const seen = [];
      const buffer = createTestBuffer({ worker: (r) => { seen.push(...r); } });
      await buffer.push([1, 2, 3]);
      await drain(buffer);
      console.log(JSON.stringify(seen));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('[1,2,3]');
  });
});
