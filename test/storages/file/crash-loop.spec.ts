import { afterAll, describe, it } from '@jest/globals';
import path from 'node:path';
import { killFixtures } from '../../support/child-process.js';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
import { removeDir, tempDir } from './support.js';

let directory = '';
afterAll(async () => {
  killFixtures();
  if (directory) await removeDir(directory);
});

describe('FileStorage with a record that kills its process', () => {
  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    directory = await tempDir('crash-loop');
    await expectPoisonIsolated(
      poisonPlan('FileStorage crash loop', {
        kind: 'file',
        directory: path.join(directory, 'journal'),
        durability: 'none',
        segmentBytes: 16 * 1024,
      }),
    );
  }, 120_000);
});
