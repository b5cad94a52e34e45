import { afterAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { killFixtures } from '../support/child-process.js';
import { expectPoisonIsolated, poisonPlan } from '../support/poison-rounds.js';

let directory = '';
afterAll(async () => {
  killFixtures();
  if (directory) await fs.rm(directory, { recursive: true, force: true });
});

// The engine's side of the crash-loop guard under real SIGKILLs, over a FileStorage whose
// deliveries the fixture counts itself (a file written at every reserve), so that it does not
// depend on the storage's own counting (test/storages/*/crash-loop.spec.ts test that).
describe('crash-loop guard under SIGKILL', () => {
  it('dead-letters only the record that kills its process; every other is processed', async () => {
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'bufio-crash-loop-'));
    const plan = poisonPlan(
      'crash-loop guard (deliveries counted by the fixture)',
      {
        kind: 'file',
        directory: path.join(directory, 'journal'),
        durability: 'none',
        segmentBytes: 16 * 1024,
      },
      { deliveryLedger: path.join(directory, 'deliveries.json') },
    );
    const outcome = await expectPoisonIsolated(plan);
    // maxAttempts + log2(16 × 2) = 7 deaths, then the process that dead-letters it drains.
    expect(outcome.exits).toEqual([...Array<string>(7).fill('SIGKILL'), 'exit 0']);
    expect(outcome.deadLettered).toEqual([{ record: 57, code: 'BUFIO_CRASH_LOOP', crashes: 7 }]);
  }, 120_000);
});
