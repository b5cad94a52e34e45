import { afterAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { countRows, runNode, tempDir } from './support.js';

const dir = tempDir('main');
afterAll(() => dir.remove());

describe('npm run sample (dist/sample/main.js)', () => {
  it('sends the load, shuts down with SIGTERM and reports every accepted record in the database', async () => {
    const db = join(dir.path, 'sample.db');
    const run = runNode(
      'dist/sample/main.js',
      [
        '--count',
        '3000',
        '--batch-size',
        '200',
        '--interval',
        '100',
        '--per-request',
        '3',
        '--db',
        db,
      ],
      {},
    );
    const exit = await run.exited;
    expect(run.stderr).toBe('');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(run.stdout).toContain('records accepted        3,000 (HTTP 202, 1,000 requests)');
    expect(run.stdout).toContain('rows in the database    3,000 = records accepted');
    const batches = Number(/batches written\s+(\d+)/.exec(run.stdout)?.[1]);
    expect(batches).toBeGreaterThanOrEqual(15); // at most 200 records per batch
    expect(run.stdout).toContain(`${batches} transactions instead of 3,000`);
    expect(countRows(db)).toBe(3000);
  });

  it('lists its options with --help', async () => {
    const run = runNode('dist/sample/main.js', ['--help'], {});
    expect(await run.exited).toEqual({ code: 0, signal: null });
    for (const flag of [
      '--count',
      '--batch-size',
      '--interval',
      '--storage',
      '--concurrency',
      '--db',
    ]) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toContain('where records wait: memory');
  });

  it('fails at boot, naming option and value, on a batch size that is not a number', async () => {
    const run = runNode(
      'dist/sample/main.js',
      ['--batch-size', 'abc', '--db', join(dir.path, 'x.db')],
      {},
    );
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.stderr).toContain(
      'error: BufIOModule.forRoot(): invalid option "batchSize": got "abc", expected a number, or a string holding one ("50")',
    );
  });

  it('refuses an unknown flag with a usage error', async () => {
    const run = runNode('dist/sample/main.js', ['--nope'], {});
    expect(await run.exited).toEqual({ code: 2, signal: null });
    expect(run.stderr).toContain("usage error: Unknown option '--nope'");
  });
});
