import { Heap } from '../../core/heap.js';
import type { GroupPlace } from './group-place.js';
import type { LiveRecord } from './live-record.js';
import type { MemoryBudget } from './memory-budget.js';

/**
 * Records released together (one `release` call, or found so at open): hidden until `visibleAt`,
 * then handed out in id order. Once their new state is on disk, the group knows where its records
 * are (`place`), so it can leave memory and be read back with a read or two.
 */
export interface RetryGroup {
  readonly visibleAt: number;
  /** Release order, between groups of the same `visibleAt`. */
  readonly order: number;
  /** Records not taken yet. */
  remaining: number;
  /** The records, sorted by id, from `next` on; undefined while they are on disk only. */
  records: LiveRecord[] | undefined;
  next: number;
  /** The id of the next record to hand out (the lowest left). */
  nextId: number;
  /** Payload bytes of the records left. */
  bytes: number;
  /**
   * Where exactly the records left are on disk, in their state: set once the state is written,
   * and cleared when one is taken or they are being copied elsewhere.
   */
  place: GroupPlace | undefined;
}

/**
 * The records waiting for a retry, as groups rather than records: a group costs one small object
 * whatever its size, and its records leave memory once written (when `MemoryBudget` is spent), so
 * a backlog of millions of retries costs memory per release, not per record. Releasing a group
 * costs O(b log b) for its b records; making groups due and taking a record O(log g) for g groups:
 * nothing ever walks or re-sorts the backlog.
 *
 * The same two heaps as `RetryBacklog` (MemoryStorage's), which this cannot use because a group's
 * records may be on disk only: the due heap orders groups by `nextId` rather than by their next
 * record, a group can be due with no records in memory (read back by `loadGroup` before it is
 * taken), found at open with only a count and a place, lose records that could not be read back
 * (`lost`), and be found by segment (`inSegment`) to copy it out of a segment being emptied.
 * Records it holds in memory count against `MemoryBudget`.
 */
export class RetryGroups {
  /** Groups still waiting out their delay, earliest `visibleAt` on top. */
  private readonly delayed = new Heap<RetryGroup>(
    (a, b) => a.visibleAt < b.visibleAt || (a.visibleAt === b.visibleAt && a.order < b.order),
  );
  /** Due groups, merged by id: the group whose next record has the lowest id on top. */
  private readonly due = new Heap<RetryGroup>((a, b) => a.nextId < b.nextId);
  /** Groups whose place is known, by segment, for copying them out of a segment to empty it. */
  private readonly bySegment = new Map<number, Set<RetryGroup>>();
  private order = 0;
  private count = 0;

  constructor(private readonly budget: MemoryBudget) {}

  /** Records held, due or not. */
  get size(): number {
    return this.count;
  }

  /** Holds `records` (in memory) until `visibleAt`; their state is not written yet. */
  hold(visibleAt: number, records: LiveRecord[]): RetryGroup {
    records.sort((a, b) => a.id - b.id);
    let bytes = 0;
    for (const record of records) bytes += record.bytes;
    const group: RetryGroup = {
      visibleAt,
      order: this.order++,
      remaining: records.length,
      records,
      next: 0,
      nextId: records[0]!.id,
      bytes,
      place: undefined,
    };
    this.budget.used += bytes;
    this.add(group);
    return group;
  }

  /** A group found at open: `count` records at `place`, from id `firstId` up. */
  addFound(
    visibleAt: number,
    firstId: number,
    count: number,
    bytes: number,
    place: GroupPlace,
  ): void {
    const group: RetryGroup = {
      visibleAt,
      order: this.order++,
      remaining: count,
      records: undefined,
      next: 0,
      nextId: firstId,
      bytes,
      place,
    };
    this.index(group);
    this.add(group);
  }

  /** Makes the groups whose `visibleAt` is at or before `now` due. */
  promote(now: number): void {
    for (let group = this.delayed.peek(); group !== undefined && group.visibleAt <= now;) {
      this.delayed.pop();
      if (group.remaining > 0) this.due.push(group);
      group = this.delayed.peek();
    }
  }

  /** The due group whose next record has the lowest id. */
  top(): RetryGroup | undefined {
    let group = this.due.peek();
    // A group whose records could not be read back is left in its heap until it comes up.
    while (group !== undefined && group.remaining === 0) {
      this.due.pop();
      group = this.due.peek();
    }
    return group;
  }

  /** Takes the next record of the top group, which must be in memory. */
  take(group: RetryGroup): LiveRecord {
    const records = group.records as LiveRecord[];
    const record = records[group.next]!;
    // Let go of what was handed out: the array lives until its last record is taken.
    (records as (LiveRecord | undefined)[])[group.next++] = undefined;
    group.remaining--;
    group.bytes -= record.bytes;
    this.budget.used -= record.bytes;
    this.count--;
    this.unindex(group);
    if (group.remaining > 0) {
      group.nextId = records[group.next]!.id;
      this.due.topChanged();
    } else {
      group.records = undefined;
      this.due.pop();
    }
    return record;
  }

  /** The records of a group read back from disk. */
  loaded(group: RetryGroup, records: LiveRecord[]): void {
    if (group.records !== undefined) return;
    group.records = records;
    group.next = 0;
    this.budget.used += group.bytes;
  }

  /**
   * Records of a group read back could not all be: `lost` of them are given up (reported by the
   * caller), and the group goes on with what was read.
   */
  lost(group: RetryGroup, lost: number): void {
    group.remaining -= lost;
    this.count -= lost;
    if (group.remaining === 0) this.unindex(group);
  }

  /**
   * The group's state is on disk, its records at `place`: if none was taken meanwhile, the group
   * may leave memory, and does so once the budget is spent.
   */
  written(group: RetryGroup, place: GroupPlace): void {
    if (group.next !== 0 || group.records === undefined || group.remaining === 0) return;
    group.place = place;
    this.index(group);
    if (this.budget.used > this.budget.limit) {
      this.budget.used -= group.bytes;
      group.records = undefined;
    }
  }

  /** The group's records are being copied elsewhere: until they are written, it has no place. */
  moving(group: RetryGroup): void {
    this.unindex(group);
  }

  /** Groups with records in segment `sequence`, untouched, to copy them out of it. */
  inSegment(sequence: number): RetryGroup[] {
    return [...(this.bySegment.get(sequence) ?? [])];
  }

  private add(group: RetryGroup): void {
    this.count += group.remaining;
    this.delayed.push(group);
  }

  private index(group: RetryGroup): void {
    for (const part of group.place ?? []) {
      let set = this.bySegment.get(part.segment);
      if (set === undefined) {
        set = new Set();
        this.bySegment.set(part.segment, set);
      }
      set.add(group);
    }
  }

  private unindex(group: RetryGroup): void {
    const place = group.place;
    if (place === undefined) return;
    group.place = undefined;
    for (const part of place) {
      const set = this.bySegment.get(part.segment);
      set?.delete(group);
      if (set?.size === 0) this.bySegment.delete(part.segment);
    }
  }
}
