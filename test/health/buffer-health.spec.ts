import { describe, expect, it } from '@jest/globals';
import type { BufIO, WorkFunction } from '../../lib/index.js';
import { BufferHealthChecker } from '../../lib/health/index.js';
import { resolveHealthOptions } from '../../lib/health/health-options.js';
import { createTestBuffer, drain } from '../../lib/testing/index.js';
import { SwitchableStorage } from './support.js';

/** A running buffer that dispatches nothing on its own (manual timers, no size trigger reached). */
function runningBuffer(
  name: string,
  options: {
    capacity?: number;
    worker?: WorkFunction<number>;
    storage?: SwitchableStorage<number>;
  } = {},
): BufIO<number> {
  const capacity = options.capacity ?? 10;
  const buffer = createTestBuffer<number>({
    name,
    worker: options.worker ?? (() => {}),
    batchSize: capacity,
    maxBufferedRecords: capacity,
    retry: { maxAttempts: 1 },
    storage: options.storage,
  });
  buffer.on('error', () => {}); // the engine's own size() calls fail too, in the outage cases
  buffer.start();
  return buffer;
}

/** A checker on a clock the test moves. */
function checkerAt(start = 1_000_000): { checker: BufferHealthChecker; clock: { now: number } } {
  const clock = { now: start };
  return { checker: new BufferHealthChecker(() => clock.now), clock };
}

describe('BufferHealthChecker', () => {
  it('reports a running buffer with a reachable storage up, with its numbers', async () => {
    const { checker } = checkerAt();
    const buffer = runningBuffer('events');
    await buffer.push([1, 2, 3]);
    expect(await checker.check([buffer], resolveHealthOptions({}))).toEqual({
      events: {
        status: 'up',
        reasons: [],
        state: 'running',
        storage: 'reachable',
        buffered: 3,
        capacity: 10,
        fillRatio: 0.3,
        fullForMs: 0,
        deadLettered: 0,
        newDeadLetters: 0,
      },
    });
  });

  it('is down while the storage cannot be reached, and up again once it can', async () => {
    const { checker } = checkerAt();
    const storage = new SwitchableStorage<number>();
    const buffer = runningBuffer('events', { storage });
    const options = resolveHealthOptions({ storageTimeout: 50 });

    storage.mode = 'unavailable';
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'down',
      storage: 'unreachable',
      reasons: [
        'storage unreachable: Redis at 127.0.0.1:6379 is unavailable: connect ECONNREFUSED',
      ],
    });
    storage.mode = 'hang';
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'down',
      storage: 'unreachable',
      reasons: ['storage did not answer size() within storageTimeout (50 ms)'],
    });
    storage.mode = 'ok';
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      storage: 'reachable',
    });
  });

  it('is down once a buffer has stayed full for fillDuration, and up when it empties', async () => {
    const { checker, clock } = checkerAt();
    const buffer = runningBuffer('events', { capacity: 10 });
    const options = resolveHealthOptions({ maxFillRatio: 0.8, fillDuration: 1000 });

    await buffer.push([1, 2, 3, 4, 5, 6, 7, 8]); // 80%: at the ratio
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      fillRatio: 0.8,
      fullForMs: 0,
    });
    clock.now += 999;
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      fullForMs: 999,
    });
    clock.now += 1;
    expect((await checker.check([buffer], options)).events).toEqual(
      expect.objectContaining({
        status: 'down',
        fullForMs: 1000,
        reasons: [
          '80% full (8 of 10 records) for 1000 ms, at or above maxFillRatio 0.8 for fillDuration 1000 ms',
        ],
      }),
    );

    await drain(buffer);
    clock.now += 10;
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      fillRatio: 0,
      fullForMs: 0,
    });
    // Full again: the duration counts from this check, not from the first time.
    await buffer.push([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    clock.now += 10_000;
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      fullForMs: 0,
    });
  });

  it('with fillDuration 0, is down at the first check that sees the buffer full', async () => {
    const { checker } = checkerAt();
    // A worker stuck on its first batch: what comes next waits, and the buffer fills up.
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    const buffer = runningBuffer('events', { capacity: 10, worker: () => stuck });
    await buffer.push([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // taken by the stuck worker call
    await buffer.push([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    const health = (
      await checker.check([buffer], resolveHealthOptions({ maxFillRatio: 1, fillDuration: 0 }))
    ).events;
    expect(health).toMatchObject({ status: 'down', fillRatio: 1 });
    expect(health?.reasons).toEqual([
      '100% full (10 of 10 records) for 0 ms, at or above maxFillRatio 1 for fillDuration 0 ms',
    ]);
    release();
    await drain(buffer);
  });

  it('is down when records were dead-lettered since the previous check, then up again', async () => {
    const { checker } = checkerAt();
    const buffer = runningBuffer('events', {
      worker: (records) => records.map((r) => (r < 0 ? new Error('rejected by the database') : r)),
    });
    const options = resolveHealthOptions({});
    await buffer.push([1, -1, -2]);
    await drain(buffer);
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'down',
      deadLettered: 2,
      newDeadLetters: 2,
      reasons: ['2 record(s) dead-lettered since the previous check'],
    });
    expect((await checker.check([buffer], options)).events).toMatchObject({
      status: 'up',
      deadLettered: 2,
      newDeadLetters: 0,
    });
    await buffer.push(-3);
    await drain(buffer);
    expect(
      (await checker.check([buffer], resolveHealthOptions({ deadLetters: false }))).events,
    ).toMatchObject({ status: 'up', newDeadLetters: 1 });
  });

  it('is down for a buffer that is not running, and names every reason at once', async () => {
    const { checker } = checkerAt();
    const storage = new SwitchableStorage<number>();
    const buffer = runningBuffer('events', { storage });
    await buffer.stop();
    storage.mode = 'unavailable';
    expect((await checker.check([buffer], resolveHealthOptions({}))).events?.reasons).toEqual([
      'buffer is stopped, not running',
      'storage unreachable: Redis at 127.0.0.1:6379 is unavailable: connect ECONNREFUSED',
    ]);
  });

  it('keeps one memory per buffer', async () => {
    const { checker, clock } = checkerAt();
    const full = runningBuffer('full', { capacity: 10 });
    const empty = runningBuffer('empty', { capacity: 10 });
    const options = resolveHealthOptions({ fillDuration: 100 });
    await full.push([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await checker.check([full, empty], options);
    clock.now += 100;
    const report = await checker.check([full, empty], options);
    expect(report.full?.status).toBe('down');
    expect(report.empty?.status).toBe('up');
  });
});

describe('BufIOHealthOptions', () => {
  it('has documented defaults', () => {
    expect(resolveHealthOptions(undefined)).toEqual({
      buffers: undefined,
      storageTimeout: 1000,
      maxFillRatio: 0.9,
      fillDuration: 30_000,
      deadLetters: true,
    });
  });

  it('refuses wrong values, naming option and value', () => {
    expect(() => resolveHealthOptions({ maxFillRatio: 0 })).toThrow(
      'BufIOHealthIndicator: invalid option "maxFillRatio": got 0, expected a number above 0 and at most 1',
    );
    expect(() => resolveHealthOptions({ maxFillRatio: 1.5 })).toThrow(
      'invalid option "maxFillRatio": got 1.5, expected a finite number from 0 to 1',
    );
    expect(() => resolveHealthOptions({ storageTimeout: '1s' })).toThrow(
      'invalid option "storageTimeout": got "1s", expected a finite number from 1 to',
    );
    expect(() => resolveHealthOptions({ buffers: 'events' })).toThrow(
      'invalid option "buffers": got "events", expected an array of buffer names',
    );
    expect(() => resolveHealthOptions({ deadLetter: true })).toThrow(
      'invalid option "deadLetter": got true, expected no such option',
    );
  });
});
