import { randomUUID } from 'node:crypto';
import type { Bisector } from './bisect.js';
import { crashesOf } from './crash-guard.js';
import {
  CrashLoopError,
  DeadLetterError,
  StorageError,
  toError,
  WorkTimeoutError,
} from './errors.js';
import type { EngineContext } from './engine.js';
import type { Instrumentation, WorkCall, WorkReport } from './instrumentation.js';
import { retryDelay } from './retry.js';
import type { StoredRecord } from './storage.js';
import { isThenable } from './thenable.js';
import {
  CallContext,
  type CallOutcome,
  perRecordOutcomes,
  reportOf,
  type Worker,
} from './worker.js';

/** What a `BatchRunner` needs from the engine around it. */
export interface BatchRunnerDeps<T, U> extends EngineContext<T, U> {
  /** Whether failed records are dead-lettered at once: the buffer stopped and cannot keep them. */
  readonly givesUp: () => boolean;
  /** `count` records were released for a retry, visible again at `at`. */
  readonly retryScheduled: (at: number, count: number) => void;
}

/**
 * Runs one reserved batch: the worker call (with its timeout, its instrumentation and its
 * idempotency keys), the reading of its result, and what follows for each record: ack, release
 * for a retry, or the dead-letter path. Owns the worker, the work hooks and the bisect marks.
 * `run` never rejects: what fails outside the worker is reported as an `error` event.
 */
export class BatchRunner<T, U> {
  private worker: Worker<T, U> | undefined;
  private workHooks: Instrumentation<T>[] = [];
  /** Idempotency-key scope for a storage that names none: unique, but new in every process. */
  private readonly localScope = `local:${randomUUID()}`;

  constructor(
    private readonly deps: BatchRunnerDeps<T, U>,
    private readonly bisector: Bisector | undefined,
  ) {
    this.worker = deps.options.worker;
  }

  get hasWorker(): boolean {
    return this.worker !== undefined;
  }

  setWorker(worker: Worker<T, U>): void {
    this.worker = worker;
  }

  /** Adds instrumentation around each worker call; returns a function that removes it. */
  use(hook: Instrumentation<T>): () => void {
    this.workHooks = [...this.workHooks, hook];
    // A new array, so that a call already wrapping itself in the old one is unaffected.
    return () => {
      this.workHooks = this.workHooks.filter((h) => h !== hook);
    };
  }

  /**
   * Runs a reserved batch: `looped` records (those that kept crashing their process) go to the
   * dead-letter path, the rest to the worker. `whole` keeps a bisected batch in one call.
   */
  run(batch: StoredRecord<T>[], looped: readonly StoredRecord<T>[], whole: boolean): Promise<void> {
    // The common case, one worker call: no async frame of its own (a promise and ticks a batch).
    if (looped.length === 0 && batch.length > 0 && (!this.bisector || whole)) {
      return this.runCall(batch);
    }
    return this.runParts(batch, looped, whole);
  }

  private async runParts(
    batch: StoredRecord<T>[],
    looped: readonly StoredRecord<T>[],
    whole: boolean,
  ): Promise<void> {
    try {
      for (const [crashes, group] of groupBy(looped, crashesOf)) {
        await this.deadLetter(group, new CrashLoopError(this.deps.name, crashes));
      }
      if (batch.length === 0) return;
      if (this.bisector && !whole) {
        // Halves of bisected batches get their own calls, one after another in this slot.
        for (const part of this.bisector.partition(batch)) await this.runCall(part);
      } else {
        await this.runCall(batch);
      }
    } catch (error) {
      this.deps.events.report(error);
    }
  }

  /** Records that left without a worker call (dropped to make room): their marks go. */
  forget(entries: readonly StoredRecord<T>[]): void {
    this.bisector?.forget(entries);
  }

  /** Hands records to `deadLetter` and the `deadLettered` event, then acks them. */
  async deadLetter(entries: readonly StoredRecord<T>[], error: Error): Promise<void> {
    const { counters, events, storage, options } = this.deps;
    const records = entries.map((e) => e.record);
    counters.deadLettered += entries.length;
    if (options.deadLetter) {
      try {
        await options.deadLetter(records, error);
      } catch (handlerError) {
        events.report(new DeadLetterError(records, handlerError));
      }
    }
    events.tell('deadLettered', { records, error });
    this.deps.waiters.reject(entries, error);
    this.bisector?.forget(entries);
    try {
      await storage.ack(entries);
    } catch (ackError) {
      events.report(
        new StorageError(`ack of ${entries.length} dead-lettered record(s) failed`, {
          cause: ackError,
        }),
      );
    }
  }

  /**
   * One worker call, then what follows from its result: acks, retries, dead letters. Never
   * rejects: what fails outside the worker is reported.
   */
  private async runCall(batch: StoredRecord<T>[]): Promise<void> {
    try {
      const records = batch.map((entry) => entry.record);
      let attempt = 1;
      for (const entry of batch) if (entry.attempts >= attempt) attempt = entry.attempts + 1;
      const started = Date.now();
      const outcome =
        this.workHooks.length === 0
          ? await this.callWorker(batch, records, attempt)
          : await this.callInstrumented(batch, records, attempt);
      const durationMs = Date.now() - started;
      this.deps.counters.countCall(batch.length, durationMs);

      if (!outcome.ok) {
        // A whole batch failed: with bisectOnError, its halves are retried apart.
        const split = this.bisector?.split(batch) ?? false;
        await this.retryOrDeadLetter(batch, () => outcome.error, attempt, split);
        return;
      }
      const perRecord = perRecordOutcomes<U>(outcome.value, batch.length);
      if (!perRecord) {
        await this.acknowledge(batch, records, undefined, durationMs);
        return;
      }
      const done: StoredRecord<T>[] = [];
      const results: (U | undefined)[] = [];
      const rejected: StoredRecord<T>[] = [];
      const errors = new Map<StoredRecord<T>, Error>();
      perRecord.forEach((result, i) => {
        const entry = batch[i]!;
        if (result.ok) {
          done.push(entry);
          results.push(result.value);
        } else {
          rejected.push(entry);
          errors.set(entry, result.error);
        }
      });
      if (done.length > 0) {
        const doneRecords = done.length === batch.length ? records : done.map((e) => e.record);
        await this.acknowledge(done, doneRecords, results, durationMs);
      }
      if (rejected.length > 0) {
        await this.retryOrDeadLetter(
          rejected,
          (entry) => errors.get(entry) as Error,
          attempt,
          false,
        );
      }
    } catch (error) {
      this.deps.events.report(error);
    }
  }

  private async callWorker(
    batch: readonly StoredRecord<T>[],
    records: T[],
    attempt: number,
  ): Promise<CallOutcome> {
    const { name, storage, options } = this.deps;
    const worker = this.worker as Worker<T, U>;
    const timeout = options.workTimeout;
    const context = new CallContext(name, attempt, batch, storage.idScope ?? this.localScope);
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
    const ids = batch.map((e) => e.id);
    const call: WorkCall<T> = { buffer: this.deps.name, records, ids, attempt };
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
      this.deps.events.report(error);
    }
    // Instrumentation that failed to run the worker must not lose the batch: it counts as failed.
    return (
      outcome ?? { ok: false, error: new StorageError('instrumentation did not run the worker') }
    );
  }

  /** The worker processed these records: ack them, resolve their waiters, tell `flushed`. */
  private async acknowledge(
    entries: StoredRecord<T>[],
    records: readonly T[],
    results: (U | undefined)[] | undefined,
    durationMs: number,
  ): Promise<void> {
    const { storage, counters, events, waiters } = this.deps;
    try {
      const acked = storage.ack(entries);
      if (acked instanceof Promise) await acked;
    } catch (error) {
      // The worker did its job; a durable storage will deliver these again (at least once).
      events.report(
        new StorageError(`ack of ${entries.length} record(s) failed`, { cause: error }),
      );
    }
    counters.processed += entries.length;
    this.bisector?.forget(entries);
    waiters.resolve(entries, results);
    if (events.listens('flushed')) events.tell('flushed', { records, results, durationMs });
  }

  /**
   * Records failed an attempt: report each distinct error once, dead-letter the records out of
   * attempts, and release the others for a retry. Records failed together are retried together.
   * A failure that bisected its batch does not count towards `maxAttempts`.
   */
  private async retryOrDeadLetter(
    entries: StoredRecord<T>[],
    errorOf: (entry: StoredRecord<T>) => Error,
    attempt: number,
    split: boolean,
  ): Promise<void> {
    const { storage, options, counters, events } = this.deps;
    counters.failed += entries.length;
    for (const [error, group] of groupBy(entries, errorOf)) {
      const records = group.map((e) => e.record);
      try {
        options.onError?.(error, records);
      } catch (hookError) {
        events.report(hookError);
      }
      events.tell('failed', { records, error, attempt });
    }
    const giveUp = this.deps.givesUp();
    const maxAttempts = options.retry.maxAttempts;
    const counted = (e: StoredRecord<T>): number =>
      e.attempts + 1 - (this.bisector?.splits(e.id) ?? 0);
    const isLast = (e: StoredRecord<T>): boolean => giveUp || (!split && counted(e) >= maxAttempts);
    for (const [error, group] of groupBy(entries.filter(isLast), errorOf)) {
      await this.deadLetter(group, error);
    }
    // Records of one batch may have failed a different number of times: one delay per count.
    const retried = entries.filter((e) => !isLast(e));
    for (const [attempts, group] of groupBy(retried, (e) => e.attempts)) {
      const delay = retryDelay(attempts + 1, options.retry);
      const at = Date.now() + delay;
      try {
        const released = storage.release(group, at);
        if (released instanceof Promise) await released;
      } catch (releaseError) {
        // Still leased: a durable storage recovers them with the lease; report it.
        events.report(
          new StorageError(`release of ${group.length} record(s) failed`, { cause: releaseError }),
        );
        continue;
      }
      counters.retried += group.length;
      this.deps.retryScheduled(at, group.length);
      if (events.listens('retrying')) {
        const records = group.map((e) => e.record);
        events.tell('retrying', { records, attempt: attempts + 2, delay });
      }
    }
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
