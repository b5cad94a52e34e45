import { afterAll, describe, expect, it } from '@jest/globals';
import { killFixtures, runFixture } from '../support/child-process.js';

afterAll(() => killFixtures());

// In a child process, so that an unhandled rejection would really end the process (the engine's
// side: test/core/late-push.spec.ts).
describe('a push nobody awaits, refused after stop()', () => {
  it('in a NestJS application, never aborts its shutdown drain: refusals are logged', async () => {
    const run = await runFixture('nest/late-push-app');
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
    const closed = run.lines.find((line) => line.startsWith('CLOSED ')) as string;
    const stats = JSON.parse(closed.slice('CLOSED '.length)) as Record<string, number>;
    // Every accepted record was processed; every refused one was counted.
    expect(stats.processed).toBe(stats.pushed);
    expect(stats.workerProcessed).toBe(stats.pushed);
    expect(stats.refused).toBeGreaterThanOrEqual(5);
    const logs = run.lines.filter((line) => line.startsWith('LOG '));
    // The drain ran to its end (its summary line), with jobs refused while it ran.
    const drained = logs.findIndex((line) =>
      /^LOG log buffer "jobs" drained in \d+ ms: \d+ processed, 0 dead-lettered, 0 left in storage/.test(
        line,
      ),
    );
    expect(drained).toBeGreaterThan(0);
    expect(logs.slice(0, drained).some((line) => line.includes('refused a push'))).toBe(true);
    const refusals = logs.filter((line) =>
      /^LOG warn buffer "jobs": refused a push of 1 record\(s\): buffer "jobs" is stopped/.test(
        line,
      ),
    );
    expect(refusals).toHaveLength(stats.refused as number);
  });
});
