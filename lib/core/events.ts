import type { OnFullPolicy } from './options.js';

/** What `stop()` achieved, also emitted as the `drained` event. */
export interface DrainSummary {
  /** Records processed while draining. */
  readonly processed: number;
  /** Records dead-lettered while draining, those handed over at the timeout included. */
  readonly deadLettered: number;
  /** Records left in a durable storage, to be processed after a restart. */
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

type Listener<P> = (payload: P) => void;

/**
 * A small typed event emitter. Unlike Node's `EventEmitter`, an `error` event with no listener is
 * reported with `process.emitWarning` rather than thrown, and a throwing listener is reported as
 * an `error` event: neither may break the engine that emitted the event.
 */
export class TypedEmitter<E extends { error: Error }> {
  private readonly listeners: { [K in keyof E]?: Listener<E[K]>[] } = {};

  /** Calls `listener` on every `event`. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    (this.listeners[event] ??= []).push(listener);
    return this;
  }

  /** Calls `listener` on the next `event` only. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const wrapper: Listener<E[K]> = (payload) => {
      this.off(event, wrapper);
      listener(payload);
    };
    return this.on(event, wrapper);
  }

  /** Removes a listener added with `on`. */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const list = this.listeners[event];
    if (list) {
      const index = list.indexOf(listener);
      if (index >= 0) list.splice(index, 1);
    }
    return this;
  }

  /** Whether anyone listens to `event`: lets callers skip building a payload nobody reads. */
  protected listens(event: keyof E): boolean {
    return (this.listeners[event]?.length ?? 0) > 0;
  }

  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const list = this.listeners[event];
    if (!list || list.length === 0) {
      if (event === 'error') process.emitWarning(payload as Error);
      return;
    }
    // A copy, so that a listener removing itself (once) does not skip the next one.
    for (const listener of list.slice()) {
      try {
        listener(payload);
      } catch (error) {
        if (event === 'error') process.emitWarning(error instanceof Error ? error : String(error));
        else this.emit('error', error instanceof Error ? error : new Error(String(error)));
      }
    }
  }
}
