import type { RecordId } from './storage.js';

/** A worker call, as instrumentation sees it. */
export interface WorkCall<T> {
  readonly buffer: string;
  readonly records: readonly T[];
  readonly ids: readonly RecordId[];
  /** 1 for fresh records; higher when the call retries records. */
  readonly attempt: number;
}

/** How a worker call went. */
export interface WorkReport {
  /** Records that failed (all of them when `error` is set). */
  readonly failed: number;
  /** The error of a call that failed as a whole. */
  readonly error: Error | undefined;
}

/**
 * Hooks for integrations that must see inside the engine (tracing, metrics): attached with
 * `BufIO.use()`. Everything else is better observed through events and `stats()`.
 */
export interface Instrumentation<T> {
  /** Records were accepted into storage, with the ids the storage gave them. */
  onPush?(ids: readonly RecordId[], records: readonly T[]): void;
  /** Wraps each worker call; must call `run` once and return (or pass on) its report. */
  aroundWork?(call: WorkCall<T>, run: () => Promise<WorkReport>): Promise<WorkReport>;
}
