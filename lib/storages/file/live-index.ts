import type { StoredRecord } from '../../core/storage.js';
import { FreshRecords, type FreshRecordsOptions } from './fresh-records.js';
import type { LiveRecord } from './live-record.js';
import { MemoryBudget } from './memory-budget.js';
import { RetryGroups, type RetryGroup } from './retry-groups.js';

/**
 * What a `FileStorage` knows of its records: fresh ones (`FreshRecords`: mostly on disk, read back
 * in order), retries (`RetryGroups`: one small object per release), and leased ones by id (in a
 * worker's hands: what is in flight). Memory follows what is in flight and `MemoryBudget`, not how
 * many records wait.
 */
export class LiveIndex {
  readonly budget: MemoryBudget;
  readonly fresh: FreshRecords;
  readonly retries: RetryGroups;
  private readonly leased = new Map<number, LiveRecord>();

  constructor(memoryBytes: number, options: Omit<FreshRecordsOptions, 'budget'>) {
    this.budget = new MemoryBudget(memoryBytes);
    this.fresh = new FreshRecords({ ...options, budget: this.budget });
    this.retries = new RetryGroups(this.budget);
  }

  /** Records stored and not leased. */
  get size(): number {
    return this.fresh.count + this.retries.size;
  }

  /** Records in a worker's hands. */
  get leasedCount(): number {
    return this.leased.size;
  }

  lease(record: LiveRecord): void {
    this.leased.set(record.id, record);
  }

  /**
   * Takes back leased records whose lease could not be journaled, as if never leased: they are
   * due at once, before fresh records (they were the oldest), with their attempts unchanged.
   */
  unlease(records: readonly LiveRecord[]): void {
    if (records.length === 0) return;
    for (const record of records) this.leased.delete(record.id);
    this.retries.hold(-Infinity, [...records]);
  }

  /** Removes leased records for good and returns them; ids not leased are ignored. */
  take(records: readonly { readonly id: StoredRecord<unknown>['id'] }[]): LiveRecord[] {
    const taken: LiveRecord[] = [];
    for (let i = 0; i < records.length; i++) {
      const id = (records[i] as { readonly id: StoredRecord<unknown>['id'] }).id as number;
      const record = this.leased.get(id);
      if (record === undefined) continue;
      this.leased.delete(id);
      record.acked = true;
      taken.push(record);
    }
    return taken;
  }

  /**
   * Puts leased records back with one more attempt, hidden until `visibleAt`, as one group;
   * ids not leased are ignored. Undefined when none was leased.
   */
  release(records: readonly StoredRecord<unknown>[], visibleAt: number): RetryGroup | undefined {
    const released: LiveRecord[] = [];
    for (const entry of records) {
      const record = this.leased.get(entry.id as number);
      if (record === undefined) continue;
      this.leased.delete(record.id);
      record.attempts++;
      record.visibleAt = visibleAt;
      released.push(record);
    }
    return released.length > 0 ? this.retries.hold(visibleAt, released) : undefined;
  }
}
