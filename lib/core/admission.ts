import type { Backlog } from './backlog.js';
import type { Coalescer } from './coalescer.js';
import {
  asError,
  BufferFullError,
  InvalidRecordError,
  isError,
  RecordDroppedError,
} from './errors.js';
import type { EngineContext } from './engine.js';
import { rejected } from './handled.js';
import type { Queue } from './queue.js';
import type { AppendOptions, RecordId, StoredRecord } from './storage.js';
import type { Waiter } from './waiters.js';

/** A push waiting for room (`onFull: 'block'`). */
export interface BlockedPush<T, U> {
  readonly records: readonly T[];
  readonly waiter: Waiter<U> | undefined;
  readonly lane: number | undefined;
  resolve(): void;
  reject(error: Error): void;
}

/** What an `Admission` needs from the engine around it. */
export interface AdmissionDeps<T, U> extends EngineContext<T, U> {
  readonly backlog: Backlog;
  readonly coalescer: Coalescer<T, U> | undefined;
  /** Records were stored with these ids: count them, run the push hooks, maybe dispatch. */
  readonly stored: (ids: readonly RecordId[], records: readonly T[]) => void;
  /** Takes up to `count` of the oldest visible records out of the storage (the dispatcher's). */
  readonly evict: (count: number) => Promise<StoredRecord<T>[]>;
  /** Pushes waiting for room, oldest first: made by `BufIO`, whose fast path reads its length. */
  readonly blocked: Queue<BlockedPush<T, U>>;
}

const RESOLVED = Promise.resolve();
/** First and longest wait before a push parked on a full storage tries again, in ms. */
const FULL_RETRY_DELAY = 100;
const FULL_RETRY_MAX_DELAY = 1000;

/** Whether a storage refused an append for lack of room (`StorageFullError`). */
export function isStorageFull(error: unknown): boolean {
  return isError(error) && (error as { code?: unknown }).code === 'BUFIO_STORAGE_FULL';
}

/**
 * The slow path of `push` (the fast path, one record into an in-memory buffer with room, stays in
 * `BufIO.push`): arrays, coalescing, priority lanes, asynchronous appends, and what happens when
 * the buffer is full (`onFull`: block, drop the oldest or the newest, or refuse). Owns the pushes
 * blocked for room, which go in in the order they came. Every refusal is counted and told.
 *
 * A storage that refuses an append for lack of room (`StorageFullError`: a byte budget, a full
 * disk) is full too, and `onFull` applies the same way. With `'block'` the push is parked at the
 * head of the blocked pushes; while the storage is full one push at a time tries again: when the
 * storage says acknowledgements freed room (`Storage.watchRoom`, watched from the first refusal
 * to the end of the drain), when a batch of this engine ends, and on a backoff timer (100 ms
 * doubling to 1 s) for room freed by others (a disk) or a storage without `watchRoom`.
 */
export class Admission<T, U> {
  private readonly blocked: Queue<BlockedPush<T, U>>;
  private admitting = false;
  /** Of the blocked pushes, how many at the head the storage refused for lack of room. */
  private parked = 0;
  /** The storage refused a blocked push for lack of room: one push at a time tries again. */
  private storageFull = false;
  private probing = false;
  private fullBackoff = 0;
  private fullTimer: NodeJS.Timeout | undefined;
  /** Stops watching the storage for room (`Storage.watchRoom`), once watched. */
  private unwatchRoom: (() => void) | undefined;
  /** The storage said room was freed while a push was trying again: it tries once more. */
  private roomNews = false;

  constructor(private readonly deps: AdmissionDeps<T, U>) {
    this.blocked = deps.blocked;
  }

  /**
   * Accepts checked records: resolves once they are stored (or dropped by the policy), rejects,
   * counted as refused, when the policy or the storage refuses them.
   */
  admit(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    const accepted = this.accept(records, waiter, lane);
    // The normal path of an in-memory storage pays nothing.
    if (accepted === RESOLVED) return accepted;
    accepted.then(undefined, (error: unknown) => this.noteRefused(records, error));
    return accepted;
  }

  /** A push refused at once: counted, told, and rejected without risk of an unhandled rejection. */
  refuse(records: T | readonly T[], error: unknown): Promise<never> {
    this.noteRefused(Array.isArray(records) ? (records as readonly T[]) : [records as T], error);
    return rejected(error);
  }

  /** Lets blocked pushes in, in order, while there is room (in the buffer and the storage). */
  admitBlocked(): void {
    // Appending can dispatch a batch, which frees room and calls back here: the loop below
    // already goes on while there is room, and re-entering would resolve pushes out of order.
    if (this.admitting || this.blocked.length === 0) return;
    this.admitting = true;
    try {
      const { backlog, options } = this.deps;
      while (this.blocked.length > 0) {
        const next = this.blocked.peek() as BlockedPush<T, U>;
        if (this.storageFull) {
          if (this.probing) return;
          this.probing = true;
        } else {
          const room = options.maxBufferedRecords - backlog.buffered();
          // An array larger than the whole buffer gets in once the buffer is empty.
          if (next.records.length > room && backlog.buffered() > 0) return;
        }
        // A push that tries the storage again goes back first if refused; others, in order.
        const probe = this.storageFull;
        this.blocked.shift();
        if (this.parked > 0) this.parked--;
        this.append(next.records, next.waiter, next.lane).then(next.resolve, (error: unknown) => {
          if (isStorageFull(error)) this.park(next, probe ? 0 : this.parked);
          else next.reject(error as Error);
        });
        // Refused again (or still on its way): the next try waits for room.
        if (this.storageFull) return;
      }
    } finally {
      this.admitting = false;
    }
  }

  /** At the end of a drain: pushes still blocked are refused. */
  rejectBlocked(error: Error): void {
    if (this.fullTimer) clearTimeout(this.fullTimer);
    this.fullTimer = undefined;
    this.unwatchRoom?.();
    this.unwatchRoom = undefined;
    this.parked = 0;
    while (this.blocked.length > 0) (this.blocked.shift() as BlockedPush<T, U>).reject(error);
  }

  private accept(
    input: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    const { coalescer, options, name } = this.deps;
    // With 'error', a push that does not fit is refused whole: none of it may be merged first.
    if (coalescer && options.onFull === 'error' && !this.hasRoom(coalescer.countFresh(input))) {
      return Promise.reject(new BufferFullError(name, options.maxBufferedRecords));
    }
    const records = coalescer ? coalescer.mergeWaiting(input, waiter) : input;
    if (records.length === 0) return RESOLVED;
    if (this.hasRoom(records.length)) {
      return this.append(records, waiter, lane, (error) =>
        this.whenStorageFull(records, waiter, lane, error),
      );
    }
    switch (options.onFull) {
      case 'error':
        return Promise.reject(new BufferFullError(name, options.maxBufferedRecords));
      case 'drop-newest':
        this.drop(records, waiter);
        return RESOLVED;
      case 'drop-oldest':
        return this.evictOldest(records, waiter, lane);
      case 'block': {
        const admitted = new Promise<void>((resolve, reject) => {
          this.blocked.push({ records, waiter, lane, resolve, reject });
        });
        this.admitBlocked(); // a push larger than the whole buffer goes in when it is empty
        return admitted;
      }
    }
  }

  /** Whether `count` more records may be appended now, ahead of no blocked push. */
  private hasRoom(count: number): boolean {
    const { backlog, options } = this.deps;
    return (
      count === 0 ||
      (this.blocked.length === 0 &&
        !this.storageFull &&
        backlog.buffered() + count <= options.maxBufferedRecords)
    );
  }

  /** The storage refused records for lack of room: `onFull` decides, as for a full buffer. */
  private whenStorageFull(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
    error: unknown,
  ): Promise<void> {
    switch (this.deps.options.onFull) {
      case 'error':
        return Promise.reject(error);
      case 'drop-newest':
        this.drop(records, waiter);
        return RESOLVED;
      case 'drop-oldest':
        return this.evictAndRetry(records, waiter, lane);
      case 'block':
        return new Promise<void>((resolve, reject) => {
          this.park({ records, waiter, lane, resolve, reject }, this.parked);
        });
    }
  }

  /** Puts a push the storage refused back among the blocked ones, at `index`, and waits. */
  private park(push: BlockedPush<T, U>, index: number): void {
    this.blocked.insert(index, push);
    this.parked++;
    this.storageFull = true;
    this.probing = false;
    this.watchRoom();
    if (this.roomNews) {
      // Room was freed while this push was on its way: it need not wait for more.
      this.roomNews = false;
      queueMicrotask(() => this.admitBlocked());
    }
    if (this.fullTimer) return;
    this.fullBackoff = Math.min(
      FULL_RETRY_MAX_DELAY,
      Math.max(FULL_RETRY_DELAY, this.fullBackoff * 2),
    );
    this.fullTimer = setTimeout(() => {
      this.fullTimer = undefined;
      this.admitBlocked();
    }, this.fullBackoff);
    this.fullTimer.unref();
  }

  /** From the first refusal on, hears when the storage frees room (if it can say so). */
  private watchRoom(): void {
    const { storage } = this.deps;
    if (this.unwatchRoom || !storage.watchRoom) return;
    this.unwatchRoom = storage.watchRoom(() => {
      if (!this.storageFull) return;
      if (this.probing) this.roomNews = true;
      // Not from within the storage's `ack`: appends and dispatches follow.
      else queueMicrotask(() => this.admitBlocked());
    });
  }

  /** `'drop-oldest'` on a full storage: drop as many of the oldest records, try once more. */
  private async evictAndRetry(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    const victims = await this.deps.evict(records.length);
    this.dropVictims(victims);
    try {
      await this.append(records, waiter, lane);
    } catch (error) {
      if (!isStorageFull(error)) throw error;
      this.drop(records, waiter);
    }
  }

  /**
   * Appends records; `whenFull` decides what follows when the storage refuses them for lack of
   * room (without it, the refusal rejects).
   */
  private append(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
    whenFull?: (error: unknown) => Promise<void>,
  ): Promise<void> {
    const { storage, backlog } = this.deps;
    let stored;
    try {
      stored = storage.append(records, appendOptions(lane));
    } catch (error) {
      return whenFull && isStorageFull(error) ? whenFull(error) : Promise.reject(error);
    }
    if (!(stored instanceof Promise)) {
      this.onAppended(records, stored, waiter);
      return RESOLVED;
    }
    const n = records.length;
    backlog.startAppend(n);
    return stored.then(
      (ids) => {
        backlog.endAppend(n);
        this.onAppended(records, ids, waiter);
      },
      (error: unknown) => {
        backlog.endAppend(n);
        if (whenFull && isStorageFull(error)) return whenFull(error);
        this.admitBlocked();
        throw error;
      },
    );
  }

  private onAppended(
    records: readonly T[],
    ids: readonly RecordId[],
    waiter: Waiter<U> | undefined,
  ): void {
    if (this.storageFull) this.noteStorageRoom();
    if (waiter) this.deps.waiters.add(ids[0]!, waiter);
    this.deps.coalescer?.remember(records, ids);
    this.deps.stored(ids, records);
  }

  /** Makes room by dropping the oldest visible records; what still does not fit is dropped too. */
  private async evictOldest(
    records: readonly T[],
    waiter: Waiter<U> | undefined,
    lane: number | undefined,
  ): Promise<void> {
    const { backlog, options } = this.deps;
    const excess = backlog.buffered() + records.length - options.maxBufferedRecords;
    this.dropVictims(await this.deps.evict(excess));
    // Records in flight or waiting for a retry cannot be evicted: drop the oldest incoming instead.
    const room = Math.max(0, options.maxBufferedRecords - backlog.buffered());
    if (room >= records.length) return this.append(records, waiter, lane);
    this.drop(records.slice(0, records.length - room), waiter);
    if (room > 0) return this.append(records.slice(records.length - room), undefined, lane);
  }

  /** The storage took a record again: pushes parked for room go in, in order. */
  private noteStorageRoom(): void {
    this.storageFull = false;
    this.probing = false;
    this.roomNews = false;
    this.fullBackoff = 0;
    if (this.fullTimer) clearTimeout(this.fullTimer);
    this.fullTimer = undefined;
    queueMicrotask(() => this.admitBlocked());
  }

  /** Records evicted to make room (`'drop-oldest'`): dropped, their waiters told. */
  private dropVictims(victims: readonly StoredRecord<T>[]): void {
    if (victims.length === 0) return;
    const { waiters, options, name } = this.deps;
    waiters.reject(victims, new RecordDroppedError(name, options.onFull));
    this.drop(
      victims.map((v) => v.record),
      undefined,
    );
  }

  private drop(records: readonly T[], waiter: Waiter<U> | undefined): void {
    const { counters, events, options, name } = this.deps;
    const policy = options.onFull;
    counters.dropped += records.length;
    waiter?.reject(new RecordDroppedError(name, policy));
    events.tell('dropped', { records, policy });
  }

  private noteRefused(records: readonly T[], error: unknown): void {
    this.deps.counters.refused += records.length;
    this.deps.events.tell('refused', { records, error: asError(error) });
  }
}

/** Refuses what cannot be a record: an empty array, or `undefined` anywhere. */
export function checkRecords(name: string, records: readonly unknown[]): void {
  if (records.length === 0) {
    throw new InvalidRecordError(`push to buffer "${name}" got an empty array`);
  }
  for (let i = 0; i < records.length; i++) {
    if (records[i] === undefined) {
      const at = records.length > 1 ? ` at index ${i}` : '';
      throw new InvalidRecordError(
        `push to buffer "${name}" got undefined${at}: a record must be a value`,
      );
    }
  }
}

/** The options of an append into `lane`; none for the default lane of a buffer without lanes. */
export function appendOptions(lane: number | undefined): AppendOptions | undefined {
  return lane === undefined ? undefined : { lane };
}
