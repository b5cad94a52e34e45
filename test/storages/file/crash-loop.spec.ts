import { describe, it } from '@jest/globals';
import path from 'node:path';
import { expectPoisonIsolated, poisonPlan } from '../../support/poison-rounds.js';
import { useChildDirectory } from './support.js';

const childDirectory = useChildDirectory('crash-loop');

describe('FileStorage with a record that kills its process', () => {
  it('dead-letters that record alone, with CrashLoopError, and processes every other', async () => {
    const directory = await childDirectory();
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
