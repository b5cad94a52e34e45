import { EventEmitter } from 'node:events';
import { asError } from './errors.js';
import { isThenable } from './thenable.js';
import type { OnFullPolicy } from './options.js';

/** What `stop()` achieved, also emitted as the `drained` event. */
export interface DrainSummary {
  /** Records processed while draining. */
  readonly processed: number;
  /** Records dead-lettered while draining, those handed over at the timeout included. */
  readonly deadLettered: number;
  /**
   * Records left in a durable storage (waiting, or waiting for a retry), as its `size()` counts
   * them after the drain: processed after a restart, or by another instance of a shared storage.
   */
  readonly remaining: number;
  /**
   * Records of a shared storage leased by other holders when the drain ended (other instances, or
   * a crashed one whose lease has not lapsed yet): not this instance's to process, but not gone.
   */
  readonly leasedElsewhere: number;
  /** Records in worker calls still running at the timeout; their outcome is still applied. */
  readonly inFlight: number;
  /** Whether the timeout ended the drain. */
  readonly timedOut: boolean;
  /** How long the drain took, in ms. */
  readonly durationMs: number;
}

/** The events a buffer emits, each with one payload object. */
export interface BufIOEvents<T, U = unknown> {
  /** A worker call finished; `records` are those it processed (failed ones are in `failed`). */
  flushed: {
    readonly records: readonly T[];
    readonly results: readonly (U | undefined)[] | undefined;
    readonly durationMs: number;
  };
  /** Records failed an attempt. */
  failed: { readonly records: readonly T[]; readonly error: Error; readonly attempt: number };
  /** Failed records will be tried again after `delay` ms. */
  retrying: { readonly records: readonly T[]; readonly attempt: number; readonly delay: number };
  /** Records removed by a dropping `onFull` policy, never processed. */
  dropped: { readonly records: readonly T[]; readonly policy: OnFullPolicy };
  /**
   * A `push` (or `pushAndWait`) was refused: after `stop()`, when full with `onFull: 'error'`,
   * invalid, or when the storage failed. Emitted whether or not the caller awaited the push, so a
   * fire-and-forget push is never refused silently.
   */
  refused: { readonly records: readonly T[]; readonly error: Error };
  /** Records that failed their last attempt (or could not be drained), after `deadLetter` ran. */
  deadLettered: { readonly records: readonly T[]; readonly error: Error };
  /** `stop()` finished draining. */
  drained: DrainSummary;
  /** Something failed outside a worker call: the storage, the `deadLetter` handler, a listener. */
  error: Error;
}

/**
 * How the engine's units tell the buffer's events, without holding the buffer: closures over its
 * `tell` and `listens`, made once by `BufIO`.
 */
export interface EventSink<T, U> {
  /** Tells `event` to its listeners, who cannot break the caller (see `SafeEmitter.tell`). */
  tell<K extends keyof BufIOEvents<T, U>>(event: K, payload: BufIOEvents<T, U>[K]): void;
  /** Whether anyone listens to `event`: lets callers skip building a payload nobody reads. */
  listens(event: keyof BufIOEvents<T, U>): boolean;
  /** A failure outside a worker call (the storage, a hook, a handler): an `error` event. */
  report(error: unknown): void;
}

/** `BufIOEvents` as Node's `EventEmitter` types its events: one payload argument each. */
export type BufIOEventMap<T, U = unknown> = {
  [K in keyof BufIOEvents<T, U>]: [payload: BufIOEvents<T, U>[K]];
};

/**
 * Node's own `EventEmitter`, typed per event (`on`, `once`, `off`, `listenerCount`,
 * `prependListener`, `events.once`, `events.on`, ... behave exactly as Node's), with one more way
 * to emit, `tell`, for the engine's own events: listeners cannot break the code that tells them.
 * An `error` told with no listener is reported with `process.emitWarning` rather than thrown, and
 * a listener that throws (or returns a promise that rejects) is reported as an `error`, after
 * which the other listeners still run.
 */
export class SafeEmitter<E extends Record<keyof E, unknown[]>> extends EventEmitter<E> {
  protected tell<K extends keyof E & string>(event: K, ...args: E[K]): void {
    const listeners = this.rawListeners(event as never) as unknown as Listener[];
    if (listeners.length === 0) {
      if (event === 'error') process.emitWarning(asError(args[0]));
      return;
    }
    // rawListeners is a copy: a listener removing itself (once) does not skip the next one.
    for (const listener of listeners) {
      try {
        const returned = Reflect.apply(listener, this, args);
        if (isThenable(returned)) {
          returned.then(undefined, (error: unknown) => this.listenerFailed(event, error));
        }
      } catch (error) {
        this.listenerFailed(event, error);
      }
    }
  }

  /** Whether anyone listens to `event`: lets callers skip building a payload nobody reads. */
  protected listens(event: keyof E & string): boolean {
    return this.listenerCount(event as never) > 0;
  }

  private listenerFailed(event: string, error: unknown): void {
    if (event === 'error') {
      process.emitWarning(asError(error));
      return;
    }
    (this.tell as unknown as (event: string, error: Error) => void)('error', asError(error));
  }
}

type Listener = (...args: unknown[]) => unknown;
