import type { RecordId, StoredRecord } from './storage.js';

/**
 * Poison-record isolation (`bisectOnError`): when a whole batch fails, its halves are released for a
 * retry with a mark, and when they come back the engine gives each half its own worker call, down to
 * single records. The marks live in memory: after a restart a batch is simply bisected again.
 */
export class Bisector {
  private readonly groupOf = new Map<RecordId, number>();
  /** How many failures of each record split its batch (they do not count towards maxAttempts). */
  private readonly splitFailures = new Map<RecordId, number>();
  private nextGroup = 1;

  /** Marks the two halves of a failed batch; false when it cannot be split further. */
  split(batch: readonly StoredRecord<unknown>[]): boolean {
    if (batch.length < 2) return false;
    const middle = Math.ceil(batch.length / 2);
    const first = this.nextGroup++;
    const second = this.nextGroup++;
    batch.forEach((entry, i) => {
      this.groupOf.set(entry.id, i < middle ? first : second);
      this.splitFailures.set(entry.id, this.splits(entry.id) + 1);
    });
    return true;
  }

  /** How many failures of the record split its batch. */
  splits(id: RecordId): number {
    return this.splitFailures.get(id) ?? 0;
  }

  /** Cuts a reserved batch into worker calls: one per marked half, one for unmarked records. */
  partition<T>(batch: StoredRecord<T>[]): StoredRecord<T>[][] {
    if (this.groupOf.size === 0) return [batch];
    const parts: StoredRecord<T>[][] = [];
    let current: StoredRecord<T>[] = [];
    let currentGroup: number | undefined;
    for (const entry of batch) {
      const group = this.groupOf.get(entry.id) ?? 0;
      if (current.length > 0 && group !== currentGroup) {
        parts.push(current);
        current = [];
      }
      currentGroup = group;
      current.push(entry);
    }
    if (current.length > 0) parts.push(current);
    return parts;
  }

  /** Forgets records that are done (processed, dead-lettered, dropped). */
  forget(entries: readonly StoredRecord<unknown>[]): void {
    if (this.groupOf.size === 0) return;
    for (const entry of entries) {
      this.groupOf.delete(entry.id);
      this.splitFailures.delete(entry.id);
    }
  }
}
