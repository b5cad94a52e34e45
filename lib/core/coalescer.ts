import type { EngineContext } from './engine.js';
import { unsupportedOption } from './errors.js';
import type { MergeFunction, RecordId, Storage, StoredRecord } from './storage.js';
import type { Counters } from './stats.js';
import type { Waiter, Waiters } from './waiters.js';

/**
 * Write coalescing (`coalesce`): a pushed record whose key matches a waiting record's is merged
 * into it, in place, instead of being appended. Exists only when the option is set; knows which
 * record waits for each key, from its append until a reserve takes it.
 */
export class Coalescer<T, U> {
  /** The id of the waiting record of each key. */
  private readonly waiting = new Map<string, RecordId>();
  private readonly keyOf: (record: T) => string;
  private readonly merge: MergeFunction<T>;
  private readonly storage: Storage<T> & Required<Pick<Storage<T>, 'coalesce'>>;
  private readonly counters: Counters;
  private readonly waiters: Waiters<U>;

  /** @throws UnsupportedError when the storage cannot coalesce. */
  constructor({ name, options, storage, counters, waiters }: EngineContext<T, U>) {
    if (!options.coalesce || !storage.features?.coalesce || !canCoalesce(storage)) {
      throw unsupportedOption(name, 'coalesce', storage);
    }
    this.keyOf = options.coalesce.key;
    this.merge = options.coalesce.merge;
    this.storage = storage;
    this.counters = counters;
    this.waiters = waiters;
  }

  /** How many records `mergeWaiting` would leave of `records` to append. */
  countFresh(records: readonly T[]): number {
    const fresh = new Set<string>();
    for (const record of records) {
      const key = this.keyOf(record);
      if (!this.waiting.has(key)) fresh.add(key);
    }
    return fresh.size;
  }

  /**
   * Merges records into waiting records with the same key, in place, and returns those left to
   * append (records of one push with the same key are merged with each other first).
   */
  mergeWaiting(records: readonly T[], waiter: Waiter<U> | undefined): readonly T[] {
    const rest: T[] = [];
    const restIndex = new Map<string, number>();
    for (const record of records) {
      const key = this.keyOf(record);
      const id = this.waiting.get(key);
      if (id !== undefined && this.storage.coalesce(id, record, this.merge)) {
        if (waiter) this.waiters.add(id, waiter);
      } else {
        const earlier = restIndex.get(key);
        if (earlier === undefined) {
          restIndex.set(key, rest.length);
          rest.push(record);
          continue;
        }
        rest[earlier] = this.merge(rest[earlier]!, record);
      }
      this.counters.coalesced++;
      this.counters.pushed++;
    }
    return rest;
  }

  /** Records were appended with these ids: later records with their keys merge into them. */
  remember(records: readonly T[], ids: readonly RecordId[]): void {
    for (let i = 0; i < records.length; i++) {
      this.waiting.set(this.keyOf(records[i]!), ids[i]!);
    }
  }

  /** Records left the waiting queue (reserved, evicted): their keys no longer merge into them. */
  forget(batch: readonly StoredRecord<T>[]): void {
    for (const entry of batch) {
      if (entry.attempts > 0) continue;
      const key = this.keyOf(entry.record);
      if (this.waiting.get(key) === entry.id) this.waiting.delete(key);
    }
  }
}

function canCoalesce<T>(
  storage: Storage<T>,
): storage is Storage<T> & Required<Pick<Storage<T>, 'coalesce'>> {
  return typeof storage.coalesce === 'function';
}
