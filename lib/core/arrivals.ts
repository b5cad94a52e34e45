import type { FlushTimers } from './options.js';
import { Queue } from './queue.js';

/** Fresh records that arrived between two batches, and when the first of them arrived. */
interface Run {
  at: number;
  count: number;
}

/** Runs that start this close together (a fraction of the interval) are kept as one. */
const RUNS_PER_INTERVAL = 32;

/**
 * When the fresh records waiting in storage arrived, to dispatch a batch once the oldest has waited
 * `flushInterval`. Arrival times are kept per run of pushes between two batches, not per record:
 * the clock is read once per batch rather than once per push, the hot path. Within a run that a
 * batch only partly took, the rest count from the run's start, so under load a batch may go a
 * little early, never late.
 *
 * Bounded whatever waits: a run that would start within `interval / 32` of the newest joins it,
 * and runs that are all overdue are merged into the oldest, so at most about 34 runs are kept,
 * for ten records waiting or ten million (they may then go up to `interval / 32` early).
 */
export class Arrivals {
  private readonly runs = new Queue<Run>();
  private open: Run | undefined;
  private timer: unknown;
  private timerAt = 0;
  private armed = false;

  constructor(
    private readonly interval: number,
    private readonly timers: FlushTimers,
    private readonly onDue: () => void,
  ) {}

  /** `count` fresh records arrived. */
  add(count: number): void {
    if (this.open === undefined) this.open = this.openRun(Date.now());
    this.open.count += count;
  }

  /** How many runs are kept (for tests of the bound). */
  get size(): number {
    return this.runs.length;
  }

  /** `count` records found in storage (left by an earlier process): due at once. */
  addOverdue(count: number): void {
    this.open = undefined;
    this.runs.push({ at: Date.now() - this.interval, count });
    this.arm();
  }

  /** `count` fresh records left, oldest first (taken for a batch, or dropped). */
  remove(count: number): void {
    this.open = undefined; // later pushes start a new run, with their own arrival time
    let left = count;
    while (left > 0 && this.runs.length > 0) {
      const front = this.runs.peek() as Run;
      const used = Math.min(front.count, left);
      front.count -= used;
      left -= used;
      if (front.count === 0) this.runs.shift();
    }
    this.arm();
  }

  /** Nothing fresh waits any more. */
  clear(): void {
    while (this.runs.length > 0) this.runs.shift();
    this.open = undefined;
    this.arm();
  }

  /** Whether the oldest waiting fresh record has waited the interval. */
  due(now: number): boolean {
    const front = this.runs.peek();
    return front !== undefined && front.at + this.interval <= now;
  }

  /** Keeps the timer set for the oldest run while `enabled` (from start to stop). */
  enable(enabled: boolean): void {
    this.armed = enabled;
    this.arm();
  }

  /** The run that records arriving `now` count in: the newest, if it started just before. */
  private openRun(now: number): Run {
    const newest = this.runs.at(this.runs.length - 1);
    if (newest !== undefined && now - newest.at < this.interval / RUNS_PER_INTERVAL) return newest;
    const run = { at: now, count: 0 };
    this.runs.push(run);
    if (this.runs.length === 1) this.arm();
    // Runs that are all overdue go in one batch anyway: keep the oldest time, drop the rest.
    for (let second = this.runs.at(1); second && second.at + this.interval <= now;) {
      const oldest = this.runs.shift() as Run;
      second.count += oldest.count;
      second.at = oldest.at;
      second = this.runs.at(1);
    }
    return run;
  }

  private arm(): void {
    const front = this.runs.peek();
    if (front === undefined || !this.armed) {
      this.disarm();
      return;
    }
    const at = front.at + this.interval;
    if (this.timer !== undefined && this.timerAt === at) return;
    this.disarm();
    this.timerAt = at;
    this.timer = this.timers.set(
      () => {
        this.timer = undefined;
        this.onDue();
      },
      Math.max(0, at - Date.now()),
    );
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }
}
