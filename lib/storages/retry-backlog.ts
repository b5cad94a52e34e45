import { Heap } from '../core/heap.js';

/** Records released together, hidden until `visibleAt`. */
interface RetryGroup<R> {
  readonly visibleAt: number;
  /** In id order. */
  readonly records: (R | undefined)[];
}

/** A due group, handed out from `next` on. */
interface DueRun<R extends { readonly id: number }> {
  readonly records: (R | undefined)[];
  next: number;
}

/**
 * The records a storage holds for a retry: hidden until their `visibleAt`, then handed out oldest
 * (lowest id) first, ahead of fresh records. Made for `MemoryStorage`, whose backlog may grow to
 * millions while a downstream is down (FileStorage keeps the same two heaps in `RetryGroups`, over
 * groups whose records may be on disk only): releasing a group costs O(b log b + log g) for b
 * records in g groups, promoting and taking a record O(log g), and nothing ever walks or re-sorts
 * the backlog. Generic over what a record is, as long as it has a numeric id that orders records
 * as they were stored.
 */
export class RetryBacklog<R extends { readonly id: number }> {
  /** Groups still waiting out their delay, earliest `visibleAt` on top. */
  private readonly delayed = new Heap<RetryGroup<R>>((a, b) => a.visibleAt < b.visibleAt);
  /** Due groups, merged by id: the run whose next record has the lowest id on top. */
  private readonly due = new Heap<DueRun<R>>(
    (a, b) => a.records[a.next]!.id < b.records[b.next]!.id,
  );
  private delayedCount = 0;
  private dueCount = 0;

  /** Records held, due or not. */
  get size(): number {
    return this.delayedCount + this.dueCount;
  }

  /** Records whose delay has passed (as of the last `promote`). */
  get dueSize(): number {
    return this.dueCount;
  }

  /** Holds `records` until `visibleAt`. */
  add(visibleAt: number, records: readonly R[]): void {
    if (records.length === 0) return;
    const sorted: (R | undefined)[] = records.slice().sort((a, b) => a.id - b.id);
    this.delayed.push({ visibleAt, records: sorted });
    this.delayedCount += sorted.length;
  }

  /** Makes the groups whose `visibleAt` is at or before `now` due. */
  promote(now: number): void {
    for (let group = this.delayed.peek(); group && group.visibleAt <= now;) {
      this.delayed.pop();
      this.delayedCount -= group.records.length;
      this.dueCount += group.records.length;
      this.due.push({ records: group.records, next: 0 });
      group = this.delayed.peek();
    }
  }

  /** The due record with the lowest id, left in place. */
  peek(): R | undefined {
    const run = this.due.peek();
    return run === undefined ? undefined : run.records[run.next];
  }

  /** Takes the due record with the lowest id. */
  shift(): R | undefined {
    const run = this.due.peek();
    if (run === undefined) return undefined;
    const record = run.records[run.next];
    // Let go of what was handed out: a run's array lives until its last record is taken.
    run.records[run.next++] = undefined;
    this.dueCount--;
    if (run.next < run.records.length) this.due.topChanged();
    else this.due.pop();
    return record;
  }

  /** Calls `visit` on every record held, due or not, in no particular order. */
  forEach(visit: (record: R) => void): void {
    for (const run of this.due.values()) {
      for (let i = run.next; i < run.records.length; i++) visit(run.records[i]!);
    }
    for (const group of this.delayed.values()) {
      for (const record of group.records) visit(record as R);
    }
  }
}
