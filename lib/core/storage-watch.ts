import type { Backlog } from './backlog.js';
import type { BufIOState } from './bufio.js';
import { MAX_TIMER_DELAY } from './options.js';
import type { Storage } from './storage.js';

/**
 * How often a storage that wakes the engine up (`Storage.watch`) is polled anyway, at most, in ms:
 * a safety net for a wake-up that got lost (a dropped connection, a missed notification).
 */
const SAFETY_POLL_INTERVAL = 1000;

/** What a `StorageWatch` needs from the dispatcher that owns it. */
export interface StorageWatchDeps<T> {
  readonly storage: Storage<T>;
  readonly backlog: Backlog;
  readonly flushInterval: number;
  readonly state: () => BufIOState;
  /** Records this engine did not count may be visible: reserve and see. */
  readonly poll: () => void;
  /**
   * `count` records came back that this engine did not append: they have waited long enough.
   * `crashed`: some may have been leased when their holder died (the crash guard probes them).
   */
  readonly found: (count: number, crashed: boolean) => void;
  /** A storage call failed (reported and retried with backoff by the dispatcher). */
  readonly failed: (operation: string, error: unknown) => void;
  /** Something other than a storage call failed: reported. */
  readonly report: (error: unknown) => void;
}

/**
 * Learns of records this engine did not append: left by an earlier process (at start), appended
 * or released by other instances of a shared storage, leased by a holder that died (`recover()` on
 * `storage.recoveryInterval`, and in the drain). Owns the poll, wake-up and recovery timers.
 *
 * A shared storage is polled every `flushInterval`, unless it has `watch`: then the engine waits
 * for its wake-ups, and reserves once within `flushInterval` of one (so that records another
 * instance appended wait no longer than the interval, and a burst of wake-ups costs one reserve),
 * with a safety poll every `max(flushInterval, SAFETY_POLL_INTERVAL)`. An idle engine then costs
 * the storage about one round trip a second, at any `flushInterval`.
 */
export class StorageWatch<T> {
  /** The recovery made at start; a drain waits for it. */
  recovering: Promise<void> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | undefined;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;

  constructor(private readonly deps: StorageWatchDeps<T>) {}

  /**
   * At `start()`: recovers what an earlier process left in a storage that outlives processes
   * (the returned promise, which no batch should be reserved before), then watches.
   */
  start(): Promise<void> | undefined {
    const { storage } = this.deps;
    if (storage.shared && !this.startWatching()) this.startPolling(this.deps.flushInterval);
    this.startRecoveryTimer();
    if (!storage.durable && !storage.shared) return undefined;
    this.recovering = this.recoverAtStart();
    return this.recovering;
  }

  /** At `stop()`: no more polls or recoveries on a timer (the drain makes its own). */
  stop(): void {
    this.stopPolling();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    try {
      this.unwatch?.();
    } catch (error) {
      this.deps.report(error);
    }
    this.unwatch = undefined;
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.recoveryTimer = undefined;
  }

  /**
   * A reserve found nothing more than this engine counted: asks the storage whether records it did
   * not append wait (an earlier run's, another writer's), and polls for them while they do.
   */
  async resync(): Promise<void> {
    const { storage, backlog, state } = this.deps;
    if (state() !== 'running' || storage.shared) return;
    try {
      const hidden = (await storage.size()) - backlog.waiting();
      if (hidden > 0) this.startPolling(this.deps.flushInterval);
      else this.stopPolling();
    } catch (error) {
      this.deps.failed('size', error);
    }
  }

  /**
   * Makes records whose holder is gone visible again and dispatchable at once: they have waited
   * long enough. Returns how many came back.
   */
  async recoverLapsed(): Promise<number> {
    let recovered: number;
    try {
      recovered = await this.deps.storage.recover();
    } catch (error) {
      this.deps.failed('recover', error);
      return 0;
    }
    // They were leased when their holder died: the crash guard looks at them one by one first.
    this.deps.found(recovered, recovered > 0);
    return recovered;
  }

  private async recoverAtStart(): Promise<void> {
    const { storage, backlog } = this.deps;
    try {
      const recovered = await storage.recover();
      const hidden = (await storage.size()) - backlog.waiting();
      // Left by an earlier process, which may have held them leased when it died.
      this.deps.found(Math.max(0, hidden), recovered > 0 || hidden > 0);
    } catch (error) {
      this.deps.failed('recover', error);
    }
  }

  /** Subscribes to the storage's wake-ups; false when it has none (or refused the listener). */
  private startWatching(): boolean {
    const { storage, flushInterval } = this.deps;
    if (!storage.watch) return false;
    try {
      this.unwatch = storage.watch(() => this.wakeUp());
    } catch (error) {
      this.deps.failed('watch', error);
      return false;
    }
    this.startPolling(Math.max(flushInterval, SAFETY_POLL_INTERVAL));
    return true;
  }

  /** Records may have become visible elsewhere: reserve within `flushInterval`, once. */
  private wakeUp(): void {
    if (this.wakeTimer || this.deps.state() !== 'running') return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.deps.poll();
    }, this.deps.flushInterval);
    this.wakeTimer.unref();
  }

  private startPolling(interval: number): void {
    if (this.pollTimer || this.deps.state() !== 'running') return;
    const { storage } = this.deps;
    this.pollTimer = setInterval(
      () => {
        // A shared storage that names no recoveryInterval gets its lapsed leases back per poll.
        if (storage.shared && storage.recoveryInterval === undefined) {
          void this.recoverLapsed().then(this.deps.poll);
        } else {
          this.deps.poll();
        }
      },
      Math.min(Math.max(interval, 10), MAX_TIMER_DELAY),
    );
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Takes lapsed leases back on the storage's own schedule, not on `flushInterval`'s. */
  private startRecoveryTimer(): void {
    const interval = this.deps.storage.recoveryInterval;
    if (interval === undefined || this.recoveryTimer) return;
    this.recoveryTimer = setInterval(
      () => void this.recoverLapsed(),
      Math.min(Math.max(interval, 1), MAX_TIMER_DELAY),
    );
    this.recoveryTimer.unref();
  }
}
