import { isError } from './errors.js';
import type { WorkReport } from './instrumentation.js';
import type { RecordId } from './storage.js';

/** What the engine tells a worker about the call it is making. */
export interface WorkContext {
  /** The buffer's name. */
  readonly buffer: string;
  /** 1 for a batch of fresh records; higher when the batch holds records being retried. */
  readonly attempt: number;
  /** Aborted when the call exceeds `workTimeout`; pass it on to I/O that can be cancelled. */
  readonly signal: AbortSignal;
  /**
   * One idempotency key per record, in the order of `records`: the same on every delivery of that
   * record, after a restart and on every instance sharing the storage, and never the key of
   * another record. Store it under a unique constraint (`INSERT ... ON CONFLICT DO NOTHING`) to
   * make a redelivery after a crash harmless.
   */
  readonly ids: readonly string[];
}

/**
 * Processes a batch of records.
 *
 * It may return a promise or any other thenable: a lazy query builder (knex, Drizzle, Prisma)
 * returned unawaited is run by the engine, which awaits it once, exactly as it awaits a promise.
 *
 * What it returns (or its promise resolves to) decides each record's fate:
 * - nothing (`void`), or a value that is not an array (a driver's result object): every record
 *   was processed;
 * - an array as long as the batch: element `i` is the outcome of record `i`, an `Error` instance
 *   marks that record failed (it is retried), anything else is its result;
 * - an array of another length: every record was processed, the array is the batch's result;
 * - a thrown error or a rejected promise: the whole batch failed and is retried.
 */
export interface Worker<T, U = unknown> {
  work(records: T[], context: WorkContext): WorkOutput<U>;
}

/** What a worker returns: nothing, or one result (or `Error`) per record, or a batch result. */
export type WorkResult<U> = readonly (U | Error)[] | void;

/**
 * What `work` may return: a `WorkResult`, another object (what a database driver or ORM resolves
 * to: every record was processed), or a promise or other thenable of either.
 */
export type WorkOutput<U> = WorkResult<U> | object | PromiseLike<WorkResult<U> | object>;

/** A worker written as a plain function. */
export type WorkFunction<T, U = unknown> = Worker<T, U>['work'];

/** The outcome of one record in a batch. */
export type RecordOutcome<U> = { ok: true; value: U | undefined } | { ok: false; error: Error };

/**
 * Reads a worker's return value as one outcome per record, following the rules on `Worker`.
 * Returns `undefined` when every record was processed without a per-record result.
 */
export function perRecordOutcomes<U>(
  result: unknown,
  batchLength: number,
): RecordOutcome<U>[] | undefined {
  if (!Array.isArray(result) || result.length !== batchLength) return undefined;
  return result.map((value: unknown) =>
    isError(value) ? { ok: false, error: value } : { ok: true, value: value as U },
  );
}

/**
 * The context of one worker call. Its `AbortSignal` is made only if the worker reads it: creating
 * one per call costs more than the rest of a small batch's bookkeeping.
 */
export class CallContext implements WorkContext {
  private controller: AbortController | undefined;
  private reason: Error | undefined;
  private keys: readonly string[] | undefined;

  constructor(
    readonly buffer: string,
    readonly attempt: number,
    private readonly batch: readonly { readonly id: RecordId }[],
    private readonly idScope: string,
  ) {}

  /** Built on first read: most workers never ask. */
  get ids(): readonly string[] {
    this.keys ??= this.batch.map((entry) => `${this.idScope}:${entry.id}`);
    return this.keys;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/** How a worker call ended: with a value (its result), or failed as a whole. */
export type CallOutcome = { ok: true; value: unknown } | { ok: false; error: Error };

/**
 * A worker call's outcome as instrumentation sees it: the rule of `perRecordOutcomes`, counted
 * without building the outcomes twice.
 */
export function reportOf(outcome: CallOutcome, batchLength: number): WorkReport {
  if (!outcome.ok) return { failed: batchLength, error: outcome.error };
  const value = outcome.value;
  const perRecord = Array.isArray(value) && value.length === batchLength;
  return { failed: perRecord ? value.filter(isError).length : 0, error: undefined };
}
