import type { Batcher, BatchWorker } from '../batcher.js';

/** Options of `HandLoop`: the same knobs the suites give BufIO. */
export interface HandLoopOptions<T> {
  worker: BatchWorker<T>;
  batchSize: number;
  flushInterval: number;
  /** While this many records wait, `push` returns a promise that resolves once there is room. */
  capacity?: number;
}

interface BlockedPush<T> {
  readonly record: T;
  readonly resolve: () => void;
}

/**
 * The limit: what a careful developer writes by hand for one buffer. An array fills up; at
 * `batchSize` it is sealed and handed to the worker, and one repeating timer seals whatever waits
 * every `flushInterval` (so no record waits longer, and no timer is set or cleared per batch). One
 * worker call at a time (BufIO's default concurrency); a synchronous worker runs inside `push`. No retries, no dead letters, no stats, no storage
 * abstraction: everything BufIO does beyond this is what the comparison prices.
 */
export class HandLoop<T> implements Batcher<T> {
  private readonly worker: BatchWorker<T>;
  private readonly batchSize: number;
  private readonly flushInterval: number;
  private readonly capacity: number;
  private current: T[] = [];
  /** Sealed batches waiting for the worker; short, so `shift` is cheap. */
  private readonly sealed: T[][] = [];
  private waiting = 0;
  private busy = false;
  private pumping = false;
  private readonly ticker: NodeJS.Timeout;
  private readonly blocked: BlockedPush<T>[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(options: HandLoopOptions<T>) {
    this.worker = options.worker;
    this.batchSize = options.batchSize;
    this.flushInterval = options.flushInterval;
    this.capacity = options.capacity ?? Infinity;
    this.ticker = setInterval(this.onTick, this.flushInterval);
    this.ticker.unref();
  }

  push(record: T): void | Promise<void> {
    if (this.waiting >= this.capacity || this.blocked.length > 0) {
      return new Promise<void>((resolve) => this.blocked.push({ record, resolve }));
    }
    this.add(record);
  }

  drain(): Promise<void> {
    this.seal();
    this.pump();
    if (this.isIdle()) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.drain();
    clearInterval(this.ticker);
  }

  private add(record: T): void {
    const current = this.current;
    current.push(record);
    this.waiting++;
    if (current.length >= this.batchSize) {
      this.seal();
      this.pump();
    }
  }

  private readonly onTick = (): void => {
    this.seal();
    this.pump();
  };

  private seal(): void {
    if (this.current.length > 0) {
      this.sealed.push(this.current);
      this.current = [];
    }
  }

  private pump(): void {
    if (this.pumping) return; // re-entered from a synchronous worker or an admitted push
    this.pumping = true;
    try {
      while (!this.busy && this.sealed.length > 0) {
        const batch = this.sealed.shift() as T[];
        this.waiting -= batch.length;
        this.busy = true;
        const result = this.worker(batch);
        if (result instanceof Promise) {
          result.then(this.workerDone, this.workerDone);
        } else {
          this.busy = false;
        }
        this.admit();
      }
    } finally {
      this.pumping = false;
    }
    if (this.idleWaiters.length > 0 && this.isIdle()) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private readonly workerDone = (): void => {
    this.busy = false;
    this.pump();
  };

  private admit(): void {
    while (this.blocked.length > 0 && this.waiting < this.capacity) {
      const next = this.blocked.shift() as BlockedPush<T>;
      this.add(next.record);
      next.resolve();
    }
  }

  private isIdle(): boolean {
    return (
      !this.busy &&
      this.sealed.length === 0 &&
      this.current.length === 0 &&
      this.blocked.length === 0
    );
  }
}
