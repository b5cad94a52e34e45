import { afterAll, describe, expect, it } from '@jest/globals';
import { killFixtures, runFixture } from '../support/child-process.js';

afterAll(() => killFixtures());

const RECORDS = 300_000;

// In a child process: on a stalled event loop no timer of this test could fire, and it would hang
// instead of failing.
describe('a downstream outage under push load', () => {
  it('never freezes the process: timers and pushes go on while every worker call fails', async () => {
    const run = await runFixture('core/outage-load', {
      args: [String(RECORDS)],
      killAfterMs: 90_000,
    });
    expect(run.stderr.filter((line) => !line.includes('ExperimentalWarning'))).toEqual([]);
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
    const line = run.lines.find((l) => l.startsWith('RESULT ')) as string;
    const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, number>;
    process.stdout.write(`outage under push load: ${line.slice('RESULT '.length)}\n`);
    // Every push got in, and the whole backlog kept failing and coming back.
    expect(result).toMatchObject({ pushed: RECORDS, buffered: RECORDS });
    expect(result.failed).toBeGreaterThan(RECORDS);
    // The event loop kept turning: a stall (a reserve that sorts the whole backlog, batches
    // failing one after another in microtasks) shows here as seconds. Generous for a busy 2-core
    // machine; about 100 ms is typical there.
    expect(result.p99).toBeLessThan(500);
    // The host's own 50 ms timer kept firing (a tenth of its ticks is plenty on a busy machine).
    expect(result.ticks).toBeGreaterThan((result.elapsedMs as number) / 500);
  }, 120_000);
});
