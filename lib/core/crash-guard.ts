import type { StoredRecord } from './storage.js';

/**
 * Deliveries of a record that ended without an ack or a release: its holder died (or let the
 * lease lapse) while the record was leased. A storage that does not count deliveries reports none.
 */
export function crashesOf(entry: StoredRecord<unknown>): number {
  const { deliveries } = entry;
  return typeof deliveries === 'number' ? Math.max(0, deliveries - 1 - entry.attempts) : 0;
}

/**
 * The crash-loop guard: finds the record that kills its process, and only that one, from the
 * delivery counts a durable storage keeps.
 *
 * A storage charges a crash to every record that was leased when its holder died, so the records
 * around a poison record are charged too. To keep them from reaching the limit, while records
 * with crashes are about the engine is careful: it runs one call at a time, reserves only what it
 * hands to the worker at once (a probe of one record first, then chunks that halve with the crash
 * count, `max(1, floor(batchSize / 2^c))`), so that each crash halves the call that holds the
 * poison record, as `bisectOnError` halves a failing batch. A crash in a shared call counts like a
 * bisecting failure, not as an attempt: the limit is `maxAttempts` plus the halvings needed to
 * bring everything one process may hold at once (`batchSize × concurrency`) down to one record.
 *
 * Records come out of a storage oldest first, and a crashed call is at the head of the queue (all
 * before it was acked), so crash counts do not grow along the queue: the last record of a batch
 * bounds the counts of the next one, and sets its chunk.
 */
export class CrashGuard {
  /** A record with this many crashes is dead-lettered at its next delivery. */
  readonly limit: number;
  private careful = false;
  private probing = false;
  /** The crash count that sets the size of the next careful chunk. */
  private level = 0;

  constructor(
    private readonly batchSize: number,
    concurrency: number,
    maxAttempts: number,
  ) {
    this.limit = maxAttempts + Math.ceil(Math.log2(batchSize * concurrency));
  }

  /** Whether batches are reserved one at a time, in chunks sized by their crash counts. */
  get isCareful(): boolean {
    return this.careful;
  }

  /** Records may have come back from a holder that died: look at the first of them alone. */
  probe(): void {
    this.careful = true;
    this.probing = true;
  }

  /** How many records the next reserve may take. */
  reserveLimit(): number {
    if (!this.careful) return this.batchSize;
    if (this.probing) return 1;
    return Math.max(1, Math.floor(this.batchSize / 2 ** this.level));
  }

  /**
   * Learns from a reserved batch (entering or leaving careful mode) and returns the records that
   * reached the limit, to be dead-lettered instead of handed to the worker.
   */
  inspect<T>(batch: readonly StoredRecord<T>[]): StoredRecord<T>[] {
    const looped: StoredRecord<T>[] = [];
    let highest = 0;
    let last = -1;
    for (const entry of batch) {
      const crashes = crashesOf(entry);
      if (crashes >= this.limit) {
        looped.push(entry);
        continue;
      }
      if (crashes > highest) highest = crashes;
      last = crashes;
    }
    // Nothing but dead letters (or nothing at all): what comes next is still unknown.
    if (last < 0) {
      if (batch.length === 0) this.careful = this.probing = false;
      return looped;
    }
    this.probing = false;
    this.careful = highest > 0;
    this.level = last;
    return looped;
  }
}
