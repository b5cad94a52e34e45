import { randomUUID } from 'node:crypto';
import { MemoryStorage } from '../storages/memory-storage.js';
import { Arrivals } from './arrivals.js';
import { Bisector } from './bisect.js';
import { CrashGuard, crashesOf } from './crash-guard.js';
import {
  BufferFullError,
  BufIOClosedError,
  CrashLoopError,
  UnreadableRecordError,
  DeadLetterError,
  DrainTimeoutError,
  InvalidOptionsError,
  InvalidRecordError,
  isError,
  NoWorkerError,
  RecordDroppedError,
  StorageError,
  UnsupportedError,
  WorkTimeoutError,
  toError,
} from './errors.js';
import { type BufIOEventMap, type DrainSummary, SafeEmitter } from './events.js';
import { isThenable } from './thenable.js';
import type { Instrumentation, WorkCall, WorkReport } from './instrumentation.js';
import {
  type BufIOOptions,
  laneIndex,
  OptionChecker,
  type ResolvedOptions,
  resolveOptions,
} from './options.js';
import { Queue } from './queue.js';
import { RetrySchedule } from './retry-schedule.js';
import { retryDelay } from './retry.js';
import type {
  AppendOptions,
  RecordId,
  Storage,
  StoredRecord,
  UnreadableRecord,
} from './storage.js';
import { type Waiter, Waiters } from './waiters.js';
import { CallContext, perRecordOutcomes, type Worker, type WorkFunction } from './worker.js';
import { exitGuard } from './exit-guard.js';
import { handled, rejected } from './handled.js';

/** Counters and timings of a buffer, from `stats()`. */
export interface BufIOStats {
  readonly name: string;
  readonly state: BufIOState;
  /** Records accepted by `push` (coalesced ones included). */
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
  /** Records merged into a waiting record with the same key (`coalesce`). */
  readonly coalesced: number;
  /**
   * Records whose `push` was refused (rejected): after `stop()`, when full with `onFull: 'error'`,
   * invalid, or when the storage failed to store them. Counted (and emitted as `refused`) whether
   * or not the caller awaited the push.
   */
  readonly refused: number;
  /**
   * Stored records the storage could not read back (damaged bytes, a payload the serializer
   * refuses): set aside by the storage and reported as `UnreadableRecordError`, never processed.
   */
  readonly unreadable: number;
  /** Worker calls made. */
  readonly batches: number;
  /** Records waiting in storage, retries included, as far as this process knows. */
  readonly buffered: number;
  /** `maxBufferedRecords`: how many may wait. */
  readonly capacity: number;
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

interface FlushWaiter {
  readonly target: number;
  /** The last batch that must finish before the flush resolves; set once the target is taken. */
  lastBatch: number | undefined;
  resolve(): void;
}

type CallOutcome = { ok: true; value: unknown } | { ok: false; error: Error };

const RESOLVED = Promise.resolve();
const DEFAULT_STOP_TIMEOUT = 30_000;
const STORAGE_RETRY_DELAY = 100;
const MAX_TIMER_DELAY = 2_147_483_647;
/**
 * How long batches may follow one another without the event loop getting a turn, in ms. Batches
 * that complete in microtasks (a worker failing at once while a downstream is down, an in-memory
 * storage) would otherwise starve timers, I/O and pushes for as long as records are left.
 */
const TURN_BUDGET_MS = 5;

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
  private worker: Worker<T, U> | undefined;
  private lifecycle: BufIOState = 'created';
  private stopping: Promise<DrainSummary> | undefined;
  /** Recovery of what an earlier process left in a durable storage; a drain waits for it. */
  private recovering: Promise<void> = RESOLVED;
  /** No batch is reserved before that recovery has told whether records came back from a crash. */
  private holdForRecovery = false;

  // What waits in storage, as this engine knows it; exact for a storage only this engine uses.
  /** Visible records: fresh ones, and retries whose delay has passed. */
  private ready = 0;
  /** Of `ready`, the retries whose delay has passed: dispatched without waiting for a trigger. */
  private retriesDue = 0;
  /** Records whose `append` has not finished yet, counted against `maxBufferedRecords`. */
  private appending = 0;
  private appended = 0;
  private readonly pendingAppends = new Set<Promise<void>>();
  /** A clock floor for `reserve`, so that a retry timer firing early still sees its records. */
  private clockFloor = 0;
  private readonly arrivals: Arrivals;
  private readonly retries: RetrySchedule;
  private intervalDue = false;
  private pollDue = false;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Calls `recover()` every `storage.recoveryInterval` ms while running. */
  private recoveryTimer: NodeJS.Timeout | undefined;
  private storageBackoff = 0;

  // Worker calls.
  private active = 0;
  private inFlight = 0;
  private reserving = false;
  /** Records reserved so far; `flush()` waits until this passes what was visible at its call. */
  private taken = 0;
  private forceUntil = 0;
  private batchSeq = 0;
  private readonly runningBatches = new Set<number>();
  /** When the first batch since the event loop's last turn was dispatched; -1 if none was. */
  private turnStartedAt = -1;
  /** Resets `turnStartedAt` at the event loop's next turn. */
  private turnTimer: NodeJS.Immediate | undefined;
  private yieldTimer: NodeJS.Immediate | undefined;
  private readonly endTurn = (): void => {
    this.turnTimer = undefined;
    this.turnStartedAt = -1;
  };
  private readonly resumeAfterYield = (): void => {
    this.yieldTimer = undefined;
    this.turnStartedAt = -1;
    this.pump();
  };
  private flushWaiters: FlushWaiter[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly retryWakeups: (() => void)[] = [];

  private readonly blocked = new Queue<BlockedPush<T>>();
  private admitting = false;
  private readonly waiters = new Waiters<U>();
  /** With `coalesce`: the id of the waiting record of each key. */
  private readonly waitingKeys: Map<string, RecordId> | undefined;
  private readonly bisector: Bisector | undefined;
  /** For storages whose records outlive a process: dead-letters records that crash it. */
  private readonly crashGuard: CrashGuard | undefined;
  private pushHooks: Instrumentation<T>[] = [];
  private workHooks: Instrumentation<T>[] = [];

  /** Given to every reserve: records the storage set aside because it could not read them. */
  private readonly onUnreadable = (records: readonly UnreadableRecord[]): void => {
    this.reportUnreadable(records);
  };

  /** Idempotency-key scope for a storage that names none: unique, but new in every process. */
  private readonly idScope = `local:${randomUUID()}`;

  private readonly counters = {
    pushed: 0,
    processed: 0,
    failed: 0,
    retried: 0,
    dropped: 0,
    deadLettered: 0,
    coalesced: 0,
    refused: 0,
    unreadable: 0,
    batches: 0,
    batchRecords: 0,
    workMs: 0,
    maxWorkMs: 0,
    lastFlushAt: null as number | null,
  };

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
    this.worker = this.options.worker;
    const { features } = this.storage;
    if (this.options.coalesce && !(features?.coalesce && this.storage.coalesce)) {
      throw this.unsupported('coalesce');
    }
    if (this.options.priority && !features?.priority) throw this.unsupported('priority');
    this.waitingKeys = this.options.coalesce ? new Map() : undefined;
    this.bisector = this.options.bisectOnError ? new Bisector() : undefined;
    const { batchSize, concurrency, retry } = this.options;
    this.crashGuard =
      this.storage.durable || this.storage.shared
        ? new CrashGuard(batchSize, concurrency, retry.maxAttempts)
        : undefined;
    this.arrivals = new Arrivals(this.options.flushInterval, this.options.timers, () => {
      this.intervalDue = true;
      this.pump();
    });
    this.retries = new RetrySchedule((count, at) => this.retriesBecameDue(count, at));
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
   * Adds instrumentation (tracing, metrics) that sees each push and wraps each worker call, and
   * returns a function that removes it. Integrations such as `@risemaxi/bufio/tracing` use it;
   * applications rarely need to.
   */
  use(instrumentation: Instrumentation<T>): () => void {
    // Kept in two lists, so that a push pays nothing for instrumentation that only wraps calls.
    if (instrumentation.onPush) this.pushHooks.push(instrumentation);
    if (instrumentation.aroundWork) this.workHooks.push(instrumentation);
    // New arrays, so that a loop already running over the old ones is unaffected.
    return () => {
      this.pushHooks = this.pushHooks.filter((hook) => hook !== instrumentation);
      this.workHooks = this.workHooks.filter((hook) => hook !== instrumentation);
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
    if (!this.worker) throw new NoWorkerError(this.name);
    this.lifecycle = 'running';
    exitGuard.add(this, () => this.finishBeforeExit());
    this.arrivals.enable(true);
    if (this.storage.durable || this.storage.shared) {
      this.holdForRecovery = true;
      this.recovering = this.recoverStored();
    }
    if (this.storage.shared) this.startPolling();
    this.startRecoveryTimer();
    this.pump();
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
      if (
        !Array.isArray(records) &&
        records !== undefined &&
        this.storage.appendOne &&
        !this.waitingKeys &&
        this.blocked.length === 0 &&
        this.buffered() < this.options.maxBufferedRecords
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
    if (!this.worker) return rejected(new NoWorkerError(this.name));
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
      buffered: this.ready + this.retries.delayed,
      capacity: this.options.maxBufferedRecords,
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
    this.tell('refused', { records, error: toError(error) });
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

  private buffered(): number {
    return this.ready + this.retries.delayed + this.appending;
  }

  private accept(
    input: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    // With 'error', a push that does not fit is refused whole: none of it may be merged first.
    if (this.waitingKeys && this.options.onFull === 'error' && !this.fitsAfterCoalescing(input)) {
      return Promise.reject(new BufferFullError(this.name, this.options.maxBufferedRecords));
    }
    const records = this.waitingKeys ? this.coalesceWaiting(input, waiter) : input;
    const n = records.length;
    if (n === 0) return RESOLVED;
    if (this.blocked.length === 0 && this.buffered() + n <= this.options.maxBufferedRecords) {
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

  /** Whether what `coalesceWaiting` would leave of `records` fits in the buffer now. */
  private fitsAfterCoalescing(records: readonly T[]): boolean {
    const key = (this.options.coalesce as NonNullable<ResolvedOptions<T, U>['coalesce']>).key;
    const keys = this.waitingKeys as Map<string, RecordId>;
    const fresh = new Set<string>();
    for (const record of records) {
      const k = key(record);
      if (!keys.has(k)) fresh.add(k);
    }
    return (
      fresh.size === 0 ||
      (this.blocked.length === 0 && this.buffered() + fresh.size <= this.options.maxBufferedRecords)
    );
  }

  /**
   * Merges records into waiting records with the same key, in place, and returns those left to
   * append (records of one push with the same key are merged with each other first).
   */
  private coalesceWaiting(records: readonly T[], waiter: Waiter<U> | undefined): readonly T[] {
    const { key, merge } = this.options.coalesce as NonNullable<ResolvedOptions<T, U>['coalesce']>;
    const keys = this.waitingKeys as Map<string, RecordId>;
    const coalesce = this.storage.coalesce as NonNullable<Storage<T>['coalesce']>;
    const rest: T[] = [];
    const restIndex = new Map<string, number>();
    for (const record of records) {
      const k = key(record);
      const id = keys.get(k);
      if (id !== undefined && coalesce.call(this.storage, id, record, merge)) {
        if (waiter) this.waiters.add(id, waiter);
      } else {
        const earlier = restIndex.get(k);
        if (earlier === undefined) {
          restIndex.set(k, rest.length);
          rest.push(record);
          continue;
        }
        rest[earlier] = merge(rest[earlier] as T, record);
      }
      this.counters.coalesced++;
      this.counters.pushed++;
    }
    return rest;
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
    this.appending += n;
    const settled = stored.then(
      (ids) => {
        this.appending -= n;
        this.pendingAppends.delete(settled);
        this.onAppended(records, ids, waiter);
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

  private onAppended(
    records: readonly T[],
    ids: readonly RecordId[],
    waiter: Waiter<U> | undefined,
  ): void {
    const n = records.length;
    if (waiter) this.waiters.add(ids[0] as RecordId, waiter);
    if (this.waitingKeys) {
      const key = (this.options.coalesce as NonNullable<ResolvedOptions<T, U>['coalesce']>).key;
      for (let i = 0; i < n; i++) this.waitingKeys.set(key(records[i] as T), ids[i] as RecordId);
    }
    if (this.pushHooks.length > 0) this.runPushHooks(ids, records);
    this.noteAppended(n);
  }

  private noteAppended(n: number): void {
    this.counters.pushed += n;
    this.appended += n;
    this.ready += n;
    this.arrivals.add(n);
    if (this.ready >= this.options.batchSize) this.pump();
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
    const appendedBefore = this.appended;
    const victims = await this.storage.reserve(excess, {
      now: this.now(),
      onUnreadable: this.onUnreadable,
    });
    if (victims.length > 0) {
      this.noteTaken(victims, excess, appendedBefore);
      await this.storage.ack(victims);
      this.bisector?.forget(victims);
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
      !this.holdForRecovery &&
      this.worker &&
      this.lifecycle !== 'stopped' &&
      this.active < this.slots() &&
      this.wantsBatch()
    ) {
      // Date.now and setImmediate as they are at the call: a test's fake timers control both.
      if (this.turnStartedAt >= 0 && Date.now() - this.turnStartedAt > TURN_BUDGET_MS) {
        this.yieldToEventLoop();
        return;
      }
      const limit = this.crashGuard ? this.crashGuard.reserveLimit() : this.options.batchSize;
      const appendedBefore = this.appended;
      let reserved;
      this.reserving = true;
      try {
        reserved = this.storage.reserve(limit, {
          now: this.now(),
          maxBytes: this.options.maxBatchBytes,
          laneShare: this.options.priority?.share,
          onUnreadable: this.onUnreadable,
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

  /** Worker calls that may run at once: one while records that crashed a process are about. */
  private slots(): number {
    return this.crashGuard?.isCareful ? 1 : this.options.concurrency;
  }

  private reserved(batch: StoredRecord<T>[], limit: number, appendedBefore: number): void {
    this.noteTaken(batch, limit, appendedBefore);
    this.pollDue = false;
    if (this.intervalDue) this.intervalDue = this.arrivals.due(Date.now());
    if (batch.length === 0) {
      this.forceUntil = this.taken;
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
    this.admitBlocked();
    this.settleFlushWaiters();
  }

  /** Accounts for records that left the visible queue, for a batch or for eviction. */
  private noteTaken(
    batch: readonly StoredRecord<T>[],
    limit: number,
    appendedBefore: number,
  ): void {
    let retried = 0;
    for (const entry of batch) if (entry.attempts > 0) retried++;
    // Retries the storage gave back before their timer fired were not counted as ready yet.
    const dueTaken = Math.min(retried, this.retriesDue);
    const early = retried - dueTaken;
    if (early > 0) this.retries.takeEarly(early);
    this.taken += batch.length;
    this.ready = Math.max(0, this.ready - (batch.length - early));
    this.retriesDue -= dueTaken;
    this.arrivals.remove(batch.length - retried);
    if (this.waitingKeys) this.forgetKeys(batch);
    if (batch.length < limit && this.options.maxBatchBytes === undefined) {
      // Nothing else is visible: forget estimates, keeping only appends that raced the reserve.
      this.ready = Math.min(this.ready, this.appended - appendedBefore);
      this.retriesDue = 0;
      if (this.ready === 0) this.arrivals.clear();
      void this.resyncHidden();
    }
  }

  private forgetKeys(batch: readonly StoredRecord<T>[]): void {
    const keys = this.waitingKeys as Map<string, RecordId>;
    const key = (this.options.coalesce as NonNullable<ResolvedOptions<T, U>['coalesce']>).key;
    for (const entry of batch) {
      if (entry.attempts > 0) continue;
      const k = key(entry.record);
      if (keys.get(k) === entry.id) keys.delete(k);
    }
  }

  /** The next batches go after a turn of the event loop (see `TURN_BUDGET_MS`). */
  private yieldToEventLoop(): void {
    this.yieldTimer ??= setImmediate(this.resumeAfterYield);
  }

  /** At the end of a drain: no batch follows, so no turn is left to watch. */
  private forgetTurns(): void {
    if (this.turnTimer) clearImmediate(this.turnTimer);
    if (this.yieldTimer) clearImmediate(this.yieldTimer);
    this.turnTimer = this.yieldTimer = undefined;
    this.turnStartedAt = -1;
  }

  private dispatch(batch: StoredRecord<T>[], looped: StoredRecord<T>[], whole: boolean): void {
    if (this.turnStartedAt < 0) {
      this.turnStartedAt = Date.now();
      this.turnTimer = setImmediate(this.endTurn);
    }
    const seq = ++this.batchSeq;
    this.runningBatches.add(seq);
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
    try {
      if (looped.length > 0) await this.deadLetterLooped(looped);
      if (batch.length === 0) return;
      if (this.bisector && !whole) {
        // Halves of bisected batches get their own calls, one after another in this slot.
        for (const part of this.bisector.partition(batch)) await this.runCall(part);
      } else {
        await this.runCall(batch);
      }
    } catch (error) {
      this.report(error);
    } finally {
      this.active--;
      this.inFlight -= batch.length;
      this.runningBatches.delete(seq);
      if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      this.settleFlushWaiters();
      this.pump();
    }
  }

  /** One worker call, then what follows from its result: acks, retries, dead letters. */
  private async runCall(batch: StoredRecord<T>[]): Promise<void> {
    const records = batch.map((entry) => entry.record);
    let attempt = 1;
    for (const entry of batch) if (entry.attempts >= attempt) attempt = entry.attempts + 1;
    const started = Date.now();
    const outcome =
      this.workHooks.length === 0
        ? await this.callWorker(batch, records, attempt)
        : await this.callInstrumented(batch, records, attempt);
    const durationMs = Date.now() - started;
    const c = this.counters;
    c.batches++;
    c.batchRecords += batch.length;
    c.workMs += durationMs;
    if (durationMs > c.maxWorkMs) c.maxWorkMs = durationMs;
    c.lastFlushAt = Date.now();

    if (!outcome.ok) {
      // A whole batch failed: with bisectOnError, its halves are retried apart.
      const split = this.bisector?.split(batch) ?? false;
      await this.failed(batch, () => outcome.error, attempt, split);
      return;
    }
    const perRecord = perRecordOutcomes<U>(outcome.value, batch.length);
    if (!perRecord) {
      await this.processed(batch, records, undefined, durationMs);
      return;
    }
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
      await this.failed(failed, (entry) => errors.get(entry) as Error, attempt, false);
  }

  private async callWorker(
    batch: readonly StoredRecord<T>[],
    records: T[],
    attempt: number,
  ): Promise<CallOutcome> {
    const worker = this.worker as Worker<T, U>;
    const timeout = this.options.workTimeout;
    const ids = batch.map((entry) => entry.id);
    const context = new CallContext(this.name, attempt, ids, this.storage.idScope ?? this.idScope);
    let timer: NodeJS.Timeout | undefined;
    try {
      let result: unknown = worker.work(records, context);
      if (timeout !== undefined) {
        result = Promise.race([
          result,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              const error = new WorkTimeoutError(timeout);
              context.abort(error);
              reject(error);
            }, timeout);
          }),
        ]);
      }
      // Any thenable, not only a Promise: query builders (knex, Drizzle, Prisma) run when awaited.
      return { ok: true, value: isThenable(result) ? await result : result };
    } catch (error) {
      return { ok: false, error: toError(error) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** A worker call wrapped by each instrumentation's `aroundWork`, outermost first. */
  private async callInstrumented(
    batch: StoredRecord<T>[],
    records: T[],
    attempt: number,
  ): Promise<CallOutcome> {
    const call: WorkCall<T> = { buffer: this.name, records, ids: batch.map((e) => e.id), attempt };
    let outcome: CallOutcome | undefined;
    let run = async (): Promise<WorkReport> => {
      outcome = await this.callWorker(batch, records, attempt);
      return reportOf(outcome, batch.length);
    };
    for (const hook of [...this.workHooks].reverse()) {
      const around = hook.aroundWork;
      if (!around) continue;
      const inner = run;
      run = () => around.call(hook, call, inner);
    }
    try {
      await run();
    } catch (error) {
      this.report(error);
    }
    // Instrumentation that failed to run the worker must not lose the batch: it counts as failed.
    return (
      outcome ?? { ok: false, error: new StorageError('instrumentation did not run the worker') }
    );
  }

  private async processed(
    entries: StoredRecord<T>[],
    records: readonly T[],
    results: (U | undefined)[] | undefined,
    durationMs: number,
  ): Promise<void> {
    try {
      const acked = this.storage.ack(entries);
      if (acked instanceof Promise) await acked;
    } catch (error) {
      // The worker did its job; a durable storage will deliver these again (at least once).
      this.report(new StorageError(`ack of ${entries.length} record(s) failed`, { cause: error }));
    }
    this.counters.processed += entries.length;
    this.bisector?.forget(entries);
    this.waiters.resolve(entries, results);
    if (this.listens('flushed')) this.tell('flushed', { records, results, durationMs });
  }

  /**
   * Records failed an attempt: report each distinct error once, dead-letter the records out of
   * attempts, and release the others for a retry. Records failed together are retried together.
   * A failure that bisected its batch does not count towards `maxAttempts`.
   */
  private async failed(
    entries: StoredRecord<T>[],
    errorOf: (entry: StoredRecord<T>) => Error,
    attempt: number,
    split: boolean,
  ): Promise<void> {
    this.counters.failed += entries.length;
    for (const [error, group] of groupBy(entries, errorOf)) {
      const records = group.map((e) => e.record);
      try {
        this.options.onError?.(error, records);
      } catch (hookError) {
        this.report(hookError);
      }
      this.tell('failed', { records, error, attempt });
    }
    const giveUp = this.lifecycle === 'stopped' && !this.storage.durable;
    const maxAttempts = this.options.retry.maxAttempts;
    const counted = (e: StoredRecord<T>): number =>
      e.attempts + 1 - (this.bisector?.splits(e.id) ?? 0);
    const isLast = (e: StoredRecord<T>): boolean => giveUp || (!split && counted(e) >= maxAttempts);
    for (const [error, group] of groupBy(entries.filter(isLast), errorOf)) {
      await this.deadLetter(group, error);
    }
    // Records of one batch may have failed a different number of times: one delay per count.
    for (const [attempts, group] of groupBy(
      entries.filter((e) => !isLast(e)),
      (e) => e.attempts,
    )) {
      const delay = retryDelay(attempts + 1, this.options.retry);
      const at = Date.now() + delay;
      try {
        const released = this.storage.release(group, at);
        if (released instanceof Promise) await released;
      } catch (releaseError) {
        // Still leased: a durable storage recovers them with the lease; report it.
        this.report(
          new StorageError(`release of ${group.length} record(s) failed`, { cause: releaseError }),
        );
        continue;
      }
      this.counters.retried += group.length;
      this.retries.add(at, group.length);
      if (this.listens('retrying')) {
        this.tell('retrying', {
          records: group.map((e) => e.record),
          attempt: attempts + 2,
          delay,
        });
      }
    }
  }

  /** Records that kept crashing their process go to the dead-letter path, never to the worker. */
  private async deadLetterLooped(looped: readonly StoredRecord<T>[]): Promise<void> {
    for (const [crashes, group] of groupBy(looped, crashesOf)) {
      await this.deadLetter(group, new CrashLoopError(this.name, crashes));
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
    this.tell('deadLettered', { records, error });
    this.waiters.reject(entries, error);
    this.bisector?.forget(entries);
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

  // ---------------------------------------------------------------------------------------------
  // Retries, polling, recovery

  private retriesBecameDue(count: number, at: number): void {
    this.ready += count;
    this.retriesDue += count;
    this.clockFloor = Math.max(this.clockFloor, at);
    for (const wake of this.retryWakeups.splice(0)) wake();
    this.pump();
  }

  /** Learns of records this process did not append: earlier runs', other instances'. */
  private async resyncHidden(): Promise<void> {
    if (this.lifecycle !== 'running' || this.storage.shared) return;
    try {
      const hidden = (await this.storage.size()) - this.ready - this.retries.delayed;
      if (hidden > 0) this.startPolling();
      else this.stopPolling();
    } catch (error) {
      this.storageFailed('size', error);
    }
  }

  private async recoverStored(): Promise<void> {
    try {
      const recovered = await this.storage.recover();
      const hidden = (await this.storage.size()) - this.ready - this.retries.delayed;
      // Records left by an earlier process may have been leased when it died: probe them first.
      if (recovered > 0 || hidden > 0) this.crashGuard?.probe();
      if (hidden > 0) {
        // Left by an earlier process: they have waited long enough already.
        this.ready += hidden;
        this.arrivals.addOverdue(hidden);
        this.intervalDue = true;
      }
    } catch (error) {
      this.storageFailed('recover', error);
    } finally {
      this.holdForRecovery = false;
      this.pump();
    }
  }

  private startPolling(): void {
    if (this.pollTimer || this.lifecycle !== 'running') return;
    this.pollTimer = setInterval(
      () => {
        this.pollDue = true;
        // A shared storage that names no recoveryInterval gets its lapsed leases back per poll.
        if (this.storage.shared && this.storage.recoveryInterval === undefined) {
          void this.recoverLapsed();
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
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.recoveryTimer = undefined;
  }

  /** Takes lapsed leases back on the storage's own schedule, not on `flushInterval`'s. */
  private startRecoveryTimer(): void {
    const interval = this.storage.recoveryInterval;
    if (interval === undefined || this.recoveryTimer) return;
    this.recoveryTimer = setInterval(
      () => void this.recoverLapsed(),
      Math.min(Math.max(interval, 1), MAX_TIMER_DELAY),
    );
    this.recoveryTimer.unref();
  }

  /**
   * Makes records whose holder is gone visible again and dispatchable at once: they have waited
   * long enough. Returns how many came back.
   */
  private async recoverLapsed(): Promise<number> {
    let recovered: number;
    try {
      recovered = await this.storage.recover();
    } catch (error) {
      this.storageFailed('recover', error);
      return 0;
    }
    if (recovered > 0) {
      // They were leased when their holder died: the crash guard looks at them one by one first.
      this.crashGuard?.probe();
      this.ready += recovered;
      this.arrivals.addOverdue(recovered);
      this.intervalDue = true;
    }
    this.pump();
    return recovered;
  }

  /** A storage call failed: report it and try again later, backing off, as the service recovers. */
  private storageFailed(operation: string, error: unknown): void {
    const known =
      error instanceof Error && 'code' in error && String(error.code).startsWith('BUFIO_');
    this.report(
      known
        ? error
        : new StorageError(`storage ${operation} failed for buffer "${this.name}"`, {
            cause: error,
          }),
    );
    if (this.lifecycle === 'stopped') return;
    const { factor, maxDelay } = this.options.retry;
    this.storageBackoff = Math.min(
      maxDelay,
      Math.max(STORAGE_RETRY_DELAY, this.storageBackoff * factor),
    );
    setTimeout(() => {
      this.pollDue = true;
      this.pump();
    }, this.storageBackoff).unref();
  }

  /** Unreadable records are never processed, so they are counted and reported, never dropped silently. */
  private reportUnreadable(records: readonly UnreadableRecord[]): void {
    if (records.length === 0) return;
    this.counters.unreadable += records.length;
    const error = new UnreadableRecordError(this.name, records);
    try {
      this.options.onError?.(error, []);
    } catch (hookError) {
      this.report(hookError);
    }
    this.tell('error', error);
  }

  private report(error: unknown): void {
    this.tell('error', toError(error));
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
    this.arrivals.enable(false);
    this.retries.setKeepAlive(true); // the drain waits for retries due before the deadline
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
    this.forgetTurns();

    const closed = new BufIOClosedError(this.name);
    while (this.blocked.length > 0) (this.blocked.shift() as BlockedPush<T>).reject(closed);
    if (!this.storage.durable) {
      await this.handOverRemaining(
        this.worker ? new DrainTimeoutError(this.name, timeout) : new NoWorkerError(this.name),
      );
    }
    const remaining = this.storage.durable ? await this.countRemaining() : 0;
    const leasedElsewhere = await this.countLeasedElsewhere();
    this.retries.clear();
    const inFlight = this.inFlight;
    // Close once running calls have settled, so that their acks reach the storage.
    const closing = this.whenIdle().then(() => this.storage.close());
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

  /** Flushes until nothing is left, waiting for retries that fall due before `deadline`. */
  private async drainWithin(deadline: number): Promise<void> {
    await this.recovering;
    const recovers = this.storage.durable || this.storage.shared;
    // Leases that lapsed since the last recovery are this drain's to process.
    if (recovers) await this.recoverLapsed();
    while (this.lifecycle === 'stopping') {
      await this.flush();
      if (this.appending > 0) {
        await Promise.allSettled([...this.pendingAppends]);
        continue;
      }
      // Visible records again: blocked pushes were let in as the flush made room.
      if (this.ready > 0) continue;
      // A call the flush did not start (a retry's) may still fail and schedule another retry.
      if (this.active > 0) {
        await this.whenIdle();
        continue;
      }
      const next = this.retries.next();
      if (next === undefined || next > deadline) {
        // Before it says what is left: leases that lapsed while it drained.
        if (recovers && (await this.recoverLapsed()) > 0) continue;
        return;
      }
      await new Promise<void>((resolve) => this.retryWakeups.push(resolve));
    }
  }

  /** What a non-durable storage still holds when the drain ends goes to the dead-letter path. */
  private async handOverRemaining(error: Error): Promise<void> {
    for (;;) {
      const rest = await this.storage.reserve(this.options.batchSize, {
        now: Infinity,
        onUnreadable: this.onUnreadable,
      });
      if (rest.length === 0) break;
      await this.deadLetter(rest, error);
    }
    this.ready = 0;
    this.retriesDue = 0;
  }

  /** What a durable storage holds after the drain, as the storage counts it. */
  private async countRemaining(): Promise<number> {
    try {
      return await this.storage.size();
    } catch (error) {
      this.storageFailed('size', error);
      return this.ready + this.retries.delayed;
    }
  }

  private async countLeasedElsewhere(): Promise<number> {
    if (!this.storage.leasedElsewhere) return 0;
    try {
      return await this.storage.leasedElsewhere();
    } catch (error) {
      this.storageFailed('leasedElsewhere', error);
      return 0;
    }
  }

  private whenIdle(): Promise<void> {
    if (this.active === 0) return RESOLVED;
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Called when the process is about to exit with records still buffered (stop() was not called). */
  private finishBeforeExit(): void {
    if (this.ready + this.retries.delayed === 0 || !this.worker) return;
    void this.flush();
    // The retry timer does not keep the process alive; at exit, it must, until the retry is made.
    this.retries.setKeepAlive(true);
  }
}

/** The outcome of a worker call as instrumentation reports it. */
function reportOf(outcome: CallOutcome, batchLength: number): WorkReport {
  if (!outcome.ok) return { failed: batchLength, error: outcome.error };
  // The same rule as perRecordOutcomes, counted without building the outcomes twice.
  const value = outcome.value;
  const perRecord = Array.isArray(value) && value.length === batchLength;
  return {
    failed: perRecord ? value.filter(isError).length : 0,
    error: undefined,
  };
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
