import { Queue } from '../core/queue.js';
import type { RecordId, ReserveOptions, Storage, StoredRecord } from '../core/storage.js';

/** Options of `MemoryStorage`. */
export interface MemoryStorageOptions<T> {
  /**
   * Size of a record in bytes, for `maxBatchBytes`. Called only when that option is set.
   * Default: the length of the record's JSON in UTF-8.
   */
  sizeOf?: (record: T) => number;
}

interface Retry<T> {
  readonly visibleAt: number;
  readonly records: StoredRecord<T>[];
}

/**
 * Keeps records in this process's memory: the fastest storage, and the default. Records that wait
 * are lost if the process crashes; use a durable storage when that matters.
 *
 * Fresh records sit in an O(1) queue as they were pushed, with nothing allocated around them; ids
 * are positions in push order, so they need no storage either. Only records released for a retry
 * carry an envelope with their attempt count.
 */
export class MemoryStorage<T> implements Storage<T> {
  readonly durable = false;
  readonly shared = false;

  private readonly fresh = new Queue<T>();
  /** Id of the record at the head of `fresh`; ids grow by one per appended record. */
  private headId = 0;
  /** Retried records whose delay has passed, in id (push) order. */
  private due: StoredRecord<T>[] = [];
  /** Retried records still waiting out their delay, by `visibleAt`. */
  private delayed: Retry<T>[] = [];
  private delayedCount = 0;
  private readonly sizeOf: (record: T) => number;

  constructor(options: MemoryStorageOptions<T> = {}) {
    this.sizeOf = options.sizeOf ?? jsonByteLength;
  }

  append(records: readonly T[]): RecordId[] {
    const ids = new Array<RecordId>(records.length);
    const first = this.headId + this.fresh.length;
    for (let i = 0; i < records.length; i++) {
      this.fresh.push(records[i] as T);
      ids[i] = first + i;
    }
    return ids;
  }

  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    this.promoteDue(options.now);
    const batch: StoredRecord<T>[] = [];
    const maxBytes = options.maxBytes;
    let bytes = 0;
    const fits = (record: T): boolean => {
      if (maxBytes === undefined) return true;
      const size = this.sizeOf(record);
      if (batch.length > 0 && bytes + size > maxBytes) return false;
      bytes += size;
      return true;
    };
    let dueTaken = 0;
    while (batch.length < limit && dueTaken < this.due.length) {
      const entry = this.due[dueTaken] as StoredRecord<T>;
      if (!fits(entry.record)) break;
      batch.push(entry);
      dueTaken++;
    }
    if (dueTaken > 0) this.due = this.due.slice(dueTaken);
    while (batch.length < limit && this.fresh.length > 0) {
      const record = this.fresh.peek() as T;
      if (!fits(record)) break;
      this.fresh.shift();
      batch.push({ id: this.headId++, record, attempts: 0 });
    }
    return batch;
  }

  /** Reserved records already left the queue; there is nothing more to remove. */
  ack(): void {}

  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    if (records.length === 0) return;
    const retry: Retry<T> = {
      visibleAt,
      records: records.map((r) => ({ id: r.id, record: r.record, attempts: r.attempts + 1 })),
    };
    let i = this.delayed.length;
    while (i > 0 && (this.delayed[i - 1] as Retry<T>).visibleAt > visibleAt) i--;
    this.delayed.splice(i, 0, retry);
    this.delayedCount += records.length;
  }

  size(): number {
    return this.fresh.length + this.due.length + this.delayedCount;
  }

  recover(): number {
    return 0;
  }

  close(): void {}

  /** Moves retries whose delay has passed to `due`, keeping `due` in push order. */
  private promoteDue(now: number): void {
    if (this.delayed.length === 0 || (this.delayed[0] as Retry<T>).visibleAt > now) return;
    let n = 0;
    while (n < this.delayed.length && (this.delayed[n] as Retry<T>).visibleAt <= now) n++;
    const promoted = this.delayed.splice(0, n).flatMap((r) => r.records);
    this.delayedCount -= promoted.length;
    this.due = this.due.concat(promoted).sort((a, b) => (a.id as number) - (b.id as number));
  }
}

/** Length in bytes of a value's JSON text, in UTF-8. */
export function jsonByteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}
