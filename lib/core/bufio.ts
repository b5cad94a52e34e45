import { MemoryStorage } from '../storages/memory-storage.js';
import {
  BufferFullError,
  BufIOClosedError,
  DeadLetterError,
  DrainTimeoutError,
  InvalidOptionsError,
  InvalidRecordError,
  NoWorkerError,
  RecordDroppedError,
  StorageError,
  UnsupportedError,
  WorkTimeoutError,
  toError,
} from './errors.js';
import { type BufIOEvents, type DrainSummary, TypedEmitter } from './events.js';
import {
  type BufIOOptions,
  OptionChecker,
  type ResolvedOptions,
  resolveOptions,
} from './options.js';
import { Queue } from './queue.js';
import { retryDelay } from './retry.js';
import type { RecordId, Storage, StoredRecord } from './storage.js';
import type { Worker, WorkFunction } from './worker.js';
import { perRecordOutcomes } from './worker.js';

/** Counters and timings of a buffer, from `stats()`. */
export interface BufIOStats {
  readonly name: string;
  readonly state: BufIOState;
  /** Records accepted by `push`. */
  readonly pushed: number;
  /** Records the worker processed. */
  readonly processed: number;
  /** Failed attempts, counted per record. */
  readonly failed: number;
  /** Records released for another attempt. */
  readonly retried: number;
  /** Records removed by a dropping `onFull` policy. */
  readonly dropped: number;
  /** Records that failed their last attempt or could not be drained. */
  readonly deadLettered: number;
  /** Worker calls made. */
  readonly batches: number;
  /** Records waiting in storage, retries included, as far as this process knows. */
  readonly buffered: number;
  /** Records in worker calls now running. */
  readonly inFlight: number;
  /** `push` calls waiting for room (`onFull: 'block'`). */
  readonly blockedPushes: number;
  /** When the last worker call finished (epoch ms), or null. */
  readonly lastFlushAt: number | null;
  /** Mean number of records per worker call. */
  readonly meanBatchSize: number;
  /** Mean and longest worker call, in ms. */
  readonly meanWorkMs: number;
  readonly maxWorkMs: number;
}

/** `created` → `running` (after `start`) → `stopping` (during `stop`) → `stopped`. */
export type BufIOState = 'created' | 'running' | 'stopping' | 'stopped';

/** Options of `stop()`. */
export interface StopOptions {
  /** How long to drain before handing over what is left, in ms. Default 30000. */
  timeout?: number;
}

/** Options of a single `push`. */
export interface PushOptions {
  /** Priority lane (see the `priority` option). */
  priority?: number;
}

interface Waiter<U> {
  resolve(value: U | undefined): void;
  reject(error: Error): void;
}

interface BlockedPush<T> {
  readonly records: readonly T[];
  readonly waiter: Waiter<unknown> | undefined;
  resolve(): void;
  reject(error: Error): void;
}

/** Fresh records that arrived between two batches, and when the first of them arrived. */
interface Run {
  readonly at: number;
  count: number;
}

interface FlushWaiter {
  readonly target: number;
  /** The last batch that must finish before the flush resolves; set once the target is taken. */
  lastBatch: number | undefined;
  resolve(): void;
}

const RESOLVED = Promise.resolve();
const DEFAULT_STOP_TIMEOUT = 30_000;
const STORAGE_RETRY_DELAY = 100;

/**
 * A write-behind buffer: `push` records fast, a worker processes them in batches.
 *
 * A batch is dispatched when `batchSize` records wait, when the oldest has waited `flushInterval`
 * ms, on `flush()`, and on `stop()`, which drains. Failed records are retried with backoff, then
 * dead-lettered; a record whose `push` resolved is never lost silently.
 *
 * @example
 * const bufio = new BufIO<Event>({ worker: (events) => db.insertMany(events), batchSize: 50 });
 * bufio.start();
 * await bufio.push(event);
 * await bufio.stop();
 */
export class BufIO<T, U = unknown> extends TypedEmitter<BufIOEvents<T, U>> {
  /** The buffer's name, from the options. */
  readonly name: string;
  /** Where records wait. */
  readonly storage: Storage<T>;

  private readonly options: ResolvedOptions<T, U>;
  private worker: Worker<T, U> | undefined;
  private lifecycle: BufIOState = 'created';
  private stopping: Promise<DrainSummary> | undefined;

  // What waits in storage, as this engine knows it; exact for a storage only this engine uses.
  /** Visible records: fresh ones, and retries whose delay has passed. */
  private ready = 0;
  /** Of `ready`, the retries whose delay has passed: dispatched without waiting for a trigger. */
  private retriesDue = 0;
  /** Records released for a retry whose delay has not passed. */
  private delayed = 0;
  /** Records whose `append` has not finished yet, counted against `maxBufferedRecords`. */
  private appending = 0;
  private readonly pendingAppends = new Set<Promise<void>>();
  private appended = 0;
  /** When released records become visible again, earliest first. */
  private retrySchedule: { at: number; count: number }[] = [];
  /** A clock floor for `reserve`, so a timer firing a little early still sees what it was for. */
  private clockFloor = 0;
  // The arrival time of fresh records, kept per run of pushes between two batches: the clock is
  // read once per batch rather than once per push, the hot path.
  private readonly runs = new Queue<Run>();
  private openRun: Run | undefined;
  private intervalDue = false;
  private pollDue = false;

  // Worker calls.
  private active = 0;
  private inFlight = 0;
  private reserving = false;
  private taken = 0;
  private batchSeq = 0;
  private readonly runningBatches = new Set<number>();
  private flushWaiters: FlushWaiter[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly retryWakeups: (() => void)[] = [];
  private forceUntil = 0;
  private storageBackoff = 0;

  private flushTimer: unknown;
  private flushTimerAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly blocked = new Queue<BlockedPush<T>>();
  private admitting = false;
  private readonly waiters = new Map<RecordId, Waiter<U>>();

  private readonly counters = {
    pushed: 0,
    processed: 0,
    failed: 0,
    retried: 0,
    dropped: 0,
    deadLettered: 0,
    batches: 0,
    batchRecords: 0,
    workMs: 0,
    maxWorkMs: 0,
    lastFlushAt: null as number | null,
  };

  /**
   * @throws InvalidOptionsError when an option is of the wrong type or out of range; the error
   * names the option, the value given and what is allowed.
   */
  constructor(options: BufIOOptions<T, U> = {}) {
    super();
    this.options = resolveOptions(options);
    this.name = this.options.name;
    this.storage = this.options.storage ?? new MemoryStorage<T>();
    this.worker = this.options.worker;
  }

  /** Where the buffer is in its life. */
  get state(): BufIOState {
    return this.lifecycle;
  }

  /**
   * Attaches the worker, when it was not given in the options (the NestJS module attaches the
   * `@BufferWorker` it discovers). Only before `start()`.
   */
  setWorker(worker: Worker<T, U> | WorkFunction<T, U>): void {
    if (this.lifecycle !== 'created') {
      throw new InvalidOptionsError(
        'worker',
        worker,
        'to be set before start()',
        `buffer "${this.name}"`,
      );
    }
    this.worker = new OptionChecker(`buffer "${this.name}"`).worker<T, U>('worker', worker);
  }

  /**
   * Starts flushing: by size, by interval and for retries. Records pushed before wait until now.
   * Records left in a durable storage by an earlier process are recovered and processed first.
   *
   * @throws NoWorkerError when no worker is attached.
   */
  start(): void {
    if (this.lifecycle === 'running') return;
    if (this.lifecycle !== 'created') throw new BufIOClosedError(this.name);
    if (!this.worker) throw new NoWorkerError(this.name);
    this.lifecycle = 'running';
    exitGuard.add(this, () => this.finishBeforeExit());
    if (this.runs.length > 0) this.armFlushTimer();
    if (this.storage.durable || this.storage.shared) void this.recoverStored();
    if (this.storage.shared) this.startPolling();
    this.pump();
  }

  /**
   * Accepts one record, or an array of records, into the buffer.
   *
   * Resolves once the storage holds them (at once for `MemoryStorage`). When the buffer is full,
   * `onFull` decides: wait for room, drop, or reject with `BufferFullError`. Safe to call without
   * `await` on a buffer with room: the normal path never rejects. An array is always a list of
   * records; to push a record that is itself an array, wrap it: `push([record])`.
   *
   * @throws BufIOClosedError (as a rejection) after `stop()`.
   * @throws InvalidRecordError (as a rejection) for `undefined` or an empty array.
   */
  push(records: T | readonly T[], options?: PushOptions): Promise<void> {
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return Promise.reject(new BufIOClosedError(this.name));
    }
    const list = Array.isArray(records) ? (records as readonly T[]) : [records as T];
    const invalid = this.invalidRecords(list);
    if (invalid) return Promise.reject(invalid);
    void options;
    return this.accept(list, undefined);
  }

  /**
   * Pushes one record and resolves when it has been processed, with its result when the worker
   * returns one result per record; rejects with the final error if the record is dead-lettered or
   * dropped. For callers that each want their own answer from a batched call.
   *
   * @throws UnsupportedError with a shared storage, whose records another process may process.
   */
  pushAndWait(record: T, options?: PushOptions): Promise<U | undefined> {
    if (this.storage.shared) {
      return Promise.reject(
        new UnsupportedError(
          `pushAndWait is not available on buffer "${this.name}": its storage is shared, so another process may process the record`,
        ),
      );
    }
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return Promise.reject(new BufIOClosedError(this.name));
    }
    const invalid = this.invalidRecords([record]);
    if (invalid) return Promise.reject(invalid);
    void options;
    return new Promise<U | undefined>((resolve, reject) => {
      const waiter: Waiter<U> = { resolve, reject };
      this.accept([record], waiter).catch(reject);
    });
  }

  /**
   * Processes everything buffered now, in batches, and resolves when each of those records has had
   * its attempt (processed, scheduled for a retry, or dead-lettered). While a flush runs, another
   * `flush()` joins it rather than starting parallel work beyond `concurrency`.
   *
   * @throws NoWorkerError (as a rejection) when no worker is attached.
   */
  flush(): Promise<void> {
    if (!this.worker) return Promise.reject(new NoWorkerError(this.name));
    if (this.lifecycle === 'stopped') return RESOLVED;
    const target = this.taken + this.ready;
    this.forceUntil = Math.max(this.forceUntil, target);
    const done = new Promise<void>((resolve) => {
      this.flushWaiters.push({ target, lastBatch: undefined, resolve });
    });
    this.pump();
    this.settleFlushWaiters();
    return done;
  }

  /**
   * Stops accepting records and drains: flushes everything buffered, waits for running worker
   * calls and for retries due before the timeout. Then, for a storage that is not durable, what is
   * left goes to `deadLetter` (and the `deadLettered` event) with a `DrainTimeoutError`; a durable
   * storage keeps it for the next start. Resolves with a summary; calling it again returns the same.
   */
  stop(options: StopOptions = {}): Promise<DrainSummary> {
    this.stopping ??= this.drain(
      new OptionChecker(`buffer "${this.name}"`).number(
        'timeout',
        options.timeout,
        DEFAULT_STOP_TIMEOUT,
        0,
        2_147_483_647,
      ),
    );
    return this.stopping;
  }

  /** Counters and timings; cheap enough to poll. */
  stats(): BufIOStats {
    const c = this.counters;
    return {
      name: this.name,
      state: this.lifecycle,
      pushed: c.pushed,
      processed: c.processed,
      failed: c.failed,
      retried: c.retried,
      dropped: c.dropped,
      deadLettered: c.deadLettered,
      batches: c.batches,
      buffered: this.ready + this.delayed,
      inFlight: this.inFlight,
      blockedPushes: this.blocked.length,
      lastFlushAt: c.lastFlushAt,
      meanBatchSize: c.batches === 0 ? 0 : c.batchRecords / c.batches,
      meanWorkMs: c.batches === 0 ? 0 : c.workMs / c.batches,
      maxWorkMs: c.maxWorkMs,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Accepting records

  private invalidRecords(records: readonly T[]): InvalidRecordError | undefined {
    if (records.length === 0)
      return new InvalidRecordError(`push to buffer "${this.name}" got an empty array`);
    for (let i = 0; i < records.length; i++) {
      if (records[i] === undefined) {
        return new InvalidRecordError(
          `push to buffer "${this.name}" got undefined${records.length > 1 ? ` at index ${i}` : ''}: a record must be a value`,
        );
      }
    }
    return undefined;
  }

  private buffered(): number {
    return this.ready + this.delayed + this.appending;
  }

  private accept(records: readonly T[], waiter: Waiter<U> | undefined): Promise<void> {
    const n = records.length;
    if (this.blocked.length === 0 && this.buffered() + n <= this.options.maxBufferedRecords) {
      return this.append(records, waiter);
    }
    switch (this.options.onFull) {
      case 'error':
        return Promise.reject(new BufferFullError(this.name, this.options.maxBufferedRecords));
      case 'drop-newest':
        this.drop(records, waiter ? [waiter] : []);
        return RESOLVED;
      case 'drop-oldest':
        return this.evictOldest(records, waiter);
      case 'block':
        return new Promise<void>((resolve, reject) => {
          this.blocked.push({
            records,
            waiter: waiter as Waiter<unknown> | undefined,
            resolve,
            reject,
          });
        });
    }
  }

  private append(records: readonly T[], waiter: Waiter<U> | undefined): Promise<void> {
    const n = records.length;
    let stored;
    try {
      stored = this.storage.append(records);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!(stored instanceof Promise)) {
      this.appendedOk(n, stored, waiter);
      return RESOLVED;
    }
    this.appending += n;
    const settled = stored.then(
      (ids) => {
        this.appending -= n;
        this.pendingAppends.delete(settled);
        this.appendedOk(n, ids, waiter);
      },
      (error: unknown) => {
        this.appending -= n;
        this.pendingAppends.delete(settled);
        this.admitBlocked();
        throw error;
      },
    );
    this.pendingAppends.add(settled);
    return settled;
  }

  private async appendsSettled(): Promise<void> {
    await Promise.allSettled([...this.pendingAppends]);
  }

  private appendedOk(n: number, ids: readonly RecordId[], waiter: Waiter<U> | undefined): void {
    if (waiter) this.waiters.set(ids[0] as RecordId, waiter);
    this.counters.pushed += n;
    this.appended += n;
    this.ready += n;
    if (this.openRun === undefined) {
      this.openRun = { at: Date.now(), count: 0 };
      this.runs.push(this.openRun);
      if (this.runs.length === 1 && this.lifecycle === 'running') this.armFlushTimer();
    }
    this.openRun.count += n;
    if (this.ready >= this.options.batchSize) this.pump();
  }

  /** Lets blocked pushes in, in order, while there is room. */
  private admitBlocked(): void {
    // Appending can dispatch a batch, which frees room and calls back here: the loop below
    // already goes on while there is room, and re-entering would resolve pushes out of order.
    if (this.admitting) return;
    this.admitting = true;
    try {
      while (this.blocked.length > 0) {
        const next = this.blocked.peek() as BlockedPush<T>;
        const room = this.options.maxBufferedRecords - this.buffered();
        // An array larger than the whole buffer gets in once the buffer is empty.
        if (next.records.length > room && this.buffered() > 0) return;
        this.blocked.shift();
        this.append(next.records, next.waiter as Waiter<U> | undefined).then(
          next.resolve,
          next.reject,
        );
      }
    } finally {
      this.admitting = false;
    }
  }

  private drop(records: readonly T[], waiters: readonly Waiter<U>[]): void {
    const policy = this.options.onFull;
    this.counters.dropped += records.length;
    for (const waiter of waiters) waiter.reject(new RecordDroppedError(this.name, policy));
    this.emit('dropped', { records, policy });
  }

  /** Makes room by dropping the oldest visible records; what still does not fit is dropped too. */
  private async evictOldest(records: readonly T[], waiter: Waiter<U> | undefined): Promise<void> {
    const excess = this.buffered() + records.length - this.options.maxBufferedRecords;
    const appendedBefore = this.appended;
    const victims = await this.storage.reserve(excess, { now: this.now() });
    if (victims.length > 0) {
      this.noteTaken(victims, excess, appendedBefore);
      await this.storage.ack(victims);
      this.drop(
        victims.map((v) => v.record),
        this.takeWaiters(victims),
      );
    }
    // Records in flight or waiting for a retry cannot be evicted: drop the oldest incoming instead.
    const room = Math.max(0, this.options.maxBufferedRecords - this.buffered());
    if (room >= records.length) return this.append(records, waiter);
    this.drop(records.slice(0, records.length - room), waiter ? [waiter] : []);
    if (room > 0) return this.append(records.slice(records.length - room), undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Dispatching batches

  private now(): number {
    return Math.max(Date.now(), this.clockFloor);
  }

  private wantsBatch(): boolean {
    return (
      this.forceUntil > this.taken ||
      this.retriesDue > 0 ||
      this.intervalDue ||
      this.pollDue ||
      (this.lifecycle !== 'created' && this.ready >= this.options.batchSize)
    );
  }

  /** Reserves and dispatches batches while a trigger wants one and a worker slot is free. */
  private pump(): void {
    while (
      !this.reserving &&
      this.worker &&
      this.lifecycle !== 'stopped' &&
      this.active < this.options.concurrency &&
      this.wantsBatch()
    ) {
      const limit = this.options.batchSize;
      const appendedBefore = this.appended;
      let reserved;
      this.reserving = true;
      try {
        reserved = this.storage.reserve(limit, {
          now: this.now(),
          maxBytes: this.options.maxBatchBytes,
        });
      } catch (error) {
        this.reserving = false;
        this.storageFailed('reserve', error);
        return;
      }
      if (reserved instanceof Promise) {
        reserved.then(
          (batch) => {
            this.storageBackoff = 0;
            this.reserved(batch, limit, appendedBefore);
            this.reserving = false;
            this.pump();
          },
          (error: unknown) => {
            this.reserving = false;
            this.storageFailed('reserve', error);
          },
        );
        return;
      }
      // Still `reserving` while the batch is dispatched: what this triggers (blocked pushes let
      // in, listeners) must not reserve another batch ahead of this one.
      this.reserved(reserved, limit, appendedBefore);
      this.reserving = false;
    }
  }

  private reserved(batch: StoredRecord<T>[], limit: number, appendedBefore: number): void {
    this.noteTaken(batch, limit, appendedBefore);
    this.pollDue = false;
    if (batch.length === 0) {
      this.forceUntil = this.taken;
      this.intervalDue = false;
    } else {
      this.dispatch(batch);
    }
    this.admitBlocked();
    this.settleFlushWaiters();
  }

  /** Accounts for records that left the visible queue, for a batch or for eviction. */
  private noteTaken(
    batch: readonly StoredRecord<T>[],
    limit: number,
    appendedBefore = this.appended,
  ): void {
    let retries = 0;
    for (const entry of batch) if (entry.attempts > 0) retries++;
    this.taken += batch.length;
    this.ready = Math.max(0, this.ready - batch.length);
    this.retriesDue = Math.max(0, this.retriesDue - retries);
    this.consumeRuns(batch.length - retries);
    const exhausted = batch.length < limit && this.options.maxBatchBytes === undefined;
    if (exhausted || batch.length === 0) {
      // Nothing else is visible: forget estimates, keeping only appends that raced the reserve.
      this.ready = Math.min(this.ready, this.appended - appendedBefore);
      this.retriesDue = 0;
      if (this.ready === 0) this.clearRuns();
      void this.resyncHidden();
    }
  }

  private consumeRuns(fresh: number): void {
    this.openRun = undefined; // later pushes start a new run, with their own arrival time
    let left = fresh;
    while (left > 0 && this.runs.length > 0) {
      const front = this.runs.peek() as Run;
      const used = Math.min(front.count, left);
      front.count -= used;
      left -= used;
      if (front.count === 0) this.runs.shift();
    }
    if (this.intervalDue) {
      const front = this.runs.peek();
      this.intervalDue = front !== undefined && front.at + this.options.flushInterval <= Date.now();
    }
    this.armFlushTimer();
  }

  private clearRuns(): void {
    while (this.runs.length > 0) this.runs.shift();
    this.openRun = undefined;
    this.intervalDue = false;
    this.armFlushTimer();
  }

  /** Keeps one timer, set for when the oldest waiting fresh record will have waited the interval. */
  private armFlushTimer(): void {
    const front = this.runs.peek();
    if (front === undefined || this.lifecycle !== 'running') {
      this.clearFlushTimer();
      return;
    }
    const at = front.at + this.options.flushInterval;
    if (this.flushTimer !== undefined && this.flushTimerAt === at) return;
    this.clearFlushTimer();
    this.flushTimerAt = at;
    this.flushTimer = this.options.timers.set(
      () => {
        this.flushTimer = undefined;
        this.intervalDue = true;
        this.pump();
      },
      Math.max(0, at - Date.now()),
    );
  }

  private clearFlushTimer(): void {
    if (this.flushTimer !== undefined) this.options.timers.clear(this.flushTimer);
    this.flushTimer = undefined;
  }

  private dispatch(batch: StoredRecord<T>[]): void {
    const seq = ++this.batchSeq;
    this.runningBatches.add(seq);
    this.active++;
    this.inFlight += batch.length;
    void this.runBatch(batch, seq);
  }

  private async runBatch(batch: StoredRecord<T>[], seq: number): Promise<void> {
    const records = batch.map((entry) => entry.record);
    let attempt = 1;
    for (const entry of batch) if (entry.attempts >= attempt) attempt = entry.attempts + 1;
    const started = Date.now();
    const outcome = await this.callWorker(records, attempt);
    const durationMs = Date.now() - started;
    const c = this.counters;
    c.batches++;
    c.batchRecords += batch.length;
    c.workMs += durationMs;
    if (durationMs > c.maxWorkMs) c.maxWorkMs = durationMs;
    c.lastFlushAt = Date.now();
    try {
      if (!outcome.ok) {
        await this.failed(batch, () => outcome.error, attempt);
      } else {
        const perRecord = perRecordOutcomes<U>(outcome.value, batch.length);
        if (!perRecord) {
          await this.processed(batch, records, undefined, durationMs);
        } else {
          const done: StoredRecord<T>[] = [];
          const results: (U | undefined)[] = [];
          const failed: StoredRecord<T>[] = [];
          const errors = new Map<StoredRecord<T>, Error>();
          perRecord.forEach((result, i) => {
            const entry = batch[i] as StoredRecord<T>;
            if (result.ok) {
              done.push(entry);
              results.push(result.value);
            } else {
              failed.push(entry);
              errors.set(entry, result.error);
            }
          });
          if (done.length > 0) {
            const doneRecords = done.length === batch.length ? records : done.map((e) => e.record);
            await this.processed(done, doneRecords, results, durationMs);
          }
          if (failed.length > 0)
            await this.failed(failed, (entry) => errors.get(entry) as Error, attempt);
        }
      }
    } catch (error) {
      this.report(error);
    } finally {
      this.active--;
      this.inFlight -= batch.length;
      this.runningBatches.delete(seq);
      if (this.active === 0 && this.idleWaiters.length > 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      }
      this.settleFlushWaiters();
      this.pump();
    }
  }

  private async callWorker(
    records: T[],
    attempt: number,
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: Error }> {
    const worker = this.worker as Worker<T, U>;
    const controller = new AbortController();
    const timeout = this.options.workTimeout;
    let timer: NodeJS.Timeout | undefined;
    try {
      let result: Promise<unknown> | unknown = worker.work(records, {
        buffer: this.name,
        attempt,
        signal: controller.signal,
      });
      if (timeout !== undefined) {
        result = Promise.race([
          result,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const error = new WorkTimeoutError(timeout);
              controller.abort(error);
              reject(error);
            }, timeout);
          }),
        ]);
      }
      return { ok: true, value: await result };
    } catch (error) {
      return { ok: false, error: toError(error) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private async processed(
    entries: StoredRecord<T>[],
    records: readonly T[],
    results: (U | undefined)[] | undefined,
    durationMs: number,
  ): Promise<void> {
    try {
      await this.storage.ack(entries);
    } catch (error) {
      // The worker did its job; a durable storage will deliver these again (at least once).
      this.report(new StorageError(`ack of ${entries.length} record(s) failed`, { cause: error }));
    }
    this.counters.processed += entries.length;
    if (this.waiters.size > 0) {
      entries.forEach((entry, i) => {
        const waiter = this.waiters.get(entry.id);
        if (waiter) {
          this.waiters.delete(entry.id);
          waiter.resolve(results?.[i]);
        }
      });
    }
    if (this.listens('flushed')) this.emit('flushed', { records, results, durationMs });
  }

  /**
   * Records failed an attempt: report each distinct error once, dead-letter the records out of
   * attempts, and release the others for a retry. Records failed together are retried together.
   */
  private async failed(
    entries: StoredRecord<T>[],
    errorOf: (entry: StoredRecord<T>) => Error,
    attempt: number,
  ): Promise<void> {
    this.counters.failed += entries.length;
    for (const [error, group] of groupBy(entries, errorOf)) {
      const records = group.map((e) => e.record);
      try {
        this.options.onError?.(error, records);
      } catch (hookError) {
        this.report(hookError);
      }
      this.emit('failed', { records, error, attempt });
    }
    const giveUp = this.lifecycle === 'stopped' && !this.storage.durable;
    const maxAttempts = this.options.retry.maxAttempts;
    const isLast = (e: StoredRecord<T>): boolean => giveUp || e.attempts + 1 >= maxAttempts;
    for (const [error, group] of groupBy(entries.filter(isLast), errorOf)) {
      await this.deadLetter(group, error);
    }
    // Records of one batch may have failed a different number of times: one delay per count.
    const again = entries.filter((e) => !isLast(e));
    for (const [attempts, group] of groupBy(again, (e) => e.attempts)) {
      const delay = retryDelay(attempts + 1, this.options.retry);
      const at = Date.now() + delay;
      try {
        await this.storage.release(group, at);
      } catch (releaseError) {
        // Still leased: a durable storage recovers them with the lease; report it.
        this.report(
          new StorageError(`release of ${group.length} record(s) failed`, { cause: releaseError }),
        );
        continue;
      }
      this.counters.retried += group.length;
      this.scheduleRetry(at, group.length);
      this.emit('retrying', { records: group.map((e) => e.record), attempt: attempts + 2, delay });
    }
  }

  private async deadLetter(entries: readonly StoredRecord<T>[], error: Error): Promise<void> {
    const records = entries.map((e) => e.record);
    this.counters.deadLettered += entries.length;
    const handler = this.options.deadLetter;
    if (handler) {
      try {
        await handler(records, error);
      } catch (handlerError) {
        this.report(new DeadLetterError(records, handlerError));
      }
    }
    this.emit('deadLettered', { records, error });
    for (const waiter of this.takeWaiters(entries)) waiter.reject(error);
    try {
      await this.storage.ack(entries);
    } catch (ackError) {
      this.report(
        new StorageError(`ack of ${entries.length} dead-lettered record(s) failed`, {
          cause: ackError,
        }),
      );
    }
  }

  private takeWaiters(entries: readonly StoredRecord<T>[]): Waiter<U>[] {
    const found: Waiter<U>[] = [];
    if (this.waiters.size === 0) return found;
    for (const entry of entries) {
      const waiter = this.waiters.get(entry.id);
      if (waiter) {
        this.waiters.delete(entry.id);
        found.push(waiter);
      }
    }
    return found;
  }

  // ---------------------------------------------------------------------------------------------
  // Retries, polling, recovery

  private scheduleRetry(at: number, count: number): void {
    this.delayed += count;
    let i = this.retrySchedule.length;
    while (i > 0 && (this.retrySchedule[i - 1] as { at: number }).at > at) i--;
    this.retrySchedule.splice(i, 0, { at, count });
    this.armRetryTimer();
  }

  private armRetryTimer(keepAlive = false): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const next = this.retrySchedule[0];
    if (!next) return;
    this.retryTimer = setTimeout(() => this.retriesBecameDue(), Math.max(0, next.at - Date.now()));
    // While draining, a retry keeps the process alive: stop() waits for it.
    if (!keepAlive && this.lifecycle !== 'stopping') this.retryTimer.unref();
  }

  private retriesBecameDue(): void {
    this.retryTimer = undefined;
    for (const wake of this.retryWakeups.splice(0)) wake();
    const now = Date.now();
    let n = 0;
    while (
      n < this.retrySchedule.length &&
      (this.retrySchedule[n] as { at: number }).at <= now + 1
    ) {
      const entry = this.retrySchedule[n] as { at: number; count: number };
      this.delayed -= entry.count;
      this.ready += entry.count;
      this.retriesDue += entry.count;
      this.clockFloor = Math.max(this.clockFloor, entry.at);
      n++;
    }
    this.retrySchedule.splice(0, n);
    this.armRetryTimer();
    this.pump();
  }

  /** Learns of records this process did not append: earlier runs', other instances'. */
  private async resyncHidden(): Promise<void> {
    if (this.lifecycle !== 'running') return;
    try {
      const size = await this.storage.size();
      const hidden = size - this.ready - this.delayed;
      if (hidden > 0 && !this.storage.shared) this.startPolling();
      else if (hidden <= 0 && !this.storage.shared) this.stopPolling();
    } catch (error) {
      this.storageFailed('size', error);
    }
  }

  private async recoverStored(): Promise<void> {
    try {
      await this.storage.recover();
      const size = await this.storage.size();
      const hidden = size - this.ready - this.delayed;
      if (hidden > 0) {
        // Left by an earlier process: they have waited long enough already.
        this.ready += hidden;
        this.forceUntil = Math.max(this.forceUntil, this.taken + hidden);
        this.pump();
      }
    } catch (error) {
      this.storageFailed('recover', error);
    }
  }

  private startPolling(): void {
    if (this.pollTimer || this.lifecycle !== 'running') return;
    this.pollTimer = setInterval(
      () => {
        this.pollDue = true;
        if (this.storage.shared) {
          Promise.resolve(this.storage.recover()).then(
            () => this.pump(),
            (error: unknown) => this.storageFailed('recover', error),
          );
        } else {
          this.pump();
        }
      },
      Math.max(this.options.flushInterval, 10),
    );
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** A storage call failed: report it and try again later, backing off, as the service recovers. */
  private storageFailed(operation: string, error: unknown): void {
    this.report(
      error instanceof Error && 'code' in error && String(error.code).startsWith('BUFIO_')
        ? error
        : new StorageError(`storage ${operation} failed for buffer "${this.name}"`, {
            cause: error,
          }),
    );
    if (this.lifecycle === 'stopped') return;
    this.storageBackoff = Math.min(
      this.options.retry.maxDelay,
      Math.max(STORAGE_RETRY_DELAY, this.storageBackoff * this.options.retry.factor),
    );
    setTimeout(() => {
      this.pollDue = true;
      this.pump();
    }, this.storageBackoff).unref();
  }

  private report(error: unknown): void {
    this.emit('error', toError(error));
  }

  // ---------------------------------------------------------------------------------------------
  // Flush completion and draining

  private settleFlushWaiters(): void {
    if (this.flushWaiters.length === 0) return;
    const exhausted = this.forceUntil <= this.taken;
    let lowestRunning = Infinity;
    for (const seq of this.runningBatches) if (seq < lowestRunning) lowestRunning = seq;
    this.flushWaiters = this.flushWaiters.filter((waiter) => {
      if (waiter.lastBatch === undefined && (exhausted || this.taken >= waiter.target)) {
        waiter.lastBatch = this.batchSeq;
      }
      if (waiter.lastBatch !== undefined && waiter.lastBatch < lowestRunning) {
        waiter.resolve();
        return false;
      }
      return true;
    });
  }

  private async drain(timeout: number): Promise<DrainSummary> {
    this.lifecycle = 'stopping';
    const startedAt = Date.now();
    const before = { processed: this.counters.processed, deadLettered: this.counters.deadLettered };
    this.stopPolling();
    this.clearFlushTimer();
    this.armRetryTimer(); // now ref'd: the drain waits for retries due before the deadline
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout);
    });
    const drained = this.worker
      ? this.drainWithin(startedAt + timeout).then(() => true as const)
      : Promise.resolve(false as const);
    const finished = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    this.lifecycle = 'stopped';
    exitGuard.delete(this);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;

    const closed = new BufIOClosedError(this.name);
    while (this.blocked.length > 0) (this.blocked.shift() as BlockedPush<T>).reject(closed);
    if (!this.storage.durable) {
      await this.handOverRemaining(
        this.worker ? new DrainTimeoutError(this.name, timeout) : new NoWorkerError(this.name),
      );
    }
    const remaining = this.storage.durable ? this.ready + this.delayed : 0;
    const inFlight = this.inFlight;
    // Close once running calls have settled, so their acks reach the storage.
    const closing = this.whenIdle().then(() => this.storage.close());
    if (inFlight === 0) await closing.catch((error: unknown) => this.report(error));
    else closing.catch((error: unknown) => this.report(error));

    const summary: DrainSummary = {
      processed: this.counters.processed - before.processed,
      deadLettered: this.counters.deadLettered - before.deadLettered,
      remaining,
      inFlight,
      timedOut: !finished,
      durationMs: Date.now() - startedAt,
    };
    this.emit('drained', summary);
    return summary;
  }

  /** Flushes until nothing is left, waiting for retries that fall due before `deadline`. */
  private async drainWithin(deadline: number): Promise<void> {
    while (this.lifecycle === 'stopping') {
      await this.flush();
      if (this.appending > 0) {
        await this.appendsSettled();
        continue;
      }
      // Visible records again: blocked pushes were let in as the flush made room.
      if (this.ready > 0) continue;
      const next = this.retrySchedule[0];
      if (!next || next.at > deadline) return;
      await new Promise<void>((resolve) => this.retryWakeups.push(resolve));
    }
  }

  /** What a non-durable storage still holds when the drain ends goes to the dead-letter path. */
  private async handOverRemaining(error: Error): Promise<void> {
    for (;;) {
      const rest = await this.storage.reserve(this.options.batchSize, { now: Infinity });
      if (rest.length === 0) break;
      this.ready = Math.max(0, this.ready - rest.length);
      await this.deadLetter(rest, error);
    }
    this.ready = 0;
    this.delayed = 0;
    this.retriesDue = 0;
    this.retrySchedule = [];
  }

  private whenIdle(): Promise<void> {
    if (this.active === 0) return RESOLVED;
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Called when the process is about to exit with records still buffered (stop() was not called). */
  private finishBeforeExit(): void {
    if (this.ready + this.delayed === 0 || !this.worker) return;
    void this.flush();
    // A retry timer is unref'd; at exit, keep the process alive until the retry is made.
    if (this.retrySchedule.length > 0) this.armRetryTimer(true);
  }
}

function groupBy<V, K>(items: readonly V[], keyOf: (item: V) => K): Map<K, V[]> {
  const groups = new Map<K, V[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/**
 * Timers never keep the process alive, so a script that forgets `stop()` would exit with records
 * still buffered in memory. When Node is about to exit for lack of work, running buffers flush what
 * they hold first; the work they start keeps the process alive until it is done.
 */
const exitGuard = {
  buffers: new Map<object, () => void>(),
  listening: false,
  add(buffer: object, finish: () => void): void {
    this.buffers.set(buffer, finish);
    if (!this.listening) {
      this.listening = true;
      process.on('beforeExit', () => {
        for (const finish of this.buffers.values()) finish();
      });
    }
  },
  delete(buffer: object): void {
    this.buffers.delete(buffer);
  },
};
