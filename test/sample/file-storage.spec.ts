import { afterAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { FileStorage } from '../../lib/storages/file/index.js';
import type { EventDto } from '../../sample/events/event.js';
import { countRows, runNode, tempDir } from './support.js';

const dir = tempDir('file-storage');
afterAll(() => dir.remove());

const LOAD = ['--count', '600', '--batch-size', '100', '--interval', '50', '--per-request', '3'];

/** Runs the sample's load over a FileStorage journal in `journal`, and checks it ended cleanly. */
async function runSampleOnFileStorage(journal: string, db: string) {
  const run = runNode(
    'dist/sample/main.js',
    [...LOAD, '--storage', 'file', '--file-dir', journal, '--db', db],
    {},
  );
  const exit = await run.exited;
  expect(run.stderr).toBe('');
  expect(exit).toEqual({ code: 0, signal: null });
  return run;
}

describe('npm run sample -- --storage file', () => {
  it('buffers the records in a journal on disk and writes every accepted one', async () => {
    const db = join(dir.path, 'file.db');
    const journal = join(dir.path, 'journal');
    const run = await runSampleOnFileStorage(journal, db);
    expect(run.stdout).toContain(`(file (${journal}) storage, batchSize 100`);
    expect(run.stdout).toContain('rows in the database    600 = records accepted');
    expect(countRows(db)).toBe(600);
  });

  it('also writes the records an earlier run left in the journal', async () => {
    const db = join(dir.path, 'left.db');
    const journal = join(dir.path, 'left-journal');
    // An earlier run that stopped before its worker got to these (a crash, a drain timeout).
    const earlier = await FileStorage.open<EventDto>({ directory: journal });
    await earlier.append(
      Array.from({ length: 7 }, (_, i) => ({
        type: 'left',
        payload: { i },
        at: 1_700_000_000_000,
      })),
    );
    await earlier.close();

    const run = await runSampleOnFileStorage(journal, db);
    expect(run.stdout).toContain(
      'records recovered       7 (left in the journal by an earlier run)',
    );
    expect(run.stdout).toContain('rows in the database    607 = records accepted + recovered');
    expect(countRows(db)).toBe(607);
  });

  it('lists the file storage in --help', async () => {
    const run = runNode('dist/sample/main.js', ['--help'], {});
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.stdout).toContain('where records wait: memory, file');
    expect(run.stdout).toContain('--file-dir <path>');
    expect(run.stdout).toContain('GET /metrics (Prometheus) and GET /health (terminus)');
  });

  it('refuses a storage it does not know, naming the choices', async () => {
    const run = runNode(
      'dist/sample/main.js',
      ['--storage', 'tape', '--db', join(dir.path, 'x.db')],
      {},
    );
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.stderr).toContain(
      'error: sample: invalid option "BUFIO_STORAGE": got "tape", expected one of memory, file',
    );
  });
});
