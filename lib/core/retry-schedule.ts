/**
 * Records released for a retry, counted by when they become visible again, with one timer for the
 * earliest. The timer does not keep the process alive, except while `keepAlive` (a drain, or an
 * exit that must wait for a retry).
 */
export class RetrySchedule {
  /** Records whose retry delay has not passed. */
  delayed = 0;
  private entries: { at: number; count: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private keepAlive = false;

  /** `onDue(count, at)` runs when records become visible again; `at` is the latest of their times. */
  constructor(private readonly onDue: (count: number, at: number) => void) {}

  add(at: number, count: number): void {
    this.delayed += count;
    let i = this.entries.length;
    while (i > 0 && (this.entries[i - 1] as { at: number }).at > at) i--;
    this.entries.splice(i, 0, { at, count });
    if (i === 0) this.arm();
  }

  /**
   * `count` records were reserved before their timer fired (the storage's clock passed their
   * time first): they no longer wait. Taken from the earliest, which are the ones the storage saw.
   */
  takeEarly(count: number): void {
    let left = Math.min(count, this.delayed);
    this.delayed -= left;
    while (left > 0 && this.entries.length > 0) {
      const first = this.entries[0] as { at: number; count: number };
      const used = Math.min(first.count, left);
      first.count -= used;
      left -= used;
      if (first.count === 0) this.entries.shift();
    }
    this.arm();
  }

  /** When the next records become visible, if any wait. */
  next(): number | undefined {
    return this.entries[0]?.at;
  }

  /** Whether the timer holds the process open. */
  setKeepAlive(keepAlive: boolean): void {
    this.keepAlive = keepAlive;
    this.arm();
  }

  /** Forgets every record and the timer. */
  clear(): void {
    this.entries = [];
    this.delayed = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.entries[0];
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
    let n = 0;
    for (; n < this.entries.length && (this.entries[n] as { at: number }).at <= now; n++) {
      const entry = this.entries[n] as { at: number; count: number };
      count += entry.count;
      latest = entry.at;
    }
    this.entries.splice(0, n);
    this.delayed -= count;
    this.arm();
    if (count > 0) this.onDue(count, latest);
  }
}
