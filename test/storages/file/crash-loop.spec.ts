import { afterAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { killFixtures } from '../../support/child-process.js';
import { crashLoopFailures, type PoisonPlan, poisonRounds } from '../../support/poison-rounds.js';
import { removeDir, tempDir } from './file-test-support.js';

let directory = '';
afterAll(async () => {
  killFixtures();
  if (directory) await removeDir(directory);
});

describe('FileStorage with a record that kills its process', () => {
  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    directory = await tempDir('crash-loop');
    const plan: PoisonPlan = {
      label: 'FileStorage crash loop',
      storage: {
        kind: 'file',
        directory: path.join(directory, 'journal'),
        durability: 'none',
        segmentBytes: 16 * 1024,
      },
      records: 120,
      poison: 57,
      batchSize: 16,
      concurrency: 2,
      maxAttempts: 2,
      // The guard needs maxAttempts + log2(16 × 2) = 7 deaths: room for a few more, then fail.
      maxRounds: 12,
    };
    const outcome = await poisonRounds(plan);
    expect(crashLoopFailures(plan, outcome)).toEqual([]);
    expect(outcome.exits.slice(0, -1).every((exit) => exit === 'SIGKILL')).toBe(true);
    expect(outcome.stderr).toEqual([]);
  }, 120_000);
});
