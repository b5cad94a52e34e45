import { StorageUnavailableError } from '../../core/errors.js';

/** How `AppendBatcher` writes a burst and what it does when the server is unreachable. */
export interface AppendBatcherOptions {
  /** Stores the payloads in one statement; resolves with their ids, in order. */
  insert(payloads: string[]): Promise<string[]>;
  /** Turns a failure into the error callers see (and tells whether it is unavailability). */
  failure(error: unknown): Error;
  isUnavailable(error: Error): boolean;
  /** Keep retrying a burst while the server is unreachable, for up to `unavailableTimeout` ms. */
  block: boolean;
  unavailableTimeout: number;
}

interface PendingAppend {
  readonly payloads: string[];
  readonly deadline: number;
  resolve(ids: string[]): void;
  reject(error: Error): void;
}

/** Upper bounds on one INSERT, so a huge burst becomes several statements of sane size. */
const MAX_BURST_RECORDS = 5_000;
const MAX_BURST_BYTES = 8 * 1024 * 1024;
const FIRST_RETRY_DELAY = 50;
const MAX_RETRY_DELAY = 1_000;

/**
 * Combines `append` calls into multi-row INSERTs: calls made in the same turn of the event loop go
 * into one statement, and calls made while a statement runs go into the next. One statement runs
 * at a time, so this process's records take ids, and come out, in the order they were appended.
 *
 * Each call is all-or-nothing: a burst is split only between calls, and a failed statement
 * rejects every call in it.
 */
export class AppendBatcher {
  private readonly queue: PendingAppend[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly options: AppendBatcherOptions) {}

  /** Queues payloads for the next burst; resolves with their ids once they are committed. */
  add(payloads: string[]): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.queue.push({
        payloads,
        deadline: Date.now() + this.options.unavailableTimeout,
        resolve,
        reject,
      });
      this.kick();
    });
  }

  /** Resolves when every queued call has been written or rejected. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.writeAll().finally(() => {
      this.running = undefined;
      // A call queued after the loop's last look gets its own run.
      if (this.queue.length > 0) this.kick();
    });
  }

  private async writeAll(): Promise<void> {
    for (;;) {
      // Yield a full turn so that every append of this turn (and the follow-up appends of callers
      // whose previous burst just resolved) joins the burst.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const burst = this.takeBurst();
      if (burst.length === 0) return;
      await this.write(burst);
    }
  }

  private takeBurst(): PendingAppend[] {
    let taken = 0;
    let records = 0;
    let bytes = 0;
    for (; taken < this.queue.length; taken++) {
      const next = this.queue[taken] as PendingAppend;
      let size = 0;
      for (const payload of next.payloads) size += payload.length;
      const full =
        records + next.payloads.length > MAX_BURST_RECORDS || bytes + size > MAX_BURST_BYTES;
      if (taken > 0 && full) break;
      records += next.payloads.length;
      bytes += size;
    }
    return this.queue.splice(0, taken);
  }

  private async write(burst: PendingAppend[]): Promise<void> {
    let pending = burst;
    for (let retry = 0; ; retry++) {
      const payloads =
        pending.length === 1
          ? (pending[0] as PendingAppend).payloads
          : pending.flatMap((p) => p.payloads);
      try {
        const ids = await this.options.insert(payloads);
        let offset = 0;
        for (const call of pending) {
          call.resolve(ids.slice(offset, offset + call.payloads.length));
          offset += call.payloads.length;
        }
        return;
      } catch (raw) {
        const error = this.options.failure(raw);
        if (!this.options.block || !this.options.isUnavailable(error)) {
          for (const call of pending) call.reject(error);
          return;
        }
        const now = Date.now();
        const expired = pending.filter((call) => call.deadline <= now);
        if (expired.length > 0) {
          const timedOut = new StorageUnavailableError(
            `${error.message}; still unavailable after waiting ${this.options.unavailableTimeout} ms (onUnavailable: 'block')`,
            { cause: raw },
          );
          for (const call of expired) call.reject(timedOut);
          pending = pending.filter((call) => call.deadline > now);
          if (pending.length === 0) return;
        }
        const delay = Math.min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** retry);
        const earliest = pending.reduce((min, call) => Math.min(min, call.deadline), Infinity);
        await new Promise<void>((resolve) =>
          setTimeout(resolve, Math.max(0, Math.min(delay, earliest - now))),
        );
      }
    }
  }
}
