/** A value, or a promise of it: in-memory storages answer synchronously, durable ones do not. */
export type Awaitable<T> = T | Promise<T>;

/**
 * Identifies a record within its storage. Stable: the same on every delivery of the record, after
 * a restart and on every instance sharing the storage. Never reused for another record by the same
 * storage (see `Storage.idScope`), so that a worker can use it as an idempotency key.
 */
export type RecordId = string | number;

/** A record leased to the engine by `reserve`, with what the storage needs back on ack or release. */
export interface StoredRecord<T> {
  readonly id: RecordId;
  readonly record: T;
  /** Failed worker attempts so far (releases): 0 for a record that was never released. */
  readonly attempts: number;
  /**
   * Leases of this record so far, this one included: 1 for a fresh record. Every lease counts,
   * when it is taken (durably, for a durable storage), so `deliveries` is `attempts + 1` when
   * every earlier lease ended in a release, and more when a lease ended without ack or release:
   * its holder crashed while the record was in its hands, or let the lease lapse. The engine reads
   * that difference to find records that crash the process (see `retry.maxAttempts`).
   */
  readonly deliveries: number;
}

/**
 * A stored record that could not be read back: its bytes are damaged, or they do not deserialize.
 * The storage sets it aside (it is never reserved again and `size()` no longer counts it) before
 * it reports it, and keeps its bytes where `location` says.
 */
export interface UnreadableRecord {
  readonly id: RecordId;
  /** The stored bytes, as far as they could be read. */
  readonly payload: string | Uint8Array;
  /** Where the storage keeps the bytes now: a quarantine file, table or key. */
  readonly location: string;
  /** Why the record could not be read (the serializer's error, a checksum mismatch). */
  readonly cause: unknown;
}

/** How `reserve` chooses records. */
export interface ReserveOptions {
  /**
   * The engine's clock, in epoch milliseconds. A record released with a later `visibleAt` stays
   * hidden. The engine passes `Infinity` to take everything when it gives up at shutdown.
   */
  readonly now: number;
  /**
   * Upper bound on the serialized size of the batch. The first record is always taken, even if it
   * alone is larger, so that an oversized record cannot block the buffer.
   */
  readonly maxBytes?: number;
  /**
   * With priority lanes: the share of a batch that each lane leaves to the lanes below it when
   * they hold records, so that low lanes are never starved (see the `priority` engine option).
   */
  readonly laneShare?: number;
  /**
   * Receives records the storage met while reserving and could not read back, after it set them
   * aside. They are not in the returned batch. The engine reports them (`UnreadableRecordError`).
   */
  readonly onUnreadable?: (records: readonly UnreadableRecord[]) => void;
}

/** How `append` stores records. */
export interface AppendOptions {
  /** Priority lane, 0 the highest (see the `priority` engine option and `features.priority`). */
  readonly lane?: number;
}

/** Optional abilities a storage declares; the engine refuses options that need one it lacks. */
export interface StorageFeatures {
  /** Honours `AppendOptions.lane` and `ReserveOptions.laneShare`. */
  readonly priority?: boolean;
  /** Implements `coalesce`. */
  readonly coalesce?: boolean;
}

/** Replaces or merges a waiting record with a newer one of the same key (see `coalesce`). */
export type MergeFunction<T> = (older: T, newer: T) => T;

/**
 * Where records wait between `push` and the worker.
 *
 * The contract is built for at-least-once delivery: `reserve` leases records without removing them;
 * `ack` removes them once the worker is done; `release` puts failed records back for a retry at a
 * later time, with their attempt count, so that a retry delay and `maxAttempts` survive a restart;
 * `recover` returns records whose lease holder died. Records come out in the order they went in,
 * except that records released for a retry come out before fresh ones once they are visible again.
 * Every lease is counted (`StoredRecord.deliveries`), so that a record which crashes its process
 * is recognized after the restart instead of being redelivered for ever.
 *
 * Run `describeStorageConformance` from `@risemaxi/bufio/testing` against any implementation.
 */
export interface Storage<T> {
  /** Records survive the process that wrote them (a crash, a restart). */
  readonly durable: boolean;
  /** Several processes may append to and reserve from the same records at once. */
  readonly shared: boolean;
  /** Optional abilities; absent means none. */
  readonly features?: StorageFeatures;
  /**
   * Names this store of records, for the idempotency keys the engine gives workers
   * (`WorkContext.ids`, `${idScope}:${id}`): with a record's id it must never name another record,
   * across processes, restarts, and a store that was emptied or re-created. Read after the first
   * `reserve` has resolved, so a storage may learn it from its backend. Absent: the engine uses a
   * random scope per process, so keys stay unique but change after a restart.
   */
  readonly idScope?: string;
  /**
   * For storages whose leases lapse (a holder that died without releasing): how often, in ms, the
   * engine calls `recover()` while it runs. It also calls it at start and during `stop()`'s drain.
   * Absent: at start only.
   */
  readonly recoveryInterval?: number;

  /**
   * Stores records, in order, as durably as the storage promises, and returns their ids in the
   * same order. A rejection means none of the records were stored.
   */
  append(records: readonly T[], options?: AppendOptions): Awaitable<readonly RecordId[]>;

  /**
   * Optional fast path of `append` for one record, for storages that store synchronously:
   * `push(record)` uses it when present, which saves the arrays `append` takes and returns.
   */
  appendOne?(record: T, options?: AppendOptions): RecordId;

  /**
   * Leases up to `limit` visible records, oldest first (due retries before fresh records). Leased
   * records are not returned again until they are released, or recovered after their holder died.
   */
  reserve(limit: number, options: ReserveOptions): Awaitable<StoredRecord<T>[]>;

  /** Removes leased records for good: the worker is done with them. */
  ack(records: readonly StoredRecord<T>[]): Awaitable<void>;

  /**
   * Returns leased records for a retry: each is stored again with `attempts + 1` and stays hidden
   * from `reserve` until `visibleAt` (epoch milliseconds).
   */
  release(records: readonly StoredRecord<T>[], visibleAt: number): Awaitable<void>;

  /** How many records are stored and not leased (waiting, or waiting for a retry). */
  size(): Awaitable<number>;

  /**
   * With `features.coalesce`: replaces the record `id`, if it is still waiting (not leased, not
   * released for a retry), by `merge(old, record)`, in place (it keeps its position). Returns false
   * when `id` no longer waits, and the engine appends `record` instead.
   */
  coalesce?(id: RecordId, record: T, merge: MergeFunction<T>): boolean;

  /**
   * Makes records leased by a holder that is gone (a crashed process, an expired lease) visible
   * again, and returns how many. In-memory storages have nothing to recover and return 0.
   */
  recover(): Awaitable<number>;

  /**
   * For shared storages: how many records are leased by other holders now (other instances, or a
   * holder that died and whose lease has not lapsed yet). `stop()` reports them, so that a drain
   * never says "nothing left" while records wait for another holder.
   */
  leasedElsewhere?(): Awaitable<number>;

  /**
   * For shared storages: calls `listener` when records may have become visible that this instance
   * did not append (another instance appended or released them), and returns a function that
   * stops watching. With it, an idle engine waits for these calls instead of polling the storage
   * every `flushInterval`, and polls only rarely, as a safety net.
   */
  watch?(listener: () => void): () => void;

  /**
   * For storages that refuse appends for lack of room (`StorageFullError`: a byte budget, a full
   * disk): calls `listener` when acknowledgements freed room after an append was refused, and
   * returns a function that stops watching. The call may come from within `ack`, or later. With
   * it, pushes blocked by a full storage (`onFull: 'block'`) try again as soon as room was freed;
   * without it, the engine tries again on a backoff timer (and when its own batches end).
   */
  watchRoom?(listener: () => void): () => void;

  /** Releases connections, files and locks. Records stay stored if the storage is durable. */
  close(): Awaitable<void>;
}
