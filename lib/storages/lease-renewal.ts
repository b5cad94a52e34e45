/** How a `LeaseRenewal` extends leases and says when it could not. */
export interface LeaseRenewalOptions {
  /** The storage's `leaseTimeout`, in ms: held leases are renewed every third of it. */
  readonly leaseTimeout: number;
  /** Extends the leases of `ids` by `leaseTimeout` from now, in one round trip. */
  renew(ids: readonly string[]): Promise<void>;
  /** Receives a failed renewal: the first of each run of failures, not every tick of an outage. */
  report(error: unknown): void;
}

/**
 * The records a shared storage has leased and not yet acknowledged or released, and the timer that
 * renews their leases every `leaseTimeout / 3` while any are held, so that a worker call may run
 * longer than `leaseTimeout` while its process lives, and a dead process's records come back after
 * it. The timer runs only while something is held, and never keeps the process alive.
 */
export class LeaseRenewal {
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private failing = false;
  private stopped = false;

  constructor(private readonly options: LeaseRenewalOptions) {}

  /** How many leases are held. */
  get size(): number {
    return this.held.size;
  }

  /** Starts renewing the leases of `ids`. */
  hold(ids: Iterable<string>): void {
    for (const id of ids) this.held.add(id);
    if (this.held.size > 0 && !this.timer && !this.stopped) {
      const interval = Math.max(10, Math.floor(this.options.leaseTimeout / 3));
      this.timer = setInterval(() => void this.renew(), interval);
      this.timer.unref();
    }
  }

  /** Stops renewing the leases of `ids` (acknowledged, released, or given up). */
  forget(ids: Iterable<string>): void {
    for (const id of ids) this.held.delete(id);
    if (this.held.size === 0) this.clearTimer();
  }

  /** Stops renewing for good, forgetting every lease; returns how many were held. */
  stop(): number {
    const count = this.held.size;
    this.stopped = true;
    this.held.clear();
    this.clearTimer();
    return count;
  }

  private clearTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async renew(): Promise<void> {
    // One renewal at a time: a slow one is not stacked on by the next tick.
    if (this.renewing || this.stopped || this.held.size === 0) return;
    this.renewing = true;
    try {
      await this.options.renew([...this.held]);
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.report(error);
      this.failing = true;
    } finally {
      this.renewing = false;
    }
  }

  private report(error: unknown): void {
    try {
      this.options.report(error);
    } catch {
      // A throwing error handler must not become an unhandled rejection of the timer.
    }
  }
}
