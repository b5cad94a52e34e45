import { Arrivals } from './arrivals.js';
import type { FlushTimers } from './options.js';
import { RetrySchedule } from './retry-schedule.js';
import type { StoredRecord } from './storage.js';

/** What the backlog tells the dispatcher. */
export interface BacklogEvents {
  /** The oldest fresh record has waited `flushInterval`. */
  readonly intervalDue: () => void;
  /** Retries became visible again: they go without waiting for another trigger. */
  readonly retriesDue: () => void;
}

/**
 * The engine's ledger: what waits in storage, as this engine believes.
 *
 * The counting model. A record this engine appends is counted `appending` while its append runs,
 * then `ready` (visible: a reserve may take it). A reserve takes records out of `ready` (and
 * `taken`, in the flush tracker, grows by as many). A record released for a retry is `delayed`
 * until its retry time, then `ready` again, and counted in `retriesDue` too until a reserve takes
 * it (due retries are dispatched without waiting for a trigger). Records found in storage rather
 * than appended (left by an earlier process, recovered from a dead holder) are added to `ready`
 * as overdue. So:
 *
 * - `waiting() = ready + delayed` is what `stats().buffered`, the drain and the exit guard see;
 * - `buffered() = ready + delayed + appending` is what `maxBufferedRecords` bounds; records in a
 *   running worker call count in neither;
 * - `storage.size()` is the truth: the counts are estimates, exact for a storage only this engine
 *   uses. When a reserve returns less than it asked for, nothing else is visible, so `ready`
 *   drops to the appends that raced that reserve, and the dispatcher compares `size()` with
 *   `waiting()` to learn of records it did not append (and polls for them).
 *
 * The counters are plain fields, read by `BufIO.push`'s fast path.
 */
export class Backlog {
  /** Visible records: fresh ones, and retries whose delay has passed. */
  ready = 0;
  /** Of `ready`, the retries whose delay has passed, until a reserve takes them. */
  retriesDue = 0;
  /** Records released for a retry whose delay has not passed. */
  delayed = 0;
  /** Records whose `append` has not finished yet. */
  appending = 0;
  /** Records appended so far: tells a reserve which appends raced it. */
  appended = 0;
  /** A clock floor for `reserve`, so that a retry timer firing early still sees its records. */
  private clockFloor = 0;
  private readonly arrivals: Arrivals;
  private readonly retries: RetrySchedule;
  private appendWaiters: (() => void)[] = [];
  private retryWaiters: (() => void)[] = [];

  constructor(
    flushInterval: number,
    timers: FlushTimers,
    private readonly events: BacklogEvents,
  ) {
    this.arrivals = new Arrivals(flushInterval, timers, events.intervalDue);
    this.retries = new RetrySchedule((count, at) => this.noteRetriesDue(count, at));
  }

  /** `count` records were appended by this engine. Inlined into `push`: keep it this small. */
  add(count: number): void {
    this.appended += count;
    this.ready += count;
    this.arrivals.add(count);
  }

  /** `count` records were found in storage that this engine did not append: due at once. */
  addOverdue(count: number): void {
    this.ready += count;
    this.arrivals.addOverdue(count);
  }

  /** Records waiting in storage, retries included. */
  waiting(): number {
    return this.ready + this.delayed;
  }

  /** What `maxBufferedRecords` bounds: waiting records and those being appended. */
  buffered(): number {
    return this.ready + this.delayed + this.appending;
  }

  /** The clock to reserve with. */
  now(): number {
    return Math.max(Date.now(), this.clockFloor);
  }

  /** Whether the oldest fresh record has waited `flushInterval` by `now`. */
  isIntervalDue(now: number): boolean {
    return this.arrivals.due(now);
  }

  /**
   * A reserve that asked for `limit` records (when `appended` was `appendedBefore`) took `batch`.
   * Returns true when the reserve shows that nothing else is visible.
   */
  take(
    batch: readonly StoredRecord<unknown>[],
    limit: number,
    appendedBefore: number,
    bytesCapped: boolean,
  ): boolean {
    let retried = 0;
    for (const entry of batch) if (entry.attempts > 0) retried++;
    // Retries the storage gave back before their timer fired were not counted as ready yet.
    const dueTaken = Math.min(retried, this.retriesDue);
    const early = retried - dueTaken;
    if (early > 0) {
      const stillDelayed = Math.min(early, this.delayed);
      this.delayed -= stillDelayed;
      this.retries.takeEarly(stillDelayed);
    }
    this.ready = Math.max(0, this.ready - (batch.length - early));
    this.retriesDue -= dueTaken;
    this.arrivals.remove(batch.length - retried);
    if (batch.length >= limit || bytesCapped) return false;
    // Nothing else is visible: forget estimates, keeping only appends that raced the reserve.
    this.ready = Math.min(this.ready, this.appended - appendedBefore);
    this.retriesDue = 0;
    if (this.ready === 0) this.arrivals.clear();
    return true;
  }

  /** `count` records were released for a retry, visible again at `at`. */
  scheduleRetry(at: number, count: number): void {
    this.delayed += count;
    this.retries.add(at, count);
  }

  /** When the next delayed records become visible, if any wait. */
  nextRetryAt(): number | undefined {
    return this.retries.next();
  }

  /** Resolves when the next retries become visible. */
  whenRetriesDue(): Promise<void> {
    return new Promise<void>((resolve) => this.retryWaiters.push(resolve));
  }

  /** `count` records went into an append that has not finished. */
  startAppend(count: number): void {
    this.appending += count;
  }

  /** That append finished (stored, or refused). */
  endAppend(count: number): void {
    this.appending -= count;
    if (this.appending === 0 && this.appendWaiters.length > 0) {
      const waiters = this.appendWaiters;
      this.appendWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when no append runs. */
  whenAppended(): Promise<void> {
    if (this.appending === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.appendWaiters.push(resolve));
  }

  /** Starts (at `start()`) or stops (at `stop()`) the flush timer of the oldest fresh record. */
  enableInterval(enabled: boolean): void {
    this.arrivals.enable(enabled);
  }

  /** Whether the retry timer holds the process open (during a drain, or at exit). */
  keepAlive(keepAlive: boolean): void {
    this.retries.setKeepAlive(keepAlive);
  }

  /** The storage was emptied for good (handed over at the end of a drain). */
  forgetVisible(): void {
    this.ready = 0;
    this.retriesDue = 0;
  }

  /** Forgets the retries and their timer (at the end of a drain). */
  forgetRetries(): void {
    this.retries.clear();
    this.delayed = 0;
  }

  private noteRetriesDue(count: number, at: number): void {
    this.delayed -= count;
    this.ready += count;
    this.retriesDue += count;
    this.clockFloor = Math.max(this.clockFloor, at);
    const waiters = this.retryWaiters;
    this.retryWaiters = [];
    for (const wake of waiters) wake();
    this.events.retriesDue();
  }
}
