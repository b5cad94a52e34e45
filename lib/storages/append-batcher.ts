import { StorageUnavailableError } from '../core/errors.js';
import type { ResolvedSharedOptions } from './storage-options.js';

/** The result of one call in a burst: its ids, or the error that failed that call alone. */
export type CallOutcome = readonly string[] | Error;

/** How an `AppendBatcher` writes a burst, and what it does when the server cannot be reached. */
export interface AppendBatcherOptions extends Pick<
  ResolvedSharedOptions,
  'onUnavailable' | 'unavailableTimeout'
> {
  /**
   * Writes one burst: the serialized records of each call, in call order, all in one round trip.
   * Resolves with one outcome per call, in the same order; rejects when the whole burst failed.
   */
  write(calls: readonly (readonly string[])[]): Promise<readonly CallOutcome[]>;
  /** Turns a driver failure into the error callers see (a `BufIOError` naming the operation). */
  failure(error: unknown): Error;
  /** Whether an error (as `failure` made it) means the server could not be reached. */
  isUnavailable(error: Error): boolean;
  /**
   * With `onUnavailable: 'block'`, waits before a burst that met an unreachable server is written
   * again: `retry` counts from 0, and no call in the burst waits beyond `until` (epoch ms).
   */
  pause(retry: number, until: number): Promise<void>;
  /**
   * One burst in flight at a time, later calls gathering meanwhile (as for a pool, where two
   * statements in flight could commit out of order); otherwise every tick sends its own burst at
   * once (as down one pipelined connection, which keeps their order).
   */
  oneAtATime: boolean;
  /** Bounds on one burst; a burst is split between calls only, never inside one. Default none. */
  maxRecords?: number;
  maxChars?: number;
}

interface PendingAppend {
  readonly texts: readonly string[];
  /** With `onUnavailable: 'block'`, the call is rejected once this passes (epoch ms). */
  readonly deadline: number;
  resolve(ids: string[]): void;
  reject(error: Error): void;
}

/**
 * Gathers the `append` calls of one turn of the event loop into one burst, written in one round
 * trip: a hundred producers pushing at once cost one wait for the server, not a hundred.
 *
 * Each call is all or nothing, and settles on its own: with its ids, in order, or with an error.
 * With `onUnavailable: 'block'`, calls that failed because the server could not be reached are
 * written again, after `pause`, until they succeed or their `unavailableTimeout` has passed.
 */
export class AppendBatcher {
  private queue: PendingAppend[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: AppendBatcherOptions) {}

  /** Queues one call's serialized records; resolves with their ids once they are stored. */
  add(texts: readonly string[]): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        texts,
        deadline: Date.now() + this.options.unavailableTimeout,
        resolve,
        reject,
      });
      this.schedule();
    });
  }

  /** Sends what is queued now, and resolves once every call so far has been settled. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.queue.length > 0 && (this.inFlight.size === 0 || !this.options.oneAtATime)) {
        if (this.scheduled) clearImmediate(this.scheduled);
        this.flush();
      }
      // flush() leaves nothing queued without a burst in flight to follow.
      if (this.inFlight.size === 0) return;
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private schedule(): void {
    if (this.scheduled || (this.options.oneAtATime && this.inFlight.size > 0)) return;
    // Let every append of this turn of the event loop join the burst.
    this.scheduled = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = undefined;
    while (this.queue.length > 0) {
      const sending: Promise<void> = this.send(this.takeBurst()).finally(() => {
        this.inFlight.delete(sending);
        // Calls that gathered meanwhile, including the follow-ups of callers just answered.
        if (this.queue.length > 0) this.schedule();
      });
      this.inFlight.add(sending);
      if (this.options.oneAtATime) return;
    }
  }

  private takeBurst(): PendingAppend[] {
    const { maxRecords = Infinity, maxChars = Infinity } = this.options;
    if (maxRecords === Infinity && maxChars === Infinity) {
      const all = this.queue;
      this.queue = [];
      return all;
    }
    let taken = 0;
    let records = 0;
    let chars = 0;
    for (; taken < this.queue.length; taken++) {
      const next = this.queue[taken]!;
      let size = 0;
      for (const text of next.texts) size += text.length;
      const full = records + next.texts.length > maxRecords || chars + size > maxChars;
      if (taken > 0 && full) break;
      records += next.texts.length;
      chars += size;
    }
    return this.queue.splice(0, taken);
  }

  private async send(burst: PendingAppend[]): Promise<void> {
    let pending = burst;
    try {
      for (let retry = 0; pending.length > 0; retry++) {
        pending = await this.attempt(pending);
        if (pending.length === 0) return;
        const until = pending.reduce((min, call) => Math.min(min, call.deadline), Infinity);
        await this.options.pause(retry, until);
      }
    } catch (error) {
      // Only a failing pause gets here; the calls must not hang.
      for (const call of pending) call.reject(this.options.failure(error));
    }
  }

  /** Writes the calls once; settles each, and returns those to be written again. */
  private async attempt(pending: PendingAppend[]): Promise<PendingAppend[]> {
    let outcomes: readonly CallOutcome[] | undefined;
    let failure: unknown;
    try {
      outcomes = await this.options.write(pending.map((call) => call.texts));
    } catch (error) {
      failure = error;
    }
    const again: PendingAppend[] = [];
    const now = Date.now();
    pending.forEach((call, i) => {
      const outcome: unknown = outcomes ? outcomes[i] : failure;
      if (Array.isArray(outcome) && outcome.length === call.texts.length) {
        call.resolve(outcome as string[]);
        return;
      }
      const error = this.options.failure(
        Array.isArray(outcome) || outcome === undefined
          ? new Error(
              `the write returned ${Array.isArray(outcome) ? outcome.length : 'no'} ids for ${call.texts.length} record(s)`,
            )
          : outcome,
      );
      if (this.options.onUnavailable !== 'block' || !this.options.isUnavailable(error)) {
        call.reject(error);
      } else if (now < call.deadline) {
        // It may have been stored before the connection broke: writing it again may then store
        // it twice, which at-least-once delivery allows; losing it would not be.
        again.push(call);
      } else {
        call.reject(
          new StorageUnavailableError(
            `${error.message}; still unavailable after waiting ${this.options.unavailableTimeout} ms (onUnavailable: 'block')`,
            { cause: error },
          ),
        );
      }
    });
    return again;
  }
}
