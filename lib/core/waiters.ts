import type { RecordId } from './storage.js';

/** A `pushAndWait` caller. */
export interface Waiter<U> {
  resolve(value: U | undefined): void;
  reject(error: Error): void;
}

/** The `pushAndWait` callers of each waiting record; several when records were coalesced. */
export class Waiters<U> {
  private readonly byId = new Map<RecordId, Waiter<U>[]>();

  get size(): number {
    return this.byId.size;
  }

  add(id: RecordId, waiter: Waiter<U>): void {
    const list = this.byId.get(id);
    if (list) list.push(waiter);
    else this.byId.set(id, [waiter]);
  }

  /** Resolves the callers of `ids[i]` with `results?.[i]`. */
  resolve(ids: readonly { readonly id: RecordId }[], results?: readonly (U | undefined)[]): void {
    if (this.byId.size === 0) return;
    ids.forEach((entry, i) => {
      for (const waiter of this.take(entry.id)) waiter.resolve(results?.[i]);
    });
  }

  reject(ids: readonly { readonly id: RecordId }[], error: Error): void {
    if (this.byId.size === 0) return;
    for (const entry of ids) for (const waiter of this.take(entry.id)) waiter.reject(error);
  }

  private take(id: RecordId): Waiter<U>[] {
    const list = this.byId.get(id);
    if (!list) return [];
    this.byId.delete(id);
    return list;
  }
}
