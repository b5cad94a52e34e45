import { describe, expect, it } from '@jest/globals';
import { BufIO } from '../../../lib/index.js';
import { FileStorage } from '../../../lib/storages/file/index.js';
import { waitFor } from '../../support/wait.js';
import { range, rec, tempDir, useSandbox, type Rec } from './support.js';

/*
 * FileStorage under a BufIO: records and their retry state survive a restart.
 */

const sandbox = useSandbox('with-bufio');

describe('FileStorage with BufIO', () => {
  it('records and their retry state survive a restart of the buffer', async () => {
    sandbox.directory = await tempDir('bufio');
    const first = new BufIO<Rec>({
      storage: new FileStorage<Rec>({ directory: sandbox.directory }),
      batchSize: 10,
      flushInterval: 5,
      retry: { maxAttempts: 5, initialDelay: 30, maxDelay: 30 },
      worker: () => {
        throw new Error('not today');
      },
    });
    first.start();
    await first.push(range(0, 10).map(rec));
    await first.flush();
    const summary = await first.stop({ timeout: 0 });
    expect(summary.remaining).toBe(10);

    const seen: { n: number; attempt: number }[] = [];
    const second = new BufIO<Rec>({
      storage: new FileStorage<Rec>({ directory: sandbox.directory }),
      batchSize: 10,
      flushInterval: 5,
      worker: (records, { attempt }) => {
        for (const r of records) seen.push({ n: r.n, attempt });
      },
    });
    second.start();
    await waitFor('the second buffer to process the records', () => seen.length >= 10);
    await second.stop();
    expect(seen.map((s) => s.n)).toEqual(range(0, 10));
    expect(seen.every((s) => s.attempt >= 2)).toBe(true);
    const check = await sandbox.open<Rec>();
    expect(check.size()).toBe(0);
  });
});
