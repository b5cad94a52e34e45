import type { FlushTimers } from '../core/options.js';

interface PendingTimer {
  readonly callback: () => void;
  readonly delay: number;
}

/**
 * Flush timers that never fire on their own: `tick()` fires them. Give them to a buffer (the
 * `timers` option) to decide in a test when its `flushInterval` has passed, without fake timers.
 * They cover the flush interval only; retry delays and storage back-off use Node's timers.
 */
export class ManualTimers implements FlushTimers {
  private nextHandle = 1;
  private readonly timers = new Map<number, PendingTimer>();

  /** Part of `FlushTimers`: called by the buffer. */
  set(callback: () => void, delay: number): unknown {
    const handle = this.nextHandle++;
    this.timers.set(handle, { callback, delay });
    return handle;
  }

  /** Part of `FlushTimers`: called by the buffer. */
  clear(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers set and neither fired nor cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** The delays (ms) the pending timers were set with, oldest first. */
  get delays(): number[] {
    return [...this.timers.values()].map((t) => t.delay);
  }

  /**
   * Fires every pending timer now, as if its delay had passed, and returns how many fired. Timers
   * set by the callbacks themselves wait for the next `tick()`.
   */
  tick(): number {
    const due = [...this.timers.values()];
    this.timers.clear();
    for (const timer of due) timer.callback();
    return due.length;
  }
}

/** New `ManualTimers`: flush timers that fire only on `tick()`. */
export function manualTimers(): ManualTimers {
  return new ManualTimers();
}
