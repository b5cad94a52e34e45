import type { Backlog } from './backlog.js';
import type { BatchRunner } from './batch-runner.js';
import type { BufIOState } from './bufio.js';
import type { Coalescer } from './coalescer.js';
import { CrashGuard } from './crash-guard.js';
import { storageFailure, UnreadableRecordError } from './errors.js';
import type { EngineContext } from './engine.js';
import { FlushTracker } from './flush-tracker.js';
import type { ReserveOptions, StoredRecord, UnreadableRecord } from './storage.js';
import { StorageWatch } from './storage-watch.js';
import { TurnBudget } from './turn-budget.js';

/** What a `Dispatcher` needs from the engine around it. */
export interface DispatcherDeps<T, U> extends EngineContext<T, U> {
  readonly backlog: Backlog;
  readonly runner: BatchRunner<T, U>;
  readonly coalescer: Coalescer<T, U> | undefined;
  readonly state: () => BufIOState;
  /** Records left the buffer or the storage (reserved, acked): blocked pushes may go in. */
  readonly roomFreed: () => void;
}

const RESOLVED = Promise.resolve();
const STORAGE_RETRY_DELAY = 100;

/**
 * Decides when a batch goes and reserves it: the only caller of `storage.reserve` (for batches,
 * for `'drop-oldest'` eviction and for the drain's hand-over), one reserve at a time. Owns the
 * triggers (size, interval, due retries, flush, poll), the worker slots, the crash guard's careful
 * mode, the `TurnBudget`, the backoff after a storage failure, and the `StorageWatch`.
 *
 * `pump()` is the one idempotent "make progress" method, called whenever a trigger may have
 * fired or a slot freed. On this path a storage call that returns a plain value is never awaited:
 * awaiting it would add a microtask per batch and change where batches are cut.
 */
export class Dispatcher<T, U> {
  /** Records in worker calls now running. */
  inFlight = 0;
  private active = 0;
  /** A reserve runs: no other may start (see `acquireReserve`). */
  private reserving = false;
  private readonly reserveQueue: (() => void)[] = [];
  /** No batch is reserved before the recovery at start tells whether records crashed a process. */
  private held = false;
  private intervalDue = false;
  private pollDue = false;
  private storageBackoff = 0;
  private readonly flushes = new FlushTracker();
  private readonly crashGuard: CrashGuard | undefined;
  private readonly watch: StorageWatch<T>;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly turns = new TurnBudget(() => this.pump());
  /** Given to every reserve: records the storage set aside because it could not read them. */
  private readonly onUnreadable = (records: readonly UnreadableRecord[]): void => {
    this.reportUnreadable(records);
  };

  constructor(private readonly deps: DispatcherDeps<T, U>) {
    const { storage, options, backlog } = deps;
    const { batchSize, concurrency, retry } = options;
    this.crashGuard =
      storage.durable || storage.shared
        ? new CrashGuard(batchSize, concurrency, retry.maxAttempts)
        : undefined;
    this.watch = new StorageWatch({
      storage,
      backlog,
      flushInterval: options.flushInterval,
      state: deps.state,
      poll: () => this.poll(),
      found: (count, crashed) => this.noteFound(count, crashed),
      failed: (operation, error) => this.storageFailed(operation, error),
      report: deps.events.report,
    });
  }

  /** At `start()`: the size trigger counts from now; recovery and watching start. */
  start(): void {
    const recovery = this.watch.start();
    if (recovery) {
      this.held = true;
      void recovery.then(() => {
        this.held = false;
        this.pump();
      });
    }
    this.pump();
  }

  /** The oldest fresh record has waited `flushInterval`. */
  noteIntervalDue(): void {
    this.intervalDue = true;
    this.pump();
  }

  /** Reserves and dispatches batches while a trigger wants one and a worker slot is free. */
  pump(): void {
    const { storage, options, backlog } = this.deps;
    // The slot check first: a burst of pushes calls this once per push while a batch runs.
    while (
      this.active < this.slots() &&
      !this.reserving &&
      !this.held &&
      this.deps.runner.hasWorker &&
      this.deps.state() !== 'stopped' &&
      this.wantsBatch()
    ) {
      if (this.turns.isSpent(backlog.appended)) return;
      const limit = this.crashGuard ? this.crashGuard.reserveLimit() : options.batchSize;
      const appendedBefore = backlog.appended;
      let reserved;
      this.reserving = true;
      try {
        reserved = storage.reserve(limit, {
          now: backlog.now(),
          maxBytes: options.maxBatchBytes,
          laneShare: options.priority?.share,
          onUnreadable: this.onUnreadable,
        });
      } catch (error) {
        this.endReserve();
        this.storageFailed('reserve', error);
        return;
      }
      if (reserved instanceof Promise) {
        reserved.then(
          (batch) => {
            this.storageBackoff = 0;
            this.onReserved(batch, limit, appendedBefore);
            if (!this.endReserve()) this.pump();
          },
          (error: unknown) => {
            this.endReserve();
            this.storageFailed('reserve', error);
          },
        );
        return;
      }
      // Still `reserving` while the batch is dispatched: what this triggers (blocked pushes let
      // in, listeners) must not reserve another batch ahead of this one.
      this.onReserved(reserved, limit, appendedBefore);
      if (this.endReserve()) return;
    }
  }

  /** Resolves once everything visible now has been taken and each of its batches has ended. */
  flush(): Promise<void> {
    const done = this.flushes.request(this.deps.backlog.ready);
    this.pump();
    this.flushes.settle();
    return done;
  }

  /**
   * Takes up to `count` of the oldest visible records out of the storage for good (`'drop-oldest'`
   * eviction) and returns them: acked, accounted for, forgotten by the runner.
   */
  async evict(count: number): Promise<StoredRecord<T>[]> {
    const { storage, backlog, runner } = this.deps;
    await this.acquireReserve();
    let victims: StoredRecord<T>[];
    try {
      const appendedBefore = backlog.appended;
      victims = await storage.reserve(count, this.reserveOptions(backlog.now()));
      this.accountTaken(victims, count, appendedBefore, false);
    } finally {
      if (!this.endReserve()) this.pump();
    }
    if (victims.length > 0) {
      await storage.ack(victims);
      runner.forget(victims);
    }
    return victims;
  }

  /** Flushes until nothing is left, waiting for retries that fall due before `deadline`. */
  async drainWithin(deadline: number): Promise<void> {
    const { storage, backlog, state } = this.deps;
    await this.watch.recovering;
    const recovers = storage.durable || storage.shared;
    // Leases that lapsed since the last recovery are this drain's to process.
    if (recovers) await this.watch.recoverLapsed();
    while (state() === 'stopping') {
      await this.flush();
      if (backlog.appending > 0) {
        await backlog.whenAppended();
        continue;
      }
      // Visible records again: blocked pushes were let in as the flush made room.
      if (backlog.ready > 0) continue;
      // A call the flush did not start (a retry's) may still fail and schedule another retry.
      if (this.active > 0) {
        await this.whenIdle();
        continue;
      }
      const next = backlog.nextRetryAt();
      if (next === undefined || next > deadline) {
        // Before it says what is left: leases that lapsed while it drained.
        if (recovers && (await this.watch.recoverLapsed()) > 0) continue;
        return;
      }
      await backlog.whenRetriesDue();
    }
  }

  /** What a storage that is not durable still holds when the drain ends: dead-lettered. */
  async handOver(error: Error): Promise<void> {
    const { storage, options, runner } = this.deps;
    await this.acquireReserve();
    try {
      for (;;) {
        const rest = await storage.reserve(options.batchSize, this.reserveOptions(Infinity));
        if (rest.length === 0) break;
        await runner.deadLetter(rest, error);
      }
    } finally {
      this.endReserve();
    }
    this.deps.backlog.forgetVisible();
  }

  /** At `stop()`: no more polls and recoveries on timers. */
  stopWatching(): void {
    this.watch.stop();
  }

  /** At the end of a drain: no batch follows, so no turn is left to watch. */
  forgetTurns(): void {
    this.turns.forget();
  }

  /** Resolves when no worker call runs. */
  whenIdle(): Promise<void> {
    if (this.active === 0) return RESOLVED;
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** A storage call failed: report it and try again later, backing off, as the service recovers. */
  storageFailed(operation: string, error: unknown): void {
    this.deps.events.report(storageFailure(this.deps.name, operation, error));
    if (this.deps.state() === 'stopped') return;
    const { factor, maxDelay } = this.deps.options.retry;
    const backoff = Math.max(STORAGE_RETRY_DELAY, this.storageBackoff * factor);
    this.storageBackoff = Math.min(maxDelay, backoff);
    setTimeout(() => this.poll(), this.storageBackoff).unref();
  }

  private wantsBatch(): boolean {
    const { backlog, options } = this.deps;
    return (
      this.flushes.isForcing ||
      backlog.retriesDue > 0 ||
      this.intervalDue ||
      this.pollDue ||
      (backlog.ready >= options.batchSize && this.deps.state() !== 'created')
    );
  }

  /** Worker calls that may run at once: one while records that crashed a process are about. */
  private slots(): number {
    return this.crashGuard?.isCareful ? 1 : this.deps.options.concurrency;
  }

  private poll(): void {
    this.pollDue = true;
    this.pump();
  }

  private noteFound(count: number, crashed: boolean): void {
    if (crashed) this.crashGuard?.probe();
    if (count > 0) {
      this.deps.backlog.addOverdue(count);
      this.intervalDue = true;
    }
    this.pump();
  }

  private onReserved(batch: StoredRecord<T>[], limit: number, appendedBefore: number): void {
    const bytesCapped = this.deps.options.maxBatchBytes !== undefined;
    this.accountTaken(batch, limit, appendedBefore, bytesCapped);
    // A poll goes on while reserves come back full: records this engine did not count may remain.
    if (batch.length < limit && !(bytesCapped && batch.length > 0)) this.pollDue = false;
    if (this.intervalDue) this.intervalDue = this.deps.backlog.isIntervalDue(Date.now());
    if (batch.length === 0) {
      this.flushes.noteEmpty();
      this.intervalDue = false;
      this.crashGuard?.inspect(batch);
    } else if (this.crashGuard) {
      const looped = this.crashGuard.inspect(batch);
      const rest = looped.length === 0 ? batch : batch.filter((entry) => !looped.includes(entry));
      // A careful batch is one call: its parts must not wait, leased, for another part's call.
      this.dispatch(rest, looped, this.crashGuard.isCareful);
    } else {
      this.dispatch(batch, [], false);
    }
    this.deps.roomFreed();
    this.flushes.settle();
  }

  /** Accounts for records that left the visible queue, for a batch or for eviction. */
  private accountTaken(
    batch: readonly StoredRecord<T>[],
    limit: number,
    appendedBefore: number,
    bytesCapped: boolean,
  ): void {
    const exhausted = this.deps.backlog.take(batch, limit, appendedBefore, bytesCapped);
    this.flushes.countTaken(batch.length);
    this.deps.coalescer?.forget(batch);
    if (exhausted) void this.watch.resync();
  }

  private dispatch(batch: StoredRecord<T>[], looped: StoredRecord<T>[], whole: boolean): void {
    this.turns.noteDispatch(this.deps.backlog.appended);
    const seq = this.flushes.startBatch();
    this.active++;
    this.inFlight += batch.length;
    void this.runBatch(batch, seq, looped, whole);
  }

  private async runBatch(
    batch: StoredRecord<T>[],
    seq: number,
    looped: StoredRecord<T>[],
    whole: boolean,
  ): Promise<void> {
    await this.deps.runner.run(batch, looped, whole);
    // Acked records may have made room in a storage that refused appends (a byte budget).
    this.deps.roomFreed();
    this.active--;
    this.inFlight -= batch.length;
    this.flushes.endBatch(seq);
    if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    this.flushes.settle();
    this.pump();
  }

  /** Waits for its turn to reserve: the dispatcher reserves one batch at a time. */
  private acquireReserve(): Promise<void> {
    if (!this.reserving) {
      this.reserving = true;
      return RESOLVED;
    }
    return new Promise<void>((resolve) => this.reserveQueue.push(resolve));
  }

  /** Ends a reserve; returns true when it handed the turn straight to a waiting one. */
  private endReserve(): boolean {
    const next = this.reserveQueue.shift();
    if (next === undefined) {
      this.reserving = false;
      return false;
    }
    next();
    return true;
  }

  private reserveOptions(now: number): ReserveOptions {
    return { now, onUnreadable: this.onUnreadable };
  }

  /** Unreadable records are never processed: counted and reported, never dropped silently. */
  private reportUnreadable(records: readonly UnreadableRecord[]): void {
    if (records.length === 0) return;
    const { name, counters, options, events } = this.deps;
    counters.unreadable += records.length;
    const error = new UnreadableRecordError(name, records);
    try {
      options.onError?.(error, []);
    } catch (hookError) {
      events.report(hookError);
    }
    events.tell('error', error);
  }
}
