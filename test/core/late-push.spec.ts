import { afterAll, describe, expect, it } from '@jest/globals';
import { killFixtures, runFixture } from '../support/child-process.js';

afterAll(() => killFixtures());

// In child processes, so that an unhandled rejection would really end the process.
describe('a push nobody awaits, refused after stop()', () => {
  it('never crashes the process: the drain completes and the refusals are counted', async () => {
    const run = await runFixture('core/late-push');
    expect(run.stderr.filter((line) => !line.includes('ExperimentalWarning'))).toEqual([]);
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
    const done = run.lines.find((line) => line.startsWith('DONE ')) as string;
    const result = JSON.parse(done.slice('DONE '.length)) as Record<string, unknown>;
    expect(result).toMatchObject({
      summary: { processed: 50, timedOut: false },
      processed: 50,
      // 10 during the drain, 10 after it, and the pushAndWait after it.
      refused: 21,
      refusedEvents: 21,
      failingDeadLettered: 1,
    });
  });
});
