import { Heap } from './heap.js';

interface Entry {
  readonly at: number;
  count: number;
}

/**
 * When records released for a retry become visible again: counts by time, one timer for the
 * earliest (the `Backlog` keeps the total). The timer does not keep the process alive, except
 * while `keepAlive` (a drain, or an exit that must wait for a retry). Kept in a heap: a release
 * costs O(log n) however many retries an outage has piled up. An entry is a millisecond at which
 * records come back, never one record: releases for the same millisecond share it.
 */
export class RetrySchedule {
  private readonly entries = new Heap<Entry>((a, b) => a.at < b.at);
  /** The entries in the heap, by time. */
  private readonly byTime = new Map<number, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private keepAlive = false;

  /** `onDue(count, at)` runs when records become visible again; `at` is the latest of their times. */
  constructor(private readonly onDue: (count: number, at: number) => void) {}

  add(at: number, count: number): void {
    const same = this.byTime.get(at);
    if (same) {
      same.count += count;
      return;
    }
    const entry = { at, count };
    this.byTime.set(at, entry);
    this.entries.push(entry);
    if (this.entries.peek() === entry) this.arm();
  }

  /**
   * `count` records were reserved before their timer fired (the storage's clock passed their
   * time first): they no longer wait. Taken from the earliest, which are the ones the storage saw.
   * `count` is at most what the schedule holds.
   */
  takeEarly(count: number): void {
    let left = count;
    for (let first = this.entries.peek(); left > 0 && first; first = this.entries.peek()) {
      const used = Math.min(first.count, left);
      first.count -= used;
      left -= used;
      if (first.count === 0) this.remove();
    }
    this.arm();
  }

  /** When the next records become visible, if any wait. */
  next(): number | undefined {
    return this.entries.peek()?.at;
  }

  /** Whether the timer holds the process open. */
  setKeepAlive(keepAlive: boolean): void {
    this.keepAlive = keepAlive;
    this.arm();
  }

  /** Forgets every record and the timer. */
  clear(): void {
    this.entries.clear();
    this.byTime.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.entries.peek();
    if (!next) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next.at - Date.now()));
    if (!this.keepAlive) this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    // A timer may fire a millisecond before Date.now() reaches its time.
    const now = Date.now() + 1;
    let count = 0;
    let latest = 0;
    for (let entry = this.entries.peek(); entry && entry.at <= now; entry = this.entries.peek()) {
      this.remove();
      count += entry.count;
      latest = entry.at;
    }
    this.arm();
    if (count > 0) this.onDue(count, latest);
  }

  private remove(): void {
    const entry = this.entries.pop();
    if (entry) this.byTime.delete(entry.at);
  }
}
