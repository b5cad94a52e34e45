import { MemoryStorage } from '../storages/memory-storage.js';
import { Backlog } from './backlog.js';
import { BatchRunner } from './batch-runner.js';
import { Bisector } from './bisect.js';
import { Coalescer } from './coalescer.js';
import { Dispatcher } from './dispatcher.js';
import {
  asError,
  BufferFullError,
  BufIOClosedError,
  DrainTimeoutError,
  InvalidOptionsError,
  InvalidRecordError,
  NoWorkerError,
  RecordDroppedError,
  storageFailure,
  UnsupportedError,
} from './errors.js';
import { type BufIOEventMap, type DrainSummary, type EventSink, SafeEmitter } from './events.js';
import type { Instrumentation } from './instrumentation.js';
import {
  type BufIOOptions,
  laneIndex,
  MAX_TIMER_DELAY,
  OptionChecker,
  type ResolvedOptions,
  resolveOptions,
} from './options.js';
import { Queue } from './queue.js';
import { Counters, type BufIOStats } from './stats.js';
import type { AppendOptions, RecordId, Storage } from './storage.js';
import { type Waiter, Waiters } from './waiters.js';
import type { Worker, WorkFunction } from './worker.js';
import { exitGuard } from './exit-guard.js';
import { handled, rejected } from './handled.js';

export type { BufIOStats } from './stats.js';

/** `created` → `running` (after `start`) → `stopping` (during `stop`) → `stopped`. */
export type BufIOState = 'created' | 'running' | 'stopping' | 'stopped';

/** Options of `stop()`. */
export interface StopOptions {
  /** How long to drain before handing over what is left, in ms. Default 30000. */
  timeout?: number;
}

/** Options of a single `push`. */
export interface PushOptions {
  /** Priority lane, by name or number (see the `priority` option). */
  priority?: string | number;
}

interface BlockedPush<T> {
  readonly records: readonly T[];
  readonly waiter: Waiter<unknown> | undefined;
  readonly lane: number | undefined;
  resolve(): void;
  reject(error: Error): void;
}

const RESOLVED = Promise.resolve();
const DEFAULT_STOP_TIMEOUT = 30_000;

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
export class BufIO<T, U = unknown> extends SafeEmitter<BufIOEventMap<T, U>> {
  /** The buffer's name, from the options. */
  readonly name: string;
  /** Where records wait. */
  readonly storage: Storage<T>;

  private readonly options: ResolvedOptions<T, U>;
  private lifecycle: BufIOState = 'created';
  private stopping: Promise<DrainSummary> | undefined;
  /** What waits in storage, as this engine believes (the counting model is in its header). */
  private readonly backlog: Backlog;
  private readonly blocked = new Queue<BlockedPush<T>>();
  private admitting = false;
  private readonly waiters = new Waiters<U>();
  /** Only with the `coalesce` option. */
  private readonly coalescer: Coalescer<T, U> | undefined;
  private pushHooks: Instrumentation<T>[] = [];
  private readonly counters = new Counters();
  private readonly events: EventSink<T, U> = {
    tell: (event, payload) => this.tell(event, ...([payload] as BufIOEventMap<T, U>[typeof event])),
    listens: (event) => this.listens(event),
    report: (error) => this.report(error),
  };
  private readonly runner: BatchRunner<T, U>;
  private readonly dispatcher: Dispatcher<T, U>;

  /**
   * @throws InvalidOptionsError when an option is of the wrong type or out of range; the error
   * names the option, the value given and what is allowed.
   * @throws UnsupportedError when `coalesce` or `priority` is asked of a storage without it.
   */
  constructor(options: BufIOOptions<T, U> = {}) {
    super();
    this.options = resolveOptions(options);
    this.name = this.options.name;
    this.storage = this.options.storage ?? new MemoryStorage<T>();
    const { features } = this.storage;
    if (this.options.coalesce) {
      if (!(features?.coalesce && canCoalesce(this.storage))) throw this.unsupported('coalesce');
      this.coalescer = new Coalescer(
        this.options.coalesce,
        this.storage,
        this.counters,
        this.waiters,
      );
    }
    if (this.options.priority && !features?.priority) throw this.unsupported('priority');
    this.backlog = new Backlog(this.options.flushInterval, this.options.timers, {
      intervalDue: () => this.dispatcher.noteIntervalDue(),
      retriesDue: () => this.dispatcher.pump(),
    });
    this.runner = new BatchRunner<T, U>(
      {
        name: this.name,
        storage: this.storage,
        options: this.options,
        counters: this.counters,
        waiters: this.waiters,
        events: this.events,
        givesUp: () => this.lifecycle === 'stopped' && !this.storage.durable,
        retryScheduled: (at, count) => this.backlog.scheduleRetry(at, count),
      },
      this.options.bisectOnError ? new Bisector() : undefined,
    );
    this.dispatcher = new Dispatcher<T, U>({
      name: this.name,
      storage: this.storage,
      options: this.options,
      backlog: this.backlog,
      runner: this.runner,
      coalescer: this.coalescer,
      counters: this.counters,
      events: this.events,
      state: () => this.lifecycle,
      roomFreed: () => this.admitBlocked(),
    });
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
    this.runner.setWorker(
      new OptionChecker(`buffer "${this.name}"`).worker<T, U>('worker', worker),
    );
  }

  /**
   * Adds instrumentation (tracing, metrics) that sees each push and wraps each worker call, and
   * returns a function that removes it. Integrations such as `@risemaxi/bufio/tracing` use it;
   * applications rarely need to.
   */
  use(instrumentation: Instrumentation<T>): () => void {
    // Kept apart, so that a push pays nothing for instrumentation that only wraps calls.
    if (instrumentation.onPush) this.pushHooks = [...this.pushHooks, instrumentation];
    const removeWorkHook = instrumentation.aroundWork
      ? this.runner.use(instrumentation)
      : undefined;
    // New arrays, so that a loop already running over the old ones is unaffected.
    return () => {
      this.pushHooks = this.pushHooks.filter((hook) => hook !== instrumentation);
      removeWorkHook?.();
    };
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
    if (!this.runner.hasWorker) throw new NoWorkerError(this.name);
    this.lifecycle = 'running';
    exitGuard.add(this, () => this.finishBeforeExit());
    this.backlog.enableInterval(true);
    this.dispatcher.start();
  }

  /**
   * Accepts one record, or an array of records, into the buffer.
   *
   * Resolves once the storage holds them (at once for `MemoryStorage`). When the buffer is full,
   * `onFull` decides: wait for room, drop, or reject with `BufferFullError`. Safe to call without
   * `await`: a refused push rejects for a caller who awaits it, and is in every case counted
   * (`stats().refused`) and emitted as a `refused` event, never an unhandled rejection. An array
   * is always a list of records; to push a record that is itself an array, wrap it:
   * `push([record])`.
   *
   * @throws BufIOClosedError (as a rejection) after `stop()`.
   * @throws InvalidRecordError (as a rejection) for `undefined` or an empty array.
   */
  push(records: T | readonly T[], options?: PushOptions): Promise<void> {
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return this.refuse(records, new BufIOClosedError(this.name));
    }
    try {
      const backlog = this.backlog;
      if (
        !Array.isArray(records) &&
        records !== undefined &&
        this.storage.appendOne &&
        this.coalescer === undefined &&
        this.blocked.length === 0 &&
        backlog.ready + backlog.delayed + backlog.appending < this.options.maxBufferedRecords
      ) {
        // The common case, one record into a buffer with room: no arrays made on the way.
        const id = this.storage.appendOne(records as T, this.appendOptions(this.laneOf(options)));
        if (this.pushHooks.length > 0) this.runPushHooks([id], [records as T]);
        this.noteAppended(1);
        return RESOLVED;
      }
      const list = Array.isArray(records) ? (records as readonly T[]) : [records as T];
      this.checkRecords(list);
      return this.watchRefusal(list, this.accept(list, undefined, this.laneOf(options)));
    } catch (error) {
      return this.refuse(records, error);
    }
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
      return this.refuse(
        [record],
        new UnsupportedError(
          `pushAndWait is not available on buffer "${this.name}": its storage is shared, so another process may process the record`,
        ),
      );
    }
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return this.refuse([record], new BufIOClosedError(this.name));
    }
    // Also rejects when the record is dead-lettered or dropped: handled, like every promise here.
    return handled(
      new Promise<U | undefined>((resolve, reject) => {
        try {
          this.checkRecords([record]);
          const accepted = this.accept([record], { resolve, reject }, this.laneOf(options));
          this.watchRefusal([record], accepted).catch(reject);
        } catch (error) {
          this.refuse([record], error).catch(reject);
        }
      }),
    );
  }

  /**
   * Processes everything buffered now, in batches, and resolves when each of those records has had
   * its attempt (processed, scheduled for a retry, or dead-lettered). While a flush runs, another
   * `flush()` joins it rather than starting parallel work beyond `concurrency`.
   *
   * @throws NoWorkerError (as a rejection) when no worker is attached.
   */
  flush(): Promise<void> {
    if (!this.runner.hasWorker) return rejected(new NoWorkerError(this.name));
    if (this.lifecycle === 'stopped') return RESOLVED;
    return this.dispatcher.flush();
  }

  /**
   * Stops accepting records and drains: flushes everything buffered, waits for running worker
   * calls and for retries due before the timeout. Then, for a storage that is not durable, what is
   * left goes to `deadLetter` (and the `deadLettered` event) with a `DrainTimeoutError`; a durable
   * storage keeps it for the next start. Resolves with a summary; calling it again returns the same.
   */
  stop(options: StopOptions = {}): Promise<DrainSummary> {
    const check = new OptionChecker(`buffer "${this.name}"`);
    this.stopping ??= handled(
      this.drain(
        check.number('timeout', options.timeout, DEFAULT_STOP_TIMEOUT, 0, MAX_TIMER_DELAY),
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
      coalesced: c.coalesced,
      refused: c.refused,
      unreadable: c.unreadable,
      batches: c.batches,
      buffered: this.backlog.waiting(),
      capacity: this.options.maxBufferedRecords,
      inFlight: this.dispatcher.inFlight,
      blockedPushes: this.blocked.length,
      lastFlushAt: c.lastFlushAt,
      meanBatchSize: c.batches === 0 ? 0 : c.batchRecords / c.batches,
      meanWorkMs: c.batches === 0 ? 0 : c.workMs / c.batches,
      maxWorkMs: c.maxWorkMs,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Accepting records

  private unsupported(option: string): UnsupportedError {
    const storage = this.storage.constructor?.name ?? 'the storage';
    return new UnsupportedError(
      `buffer "${this.name}": option "${option}" needs a storage that supports it, and ${storage} does not (MemoryStorage does)`,
    );
  }

  /** A push refused at once: counted, told, and rejected without risk of an unhandled rejection. */
  private refuse(records: T | readonly T[], error: unknown): Promise<never> {
    this.noteRefused(Array.isArray(records) ? (records as readonly T[]) : [records as T], error);
    return rejected(error);
  }

  /** Counts and tells a push that `accepted` turns out to refuse; returns `accepted`, handled. */
  private watchRefusal(records: readonly T[], accepted: Promise<void>): Promise<void> {
    // The normal path of an in-memory storage pays nothing.
    if (accepted === RESOLVED) return accepted;
    accepted.then(undefined, (error: unknown) => this.noteRefused(records, error));
    return accepted;
  }

  private noteRefused(records: readonly T[], error: unknown): void {
    this.counters.refused += records.length;
    this.tell('refused', { records, error: asError(error) });
  }

  private checkRecords(records: readonly T[]): void {
    if (records.length === 0) {
      throw new InvalidRecordError(`push to buffer "${this.name}" got an empty array`);
    }
    for (let i = 0; i < records.length; i++) {
      if (records[i] === undefined) {
        const at = records.length > 1 ? ` at index ${i}` : '';
        throw new InvalidRecordError(
          `push to buffer "${this.name}" got undefined${at}: a record must be a value`,
        );
      }
    }
  }

  private laneOf(options: PushOptions | undefined): number | undefined {
    const priority = this.options.priority;
    const requested = options?.priority;
    if (requested === undefined) return priority?.defaultLane;
    const lane = priority ? laneIndex(priority.names, requested) : -1;
    if (lane < 0) {
      const expected = priority
        ? `one of the lanes (${priority.names.join(', ')})`
        : 'no priority: the "priority" option is not set';
      throw new InvalidOptionsError(
        'priority',
        requested,
        expected,
        `push to buffer "${this.name}"`,
      );
    }
    return lane;
  }

  /** Whether `count` more records may be appended now, ahead of no blocked push. */
  private hasRoom(count: number): boolean {
    return (
      count === 0 ||
      (this.blocked.length === 0 && this.buffered() + count <= this.options.maxBufferedRecords)
    );
  }

  private buffered(): number {
    return this.backlog.buffered();
  }

  private accept(
    input: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    // With 'error', a push that does not fit is refused whole: none of it may be merged first.
    const coalescer = this.coalescer;
    if (
      coalescer &&
      this.options.onFull === 'error' &&
      !this.hasRoom(coalescer.countFresh(input))
    ) {
      return Promise.reject(new BufferFullError(this.name, this.options.maxBufferedRecords));
    }
    const records = coalescer ? coalescer.mergeWaiting(input, waiter) : input;
    const n = records.length;
    if (n === 0) return RESOLVED;
    if (this.hasRoom(n)) {
      return this.append(records, waiter, lane);
    }
    switch (this.options.onFull) {
      case 'error':
        return Promise.reject(new BufferFullError(this.name, this.options.maxBufferedRecords));
      case 'drop-newest':
        this.drop(records, waiter ? [waiter] : []);
        return RESOLVED;
      case 'drop-oldest':
        return this.evictOldest(records, waiter, lane);
      case 'block': {
        const admitted = new Promise<void>((resolve, reject) => {
          this.blocked.push({
            records,
            waiter: waiter as Waiter<unknown> | undefined,
            lane,
            resolve,
            reject,
          });
        });
        this.admitBlocked(); // a push larger than the whole buffer goes in when it is empty
        return admitted;
      }
    }
  }

  private append(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    let stored;
    try {
      stored = this.storage.append(records, this.appendOptions(lane));
    } catch (error) {
      return Promise.reject(error);
    }
    if (!(stored instanceof Promise)) {
      this.onAppended(records, stored, waiter);
      return RESOLVED;
    }
    const n = records.length;
    this.backlog.startAppend(n);
    return stored.then(
      (ids) => {
        this.backlog.endAppend(n);
        this.onAppended(records, ids, waiter);
      },
      (error: unknown) => {
        this.backlog.endAppend(n);
        this.admitBlocked();
        throw error;
      },
    );
  }

  private onAppended(
    records: readonly T[],
    ids: readonly RecordId[],
    waiter: Waiter<U> | undefined,
  ): void {
    const n = records.length;
    if (waiter) this.waiters.add(ids[0] as RecordId, waiter);
    this.coalescer?.remember(records, ids);
    if (this.pushHooks.length > 0) this.runPushHooks(ids, records);
    this.noteAppended(n);
  }

  private noteAppended(n: number): void {
    this.counters.pushed += n;
    const backlog = this.backlog;
    backlog.add(n);
    if (backlog.ready >= this.options.batchSize) this.dispatcher.pump();
  }

  private runPushHooks(ids: readonly RecordId[], records: readonly T[]): void {
    for (const hook of this.pushHooks) hook.onPush?.(ids, records);
  }

  private appendOptions(lane: number | undefined): AppendOptions | undefined {
    return lane === undefined ? undefined : { lane };
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
        this.append(next.records, next.waiter as Waiter<U> | undefined, next.lane).then(
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
    this.tell('dropped', { records, policy });
  }

  /** Makes room by dropping the oldest visible records; what still does not fit is dropped too. */
  private async evictOldest(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    const excess = this.buffered() + records.length - this.options.maxBufferedRecords;
    const victims = await this.dispatcher.evict(excess);
    if (victims.length > 0) {
      const rejected = new RecordDroppedError(this.name, this.options.onFull);
      this.waiters.reject(victims, rejected);
      this.drop(
        victims.map((v) => v.record),
        [],
      );
    }
    // Records in flight or waiting for a retry cannot be evicted: drop the oldest incoming instead.
    const room = Math.max(0, this.options.maxBufferedRecords - this.buffered());
    if (room >= records.length) return this.append(records, waiter, lane);
    this.drop(records.slice(0, records.length - room), waiter ? [waiter] : []);
    if (room > 0) return this.append(records.slice(records.length - room), undefined, lane);
  }

  private report(error: unknown): void {
    this.tell('error', asError(error));
  }

  // ---------------------------------------------------------------------------------------------
  // Flush completion and draining

  private async drain(timeout: number): Promise<DrainSummary> {
    this.lifecycle = 'stopping';
    const startedAt = Date.now();
    const before = { processed: this.counters.processed, deadLettered: this.counters.deadLettered };
    this.dispatcher.stopWatching();
    this.backlog.enableInterval(false);
    this.backlog.keepAlive(true); // the drain waits for retries due before the deadline
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout);
    });
    const drained = this.runner.hasWorker
      ? this.dispatcher.drainWithin(startedAt + timeout).then(() => true as const)
      : Promise.resolve(false as const);
    const finished = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    this.lifecycle = 'stopped';
    exitGuard.delete(this);
    this.dispatcher.forgetTurns();

    const closed = new BufIOClosedError(this.name);
    while (this.blocked.length > 0) (this.blocked.shift() as BlockedPush<T>).reject(closed);
    if (!this.storage.durable) {
      await this.dispatcher.handOver(
        this.runner.hasWorker
          ? new DrainTimeoutError(this.name, timeout)
          : new NoWorkerError(this.name),
      );
    }
    const remaining = this.storage.durable ? await this.countRemaining() : 0;
    const leasedElsewhere = await this.countLeasedElsewhere();
    this.backlog.forgetRetries();
    const inFlight = this.dispatcher.inFlight;
    // Close once running calls have settled, so that their acks reach the storage.
    const closing = this.dispatcher.whenIdle().then(() => this.storage.close());
    if (inFlight === 0) await closing.catch((error: unknown) => this.report(error));
    else closing.catch((error: unknown) => this.report(error));

    const summary: DrainSummary = {
      processed: this.counters.processed - before.processed,
      deadLettered: this.counters.deadLettered - before.deadLettered,
      remaining,
      leasedElsewhere,
      inFlight,
      timedOut: !finished,
      durationMs: Date.now() - startedAt,
    };
    this.tell('drained', summary);
    return summary;
  }

  /** What a durable storage holds after the drain, as the storage counts it. */
  private async countRemaining(): Promise<number> {
    try {
      return await this.storage.size();
    } catch (error) {
      this.report(storageFailure(this.name, 'size', error));
      return this.backlog.waiting();
    }
  }

  private async countLeasedElsewhere(): Promise<number> {
    if (!this.storage.leasedElsewhere) return 0;
    try {
      return await this.storage.leasedElsewhere();
    } catch (error) {
      this.report(storageFailure(this.name, 'leasedElsewhere', error));
      return 0;
    }
  }

  /** Called when the process is about to exit with records still buffered (stop() was not called). */
  private finishBeforeExit(): void {
    if (this.backlog.waiting() === 0 || !this.runner.hasWorker) return;
    void this.flush();
    // The retry timer does not keep the process alive; at exit, it must, until the retry is made.
    this.backlog.keepAlive(true);
  }
}

/** Whether a storage implements `coalesce` (as `features.coalesce` promises). */
function canCoalesce<T>(
  storage: Storage<T>,
): storage is Storage<T> & Required<Pick<Storage<T>, 'coalesce'>> {
  return typeof storage.coalesce === 'function';
}
