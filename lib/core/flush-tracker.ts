interface FlushWaiter {
  readonly target: number;
  /** The last batch that must finish before the flush resolves; set once the target is taken. */
  lastBatch: number | undefined;
  resolve(): void;
}

/**
 * When a `flush()` is done. A flush wants everything visible at its call taken for batches, and
 * then every batch up to the one that took the last of it finished: `taken` (records reserved so
 * far, only ever grows) must pass the flush's target, and batches are numbered as they start, so
 * the flush resolves once no batch numbered up to its last one runs.
 */
export class FlushTracker {
  /** Records reserved so far. */
  private taken = 0;
  /** Batches are wanted until `taken` reaches this: the highest target of a running flush. */
  private forceUntil = 0;
  private batchSeq = 0;
  private readonly running = new Set<number>();
  private waiters: FlushWaiter[] = [];

  /** Whether a flush still wants batches reserved. */
  get isForcing(): boolean {
    return this.forceUntil > this.taken;
  }

  /** A flush of the `visible` records waiting now; resolves as described above. */
  request(visible: number): Promise<void> {
    const target = this.taken + visible;
    this.forceUntil = Math.max(this.forceUntil, target);
    return new Promise<void>((resolve) => {
      this.waiters.push({ target, lastBatch: undefined, resolve });
    });
  }

  /** `count` records were reserved (for a batch, or to be dropped). */
  countTaken(count: number): void {
    this.taken += count;
  }

  /** A reserve found nothing: there is nothing more for any flush to take. */
  noteEmpty(): void {
    this.forceUntil = this.taken;
  }

  /** A batch starts; returns its number, for `endBatch`. */
  startBatch(): number {
    const seq = ++this.batchSeq;
    this.running.add(seq);
    return seq;
  }

  endBatch(seq: number): void {
    this.running.delete(seq);
  }

  /** Resolves the flushes that are done. */
  settle(): void {
    if (this.waiters.length === 0) return;
    const exhausted = this.forceUntil <= this.taken;
    let lowestRunning = Infinity;
    for (const seq of this.running) if (seq < lowestRunning) lowestRunning = seq;
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.lastBatch === undefined && (exhausted || this.taken >= waiter.target)) {
        waiter.lastBatch = this.batchSeq;
      }
      if (waiter.lastBatch !== undefined && waiter.lastBatch < lowestRunning) {
        waiter.resolve();
        return false;
      }
      return true;
    });
  }
}
