import { InvalidOptionsError } from './errors.js';
import { OptionChecker } from './option-checker.js';
import type { MergeFunction, Storage } from './storage.js';
import type { Worker, WorkFunction } from './worker.js';

/** What `push` does when `maxBufferedRecords` records are waiting. */
export type OnFullPolicy = 'block' | 'drop-oldest' | 'drop-newest' | 'error';

/** Exponential backoff with full jitter, between failed attempts of the same records. */
export interface RetryOptions {
  /**
   * Attempts in all, the first included; after the last, records are dead-lettered. Default 5.
   *
   * It also bounds crash loops, on storages whose records outlive the process: a record whose
   * deliveries keep ending without an ack or a release (the process died, or the lease lapsed,
   * while the worker had it) is dead-lettered with `CrashLoopError`, at its next delivery and
   * without calling the worker, once `crashes >= maxAttempts + ceil(log2(batchSize × concurrency))`.
   * Records that come back after a crash are retried in halves, one call at a time, as
   * `bisectOnError` does, and a crash in a call shared with other records counts as a split: the
   * record that kills the process is dead-lettered after at least `maxAttempts` crashes alone,
   * the records around it are processed. With `batchSize` and `concurrency` 1, a record delivered
   * `maxAttempts` times without an ack or a release is dead-lettered at the next delivery.
   */
  maxAttempts?: number;
  /** Upper bound of the first retry's delay, in ms. Default 100. */
  initialDelay?: number;
  /** Cap on any retry's delay, in ms. Default 30000. */
  maxDelay?: number;
  /** Growth of the delay bound per attempt. Default 2. */
  factor?: number;
}

/**
 * Sets and clears the flush timer. Default: the global `setTimeout`/`clearTimeout`, unref'd. The
 * NestJS module passes one that also lists the timer in `SchedulerRegistry`.
 */
export interface FlushTimers {
  set(callback: () => void, delay: number): unknown;
  clear(handle: unknown): void;
}

/**
 * Write coalescing: while a record waits, a later record with the same key replaces it, or is
 * merged into it, in place. For metrics aggregation (sum counters) or upserts (the latest state).
 */
export interface CoalesceOptions<T> {
  /** The key of a record. Records with equal keys coalesce while the older one waits. */
  key: (record: T) => string;
  /** Combines the waiting record with the newer one; must keep the key. Default: the newer wins. */
  merge?: MergeFunction<T>;
}

/** Priority lanes: a batch takes from higher lanes first, leaving lower lanes a share. */
export interface PriorityOptions {
  /** Lane names from the highest priority to the lowest, or a number of lanes (0 the highest). */
  lanes: readonly string[] | number;
  /** The lane of a push that names none. Default: the lowest. */
  defaultLane?: string | number;
  /** Share of a batch each lane leaves to the lanes below it when they hold records. Default 0.1. */
  share?: number;
}

/** Receives records that failed their last attempt, with the error of that attempt. */
export type DeadLetterHandler<T> = (records: T[], error: Error) => void | Promise<void>;

/** Options of a `BufIO` buffer. Every option but `worker` has a default. */
export interface BufIOOptions<T, U = unknown> {
  /** Name used in errors, events, stats and by the NestJS module. Default `'default'`. */
  name?: string;
  /** Processes batches; may also be attached later with `setWorker` (the NestJS module does). */
  worker?: Worker<T, U> | WorkFunction<T, U>;
  /** Where records wait. Default: a new `MemoryStorage`. */
  storage?: Storage<T>;
  /** Records per batch, at most; a batch is dispatched as soon as this many wait. Default 100. */
  batchSize?: number;
  /** Longest a record waits before its batch is dispatched, in ms. Default 5000. */
  flushInterval?: number;
  /** Cap on a batch's serialized size in bytes (as measured by the storage). Default: none. */
  maxBatchBytes?: number;
  /** Worker calls that may run at once. With 1, records reach the worker in push order. Default 1. */
  concurrency?: number;
  /** A worker call running longer than this (ms) counts as failed and is aborted. Default: none. */
  workTimeout?: number;
  /** Retry policy for failed records. */
  retry?: RetryOptions;
  /** Bound on records waiting in storage. Default 100000. */
  maxBufferedRecords?: number;
  /**
   * What `push` does when the buffer is full, or the storage refuses an append for lack of room
   * (`StorageFullError`: a byte budget, a full disk). Default `'block'`: the push waits for room.
   * `'error'` rejects it (with the storage's `StorageFullError` when the storage refused it).
   * `'drop-oldest'` on a full storage evicts as many of the oldest waiting records and tries once
   * more; a storage whose acknowledgements free room only later (FileStorage frees whole segments)
   * refuses again, and the new records are dropped instead.
   */
  onFull?: OnFullPolicy;
  /** Receives records that failed their last attempt. Default: none (the `deadLettered` event). */
  deadLetter?: DeadLetterHandler<T>;
  /**
   * Called on every failed attempt, with the records that failed; also with an
   * `UnreadableRecordError` and no records when the storage met stored records it could not read
   * back (they are in the error's `records`, and set aside by the storage).
   */
  onError?: (error: Error, records: T[]) => void;
  /** Where the flush timer lives (see `FlushTimers`). */
  timers?: FlushTimers;
  /** Write coalescing by key (needs a storage with `features.coalesce`). Default: off. */
  coalesce?: CoalesceOptions<T>;
  /** Priority lanes (needs a storage with `features.priority`). Default: one lane. */
  priority?: PriorityOptions;
  /**
   * When a whole batch fails, split it in halves and retry each (each half follows the retry
   * policy), down to single records, so that one poison record does not hold back or dead-letter
   * the records around it. Default false.
   */
  bisectOnError?: boolean;
}

/** `BufIOOptions` with every default applied and every value checked. */
export interface ResolvedOptions<T, U> {
  readonly name: string;
  readonly worker: Worker<T, U> | undefined;
  readonly storage: Storage<T> | undefined;
  readonly batchSize: number;
  readonly flushInterval: number;
  readonly maxBatchBytes: number | undefined;
  readonly concurrency: number;
  readonly workTimeout: number | undefined;
  readonly retry: Readonly<Required<RetryOptions>>;
  readonly maxBufferedRecords: number;
  readonly onFull: OnFullPolicy;
  readonly deadLetter: DeadLetterHandler<T> | undefined;
  readonly onError: ((error: Error, records: T[]) => void) | undefined;
  readonly timers: FlushTimers;
  readonly coalesce: Readonly<Required<CoalesceOptions<T>>> | undefined;
  readonly priority: ResolvedPriority | undefined;
  readonly bisectOnError: boolean;
}

/** Priority lanes, resolved: names by index (0 the highest). */
export interface ResolvedPriority {
  readonly names: readonly string[];
  readonly defaultLane: number;
  readonly share: number;
}

/**
 * The longest delay a Node timer takes, in ms: `setTimeout` clamps a longer one to 1 ms, which
 * would turn a long interval or timeout into a busy loop. Every option that sets a timer is checked
 * against it.
 */
export const MAX_TIMER_DELAY = 2_147_483_647;

export const DEFAULTS = {
  name: 'default',
  batchSize: 100,
  flushInterval: 5000,
  concurrency: 1,
  maxBufferedRecords: 100_000,
  onFull: 'block',
  retry: { maxAttempts: 5, initialDelay: 100, maxDelay: 30_000, factor: 2 },
} as const;

const ON_FULL_POLICIES: readonly OnFullPolicy[] = ['block', 'drop-oldest', 'drop-newest', 'error'];

const KNOWN_OPTIONS = new Set<string>([
  'name',
  'worker',
  'storage',
  'batchSize',
  'flushInterval',
  'maxBatchBytes',
  'concurrency',
  'workTimeout',
  'retry',
  'maxBufferedRecords',
  'onFull',
  'deadLetter',
  'onError',
  'timers',
  'coalesce',
  'priority',
  'bisectOnError',
]);

const GLOBAL_TIMERS: FlushTimers = {
  set: (callback, delay) => setTimeout(callback, delay).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Applies defaults and validates every option, throwing `InvalidOptionsError` that names the
 * option, the value and what is allowed. `extraKeys` lists options a caller (such as the NestJS
 * module) accepts on top of the engine's.
 */
export function resolveOptions<T, U>(
  options: BufIOOptions<T, U> = {},
  extraKeys: ReadonlySet<string> = new Set(),
): ResolvedOptions<T, U> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('options', options, 'an object');
  }
  const name = options.name ?? DEFAULTS.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionsError('name', name, 'a non-empty string');
  }
  const check = new OptionChecker(`buffer "${name}"`);
  check.known(
    options,
    extraKeys.size === 0 ? KNOWN_OPTIONS : new Set([...KNOWN_OPTIONS, ...extraKeys]),
  );
  const retry = options.retry ?? {};
  if (retry === null || typeof retry !== 'object') check.fail('retry', retry, 'an object');
  const resolved: ResolvedOptions<T, U> = {
    name,
    worker: options.worker === undefined ? undefined : check.worker('worker', options.worker),
    storage: options.storage === undefined ? undefined : check.storage('storage', options.storage),
    batchSize: check.integer('batchSize', options.batchSize, DEFAULTS.batchSize, 1),
    flushInterval: check.number(
      'flushInterval',
      options.flushInterval,
      DEFAULTS.flushInterval,
      0,
      MAX_TIMER_DELAY,
    ),
    maxBatchBytes: check.optionalInteger('maxBatchBytes', options.maxBatchBytes, 1),
    concurrency: check.integer('concurrency', options.concurrency, DEFAULTS.concurrency, 1),
    workTimeout: check.optionalNumber('workTimeout', options.workTimeout, 1, MAX_TIMER_DELAY),
    retry: {
      maxAttempts: check.integer(
        'retry.maxAttempts',
        retry.maxAttempts,
        DEFAULTS.retry.maxAttempts,
        1,
      ),
      initialDelay: check.number(
        'retry.initialDelay',
        retry.initialDelay,
        DEFAULTS.retry.initialDelay,
        0,
        MAX_TIMER_DELAY,
      ),
      maxDelay: check.number(
        'retry.maxDelay',
        retry.maxDelay,
        DEFAULTS.retry.maxDelay,
        0,
        MAX_TIMER_DELAY,
      ),
      factor: check.number(
        'retry.factor',
        retry.factor,
        DEFAULTS.retry.factor,
        1,
        Number.MAX_VALUE,
      ),
    },
    maxBufferedRecords: check.integer(
      'maxBufferedRecords',
      options.maxBufferedRecords,
      DEFAULTS.maxBufferedRecords,
      1,
    ),
    onFull: check.oneOf('onFull', options.onFull, DEFAULTS.onFull, ON_FULL_POLICIES),
    deadLetter: check.optionalFunction('deadLetter', options.deadLetter),
    onError: check.optionalFunction('onError', options.onError),
    timers: options.timers === undefined ? GLOBAL_TIMERS : check.timers('timers', options.timers),
    coalesce: options.coalesce === undefined ? undefined : check.coalesce(options.coalesce),
    priority: options.priority === undefined ? undefined : check.priority(options.priority),
    bisectOnError: check.boolean('bisectOnError', options.bisectOnError, false),
  };
  if (resolved.maxBufferedRecords < resolved.batchSize) {
    check.fail(
      'maxBufferedRecords',
      resolved.maxBufferedRecords,
      `at least batchSize (${resolved.batchSize})`,
    );
  }
  return resolved;
}

export { laneIndex, laneOf, OptionChecker } from './option-checker.js';
