import { describe, expect, it, jest } from '@jest/globals';
import { Arrivals } from '../../lib/core/arrivals.js';
import type { FlushTimers } from '../../lib/core/options.js';
import { fakeTimersInEachTest } from '../support/fake-timers.js';

const noTimers: FlushTimers = { set: () => undefined, clear: () => undefined };

describe('Arrivals', () => {
  fakeTimersInEachTest({ now: 1_000_000 });

  it('keeps a bounded number of runs, and never a record late, however many wait', () => {
    const interval = 5000;
    const arrivals = new Arrivals(interval, noTimers, () => undefined);
    // What really arrived when, oldest first: [time, count].
    const model: [number, number][] = [];
    let now = Date.now();
    let mostRuns = 0;
    // A backlog that grows for 200 s: 3 records a millisecond in, a batch of 2 out.
    for (let ms = 0; ms < 200_000; ms++) {
      jest.setSystemTime(++now);
      arrivals.add(3);
      model.push([now, 3]);
      arrivals.remove(2);
      let left = 2;
      while (left > 0) {
        const front = model[0] as [number, number];
        const used = Math.min(front[1], left);
        front[1] -= used;
        left -= used;
        if (front[1] === 0) model.shift();
      }
      mostRuns = Math.max(mostRuns, arrivals.size);
      // Due no later than the interval after the oldest waiting record arrived.
      if (ms % 997 === 0)
        expect(arrivals.due((model[0] as [number, number])[0] + interval)).toBe(true);
    }
    expect(model.reduce((n, [, c]) => n + c, 0)).toBe(200_000); // 200000 records wait
    expect(mostRuns).toBeLessThanOrEqual(34);
  });

  it('keeps runs apart when batches are further apart than interval / 32', () => {
    const arrivals = new Arrivals(3200, noTimers, () => undefined);
    for (let i = 0; i < 10; i++) {
      arrivals.add(1);
      arrivals.remove(0); // a batch that took nothing of it: later pushes start a new run
      jest.setSystemTime(Date.now() + 100);
    }
    expect(arrivals.size).toBe(10);
    expect(arrivals.due(Date.now() - 1000 + 3200 - 1)).toBe(false);
  });
});
