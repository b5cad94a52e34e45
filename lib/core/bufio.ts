import { MemoryStorage } from '../storages/memory-storage.js';
import type { Backlog } from './backlog.js';
import type { BatchRunner } from './batch-runner.js';
import type { Coalescer } from './coalescer.js';
import type { Dispatcher } from './dispatcher.js';
import {
  asError,
  BufIOClosedError,
  DrainTimeoutError,
  NoWorkerError,
  storageFailure,
  UnsupportedError,
} from './errors.js';
import { type BufIOEventMap, type DrainSummary, type EventSink, SafeEmitter } from './events.js';
import type { Instrumentation } from './instrumentation.js';
import {
  type BufIOOptions,
  laneOf,
  MAX_TIMER_DELAY,
  OptionChecker,
  type ResolvedOptions,
  resolveOptions,
} from './options.js';
import { Queue } from './queue.js';
import { Counters, type BufIOStats } from './stats.js';
import type { AppendOptions, Awaitable, RecordId, Storage } from './storage.js';
import { Waiters } from './waiters.js';
import type { Worker, WorkFunction } from './worker.js';
import { exitGuard } from './exit-guard.js';
import { handled, rejected } from './handled.js';
import {
  type Admission,
  appendOptions,
  type BlockedPush,
  checkRecords,
  isStorageFull,
} from './admission.js';
import { wireEngine } from './engine.js';

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
  /** Pushes blocked for room, filled by the admission, read by the fast path of `push`. */
  private readonly blocked = new Queue<BlockedPush<T, U>>();
  /** The append options of a push that names no lane. */
  private readonly defaultAppend: AppendOptions | undefined;
  private readonly waiters = new Waiters<U>();
  /** Only with the `coalesce` option. */
  private readonly coalescer: Coalescer<T, U> | undefined;
  private pushHooks: Instrumentation<T>[] = [];
  private readonly counters = new Counters();
  private readonly events: EventSink<T, U> = {
    tell: (event, payload) => this.tell(event, ...([payload] as BufIOEventMap<T, U>[typeof event])),
    listens: (event) => this.listens(event),
    report: (error) => this.tell('error', asError(error)),
  };
  private readonly runner: BatchRunner<T, U>;
  private readonly dispatcher: Dispatcher<T, U>;
  private readonly admission: Admission<T, U>;

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
    this.defaultAppend = appendOptions(this.options.priority?.defaultLane);
    const { name, storage, counters, waiters, events } = this;
    const context = { name, storage, options: this.options, counters, waiters, events };
    const units = wireEngine(context, {
      blocked: this.blocked,
      state: () => this.lifecycle,
      stored: (ids, records) => this.noteStored(ids, records),
    });
    this.backlog = units.backlog;
    this.coalescer = units.coalescer;
    this.runner = units.runner;
    this.dispatcher = units.dispatcher;
    this.admission = units.admission;
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
    const check = new OptionChecker(`buffer "${this.name}"`);
    if (this.lifecycle !== 'created') check.fail('worker', worker, 'to be set before start()');
    this.runner.setWorker(check.worker<T, U>('worker', worker));
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
      return this.admission.refuse(records, new BufIOClosedError(this.name));
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
        const id = this.storage.appendOne(
          records as T,
          options === undefined ? this.defaultAppend : appendOptions(this.laneOf(options)),
        );
        if (this.pushHooks.length > 0) this.runPushHooks([id], [records as T]);
        this.noteAppended(1);
        return RESOLVED;
      }
      const list = Array.isArray(records) ? (records as readonly T[]) : [records as T];
      checkRecords(this.name, list);
      return this.admission.admit(list, undefined, this.laneOf(options));
    } catch (error) {
      // The storage is full (a byte budget, a disk): `onFull` decides, on the slow path.
      if (isStorageFull(error))
        return this.admission.admit([records as T], undefined, this.laneOf(options));
      return this.admission.refuse(records, error);
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
      return this.admission.refuse(
        [record],
        new UnsupportedError(
          `pushAndWait is not available on buffer "${this.name}": its storage is shared, so another process may process the record`,
        ),
      );
    }
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped') {
      return this.admission.refuse([record], new BufIOClosedError(this.name));
    }
    // Also rejects when the record is dead-lettered or dropped: handled, like every promise here.
    return handled(
      new Promise<U | undefined>((resolve, reject) => {
        try {
          checkRecords(this.name, [record]);
          this.admission.admit([record], { resolve, reject }, this.laneOf(options)).catch(reject);
        } catch (error) {
          this.admission.refuse([record], error).catch(reject);
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
    return this.counters.toStats({
      name: this.name,
      state: this.lifecycle,
      buffered: this.backlog.waiting(),
      capacity: this.options.maxBufferedRecords,
      inFlight: this.dispatcher.inFlight,
      blockedPushes: this.blocked.length,
    });
  }

  /** Records went into the storage through the admission (the slow path of `push`). */
  private noteStored(ids: readonly RecordId[], records: readonly T[]): void {
    if (this.pushHooks.length > 0) this.runPushHooks(ids, records);
    this.noteAppended(records.length);
  }

  /** Counts appended records; dispatches a batch once `batchSize` wait. Inlined into `push`. */
  private noteAppended(n: number): void {
    this.counters.pushed += n;
    const backlog = this.backlog;
    backlog.add(n);
    if (backlog.ready >= this.options.batchSize) this.dispatcher.pump();
  }

  private laneOf(options: PushOptions | undefined): number | undefined {
    return laneOf(this.options.priority, options?.priority, this.name);
  }

  private runPushHooks(ids: readonly RecordId[], records: readonly T[]): void {
    for (const hook of this.pushHooks) hook.onPush?.(ids, records);
  }

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

    this.admission.rejectBlocked(new BufIOClosedError(this.name));
    if (!this.storage.durable) {
      await this.dispatcher.handOver(
        this.runner.hasWorker
          ? new DrainTimeoutError(this.name, timeout)
          : new NoWorkerError(this.name),
      );
    }
    // What a durable storage still holds, and what other holders lease, as the storage counts it.
    const { storage } = this;
    const remaining = storage.durable
      ? await this.count('size', () => storage.size(), this.backlog.waiting())
      : 0;
    const leasedElsewhere = storage.leasedElsewhere
      ? await this.count('leasedElsewhere', () => storage.leasedElsewhere?.() ?? 0, 0)
      : 0;
    this.backlog.forgetRetries();
    const inFlight = this.dispatcher.inFlight;
    // Close once running calls have settled, so that their acks reach the storage.
    const closing = this.dispatcher.whenIdle().then(() => this.storage.close());
    if (inFlight === 0) await closing.catch((error: unknown) => this.events.report(error));
    else closing.catch((error: unknown) => this.events.report(error));

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

  /** A count the storage gives after the drain; `fallback` when it fails (reported). */
  private async count(
    operation: string,
    ask: () => Awaitable<number>,
    fallback: number,
  ): Promise<number> {
    try {
      return await ask();
    } catch (error) {
      this.events.report(storageFailure(this.name, operation, error));
      return fallback;
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
