import { randomUUID } from 'node:crypto';
import { OptionChecker } from '../core/option-checker.js';
import { Queue } from '../core/queue.js';
import type {
  AppendOptions,
  MergeFunction,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../core/storage.js';
import { ByteBudget, HeldBytes } from './byte-budget.js';
import { RetryBacklog } from './retry-backlog.js';

/** Options of `MemoryStorage`. */
export interface MemoryStorageOptions<T> {
  /**
   * Size of a record in bytes, for the buffer's `maxBatchBytes` and for `maxBytes`. Called only
   * when one of them is set. Default: the length of the record's JSON in UTF-8.
   */
  sizeOf?: (record: T) => number;
  /**
   * Bound on the bytes of the records held (waiting, in a worker's hands or waiting for a retry,
   * until acknowledged), as `sizeOf` measures them. An append that would go past it is refused
   * whole with `StorageFullError`, and the buffer's `onFull` policy applies; appends are accepted
   * again once acknowledgements free room (see `watchRoom`). Default: none (bounded by the
   * buffer's `maxBufferedRecords` only).
   */
  maxBytes?: number;
}

/** A record released for a retry: in memory, ids are numbers. */
interface RetryEntry<T> extends StoredRecord<T> {
  readonly id: number;
}

/** Fresh records of one priority lane, and the sequence number of the oldest. */
interface Lane<T> {
  readonly queue: Queue<T>;
  headSeq: number;
}

// An id is lane × 2^44 + the record's sequence number in its lane: ids stay safe integers for
// 2^44 records per lane and 2^9 lanes, and sort by lane first, then by push order.
const LANE_FACTOR = 2 ** 44;
const MAX_LANES = 512;

/**
 * Keeps records in this process's memory: the fastest storage, and the default. Records that wait
 * are lost if the process crashes; use a durable storage when that matters.
 *
 * Fresh records sit in O(1) queues (one per priority lane) as they were pushed, with nothing
 * allocated around them; ids are positions in push order, so they need no storage either. Only
 * records released for a retry carry an envelope with their attempt count.
 */
export class MemoryStorage<T> implements Storage<T> {
  readonly durable = false;
  readonly shared = false;
  readonly features: StorageFeatures = { priority: true, coalesce: true };
  /** Ids restart with every instance: a random scope keeps the engine's idempotency keys unique. */
  readonly idScope = `memory:${randomUUID()}`;

  private readonly lanes: Lane<T>[] = [{ queue: new Queue<T>(), headSeq: 0 }];
  private freshCount = 0;
  /** Records released for a retry, due or still waiting out their delay. */
  private readonly retries = new RetryBacklog<RetryEntry<T>>();
  private readonly sizeOf: (record: T) => number;
  /** With `maxBytes`: the bytes held, by id. */
  private readonly held: HeldBytes<T> | undefined;

  /** @throws InvalidOptionsError for a `maxBytes` that is not a positive integer. */
  constructor(options: MemoryStorageOptions<T> = {}) {
    const check = new OptionChecker('MemoryStorage');
    this.sizeOf = check.optionalFunction('sizeOf', options.sizeOf) ?? jsonByteLength;
    const maxBytes = check.optionalInteger('maxBytes', options.maxBytes, 1);
    if (maxBytes !== undefined) this.held = new HeldBytes(maxBytes, this.sizeOf, 'MemoryStorage');
  }

  append(records: readonly T[], options?: AppendOptions): RecordId[] {
    const laneIndex = options?.lane ?? 0;
    const lane = this.lane(laneIndex);
    const sizes = this.held?.measure(records);
    const ids = new Array<RecordId>(records.length);
    const first = idOf(laneIndex, lane.headSeq + lane.queue.length);
    for (let i = 0; i < records.length; i++) {
      lane.queue.push(records[i]!);
      ids[i] = first + i;
      if (sizes) this.held?.hold(first + i, sizes[i]!);
    }
    this.freshCount += records.length;
    return ids;
  }

  appendOne(record: T, options?: AppendOptions): RecordId {
    const laneIndex = options?.lane ?? 0;
    const lane = laneIndex === 0 ? this.lanes[0]! : this.lane(laneIndex);
    const id = idOf(laneIndex, lane.headSeq + lane.queue.length);
    if (this.held) this.held.hold(id, this.held.measureOne(record));
    lane.queue.push(record);
    this.freshCount++;
    return id;
  }

  coalesce(id: RecordId, record: T, merge: MergeFunction<T>): boolean {
    if (typeof id !== 'number') return false;
    const lane = this.lanes[Math.floor(id / LANE_FACTOR)];
    if (!lane) return false;
    const index = (id % LANE_FACTOR) - lane.headSeq;
    const older = lane.queue.at(index);
    if (older === undefined) return false;
    const merged = merge(older, record);
    // Merged past `maxBytes`: the engine appends the record instead, which the budget refuses.
    if (this.held && !this.held.resize(id, merged)) return false;
    return lane.queue.set(index, merged);
  }

  reserve(limit: number, options: ReserveOptions): StoredRecord<T>[] {
    const retries = this.retries;
    retries.promote(options.now);
    const batch: StoredRecord<T>[] = [];
    const budget = new ByteBudget(options.maxBytes, this.sizeOf);
    for (let entry = retries.peek(); entry && batch.length < limit; entry = retries.peek()) {
      if (!budget.fits(entry.record, batch.length)) return batch;
      batch.push(retries.shift() as RetryEntry<T>);
    }
    // Each lane takes (1 - laneShare) of the room left when a lower lane holds records, so low
    // lanes always get part of a batch; the lowest non-empty lane takes whatever room is left.
    const share = options.laneShare ?? 0;
    for (let l = 0; l < this.lanes.length && batch.length < limit; l++) {
      const lane = this.lanes[l]!;
      if (lane.queue.length === 0) continue;
      const room = limit - batch.length;
      const quota = this.lowerLanesWait(l) ? Math.max(1, Math.ceil(room * (1 - share))) : room;
      const taken = this.takeFresh(lane, l, quota, batch, budget);
      if (taken < quota && lane.queue.length > 0) break; // stopped by maxBytes
    }
    return batch;
  }

  /** Reserved records already left the queues: only their room, with `maxBytes`, is given back. */
  ack(records: readonly StoredRecord<T>[]): void {
    if (this.held) this.held.free(records.map((r) => r.id));
  }

  /**
   * With `maxBytes`: calls `listener` when acknowledgements freed room after an append was
   * refused with `StorageFullError`, from within `ack`; returns a function that stops watching.
   * Without `maxBytes` nothing is ever refused, and `listener` is never called.
   */
  watchRoom(listener: () => void): () => void {
    return this.held ? this.held.watch(listener) : () => {};
  }

  release(records: readonly StoredRecord<T>[], visibleAt: number): void {
    this.retries.add(
      visibleAt,
      records.map((r) => ({
        id: r.id as number,
        record: r.record,
        attempts: r.attempts + 1,
        // Nothing crashes between a lease and its end without taking this memory with it.
        deliveries: r.attempts + 2,
      })),
    );
  }

  size(): number {
    return this.freshCount + this.retries.size;
  }

  recover(): number {
    return 0;
  }

  close(): void {}

  private lane(index: number): Lane<T> {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_LANES) {
      throw new RangeError(`lane must be an integer from 0 to ${MAX_LANES - 1}, got ${index}`);
    }
    while (this.lanes.length <= index) this.lanes.push({ queue: new Queue<T>(), headSeq: 0 });
    return this.lanes[index]!;
  }

  private lowerLanesWait(index: number): boolean {
    for (let l = index + 1; l < this.lanes.length; l++) {
      if (this.lanes[l]!.queue.length > 0) return true;
    }
    return false;
  }

  private takeFresh(
    lane: Lane<T>,
    index: number,
    quota: number,
    batch: StoredRecord<T>[],
    budget: ByteBudget<T>,
  ): number {
    let taken = 0;
    while (taken < quota && lane.queue.length > 0) {
      const record = lane.queue.peek() as T;
      if (!budget.fits(record, batch.length)) break;
      lane.queue.shift();
      batch.push({ id: idOf(index, lane.headSeq++), record, attempts: 0, deliveries: 1 });
      taken++;
    }
    this.freshCount -= taken;
    return taken;
  }
}

/**
 * The id of the `seq`-th record of a lane. Lane 0 skips the multiplication: in code V8 has not
 * optimized yet, `0 * 2 ** 44 + seq` is a heap number, and a heap-number `id` in the records it
 * leases makes V8 box the `id` field of user objects of the same shape, for the whole process.
 */
function idOf(lane: number, seq: number): number {
  return lane === 0 ? seq : lane * LANE_FACTOR + seq;
}

/** Length in bytes of a value's JSON text, in UTF-8. */
export function jsonByteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}
