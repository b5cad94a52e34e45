import { Queue } from '../../core/queue.js';
import type { StoredRecord } from '../../core/storage.js';
import type { LiveRecord } from './live-record.js';

interface RetryGroup {
  readonly visibleAt: number;
  readonly records: LiveRecord[];
}

/**
 * The records a `FileStorage` holds, in memory, so that `reserve` never reads the disk: fresh
 * records in an O(1) queue in append order, leased ones by id, and retries sorted by when they
 * become visible (as in `MemoryStorage`).
 */
export class LiveIndex {
  private readonly fresh = new Queue<LiveRecord>();
  private readonly leased = new Map<number, LiveRecord>();
  /** Retries whose delay has passed, in id (append) order. */
  private due: LiveRecord[] = [];
  /** Retries still waiting out their delay, by `visibleAt`. */
  private delayed: RetryGroup[] = [];
  private delayedCount = 0;

  /** Records stored and not leased. */
  get size(): number {
    return this.fresh.length + this.due.length + this.delayedCount;
  }

  /** Fresh records, now on disk, join the queue. */
  addFresh(records: readonly LiveRecord[]): void {
    for (let i = 0; i < records.length; i++) this.fresh.push(records[i] as LiveRecord);
  }

  /** Records replayed at open, in id order. */
  addRecovered(records: readonly LiveRecord[]): void {
    const retries = new Map<number, LiveRecord[]>();
    for (const record of records) {
      if (record.attempts === 0) {
        this.fresh.push(record);
        continue;
      }
      const group = retries.get(record.visibleAt);
      if (group) group.push(record);
      else retries.set(record.visibleAt, [record]);
    }
    for (const [visibleAt, group] of retries) this.addRetry(visibleAt, group);
  }

  /** Leases up to `limit` visible records (due retries first) and returns them. */
  reserve(limit: number, now: number, maxBytes: number | undefined): LiveRecord[] {
    this.promoteDue(now);
    const batch: LiveRecord[] = [];
    let bytes = 0;
    const fits = (record: LiveRecord): boolean => {
      if (maxBytes === undefined) return true;
      if (batch.length > 0 && bytes + record.bytes > maxBytes) return false;
      bytes += record.bytes;
      return true;
    };
    let dueTaken = 0;
    while (batch.length < limit && dueTaken < this.due.length) {
      const record = this.due[dueTaken] as LiveRecord;
      if (!fits(record)) break;
      this.lease(record, batch);
      dueTaken++;
    }
    if (dueTaken > 0) this.due = this.due.slice(dueTaken);
    while (batch.length < limit && this.fresh.length > 0) {
      const record = this.fresh.peek() as LiveRecord;
      if (!fits(record)) break;
      this.fresh.shift();
      this.lease(record, batch);
    }
    return batch;
  }

  /**
   * Takes back leased records whose lease could not be journaled, as if never leased: they are
   * due at once, before fresh records (they were the oldest), with their attempts unchanged.
   */
  unlease(records: readonly LiveRecord[]): void {
    for (const record of records) this.leased.delete(record.id);
    this.due = this.due.concat(records).sort((a, b) => a.id - b.id);
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
   * Puts leased records back with one more attempt, hidden until `visibleAt`, and returns them;
   * ids not leased are ignored.
   */
  release(records: readonly StoredRecord<unknown>[], visibleAt: number): LiveRecord[] {
    const released: LiveRecord[] = [];
    for (const entry of records) {
      const record = this.leased.get(entry.id as number);
      if (record === undefined) continue;
      this.leased.delete(record.id);
      record.attempts++;
      record.visibleAt = visibleAt;
      released.push(record);
    }
    if (released.length > 0) this.addRetry(visibleAt, released);
    return released;
  }

  /**
   * The live records of a segment, to copy them forward, or undefined when fresh records may
   * still be there: those are about to be reserved, and a backlog is not worth copying.
   */
  stragglers(segment: number): LiveRecord[] | undefined {
    const head = this.fresh.peek();
    if (head !== undefined && head.segment <= segment) return undefined;
    const found: LiveRecord[] = [];
    for (const record of this.leased.values()) if (record.segment === segment) found.push(record);
    for (const record of this.due) if (record.segment === segment) found.push(record);
    for (const group of this.delayed) {
      for (const record of group.records) if (record.segment === segment) found.push(record);
    }
    return found;
  }

  private lease(record: LiveRecord, batch: LiveRecord[]): void {
    this.leased.set(record.id, record);
    batch.push(record);
  }

  private addRetry(visibleAt: number, records: LiveRecord[]): void {
    let i = this.delayed.length;
    while (i > 0 && (this.delayed[i - 1] as RetryGroup).visibleAt > visibleAt) i--;
    this.delayed.splice(i, 0, { visibleAt, records });
    this.delayedCount += records.length;
  }

  /** Moves retries whose delay has passed to `due`, keeping `due` in id order. */
  private promoteDue(now: number): void {
    if (this.delayed.length === 0 || (this.delayed[0] as RetryGroup).visibleAt > now) return;
    let n = 0;
    while (n < this.delayed.length && (this.delayed[n] as RetryGroup).visibleAt <= now) n++;
    const promoted = this.delayed.splice(0, n).flatMap((group) => group.records);
    this.delayedCount -= promoted.length;
    this.due = this.due.concat(promoted).sort((a, b) => a.id - b.id);
  }
}
