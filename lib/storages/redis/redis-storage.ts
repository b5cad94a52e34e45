import { randomBytes } from 'node:crypto';
import type {
  AppendOptions,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../../core/storage.js';
import { AppendBatcher } from '../append-batcher.js';
import { encodeRecords, encodingOf, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { closedError, reportError } from '../storage-guards.js';
import { countLeased, countWaiting } from './buffer-counts.js';
import {
  BatchReads,
  type BufferContext,
  decodeBatch,
  type FreshEntry,
  type TakenRecord,
} from './batch-reads.js';
import { KEY_NAMES, type RedisStorageKeys } from './buffer-keys.js';
import { markOpen } from './consumer-name.js';
import { recoverLapsed } from './lease-recovery.js';
import { LegacyLayout } from './legacy-layout.js';
import { HeldLeases } from './held-leases.js';
import type { RedisClient } from './lua-script.js';
import { RedisConnection, storageFailure } from './redis-connection.js';
import {
  type RedisStorageOptions,
  type ResolvedRedisStorageOptions,
  resolveRedisStorageOptions,
} from './redis-storage-options.js';
import { RetryHints } from './retry-hints.js';
import { ENSURE } from './scripts.js';
import { setAside } from './set-aside.js';
import { StreamAppends } from './stream-appends.js';
import { StreamWatch } from './stream-watch.js';

export type { RedisStorageKeys } from './buffer-keys.js';

/** Shortest interval of the engine's recovery timer: an idle instance costs at most ~1 call/s. */
const MIN_RECOVERY_INTERVAL = 1000;
/** How long one blocking read of `watch()` waits: an idle watch costs 2 round trips per period. */
const WATCH_BLOCK_MS = 10_000;

/**
 * Keeps records in a Redis stream with a consumer group: durable as your Redis is (configure AOF
 * for that), and shared: any number of processes may push to and work on one buffer, each a
 * consumer of the group. Works on a standalone Redis and on a Redis Cluster: every key of a buffer
 * carries one hash tag (`bufio:{events}:stream`), so a buffer lives in one slot.
 *
 * The common path runs plain commands and no Lua per record: the appends of a tick go in one
 * pipeline (an APPEND script, a loop of `XADD`, per up to 1000 records); a batch is leased with
 * `XREADGROUP` (in a `MULTI` with a read of the id scope); an ack is `XACK` plus a trim of what the
 * group is done with. Released records wait in a sorted set by visibility time, with their attempt
 * count, so that retry delays and `maxAttempts` survive restarts; recovered and retried records
 * come out before fresh ones. `StoredRecord.deliveries` is kept in Redis: a lease that ended
 * without an ack or a release counts. A stored record the serializer cannot read back is set
 * aside in the hash `keys.invalid` and reported, not delivered.
 *
 * A live process renews its leases; the engine calls `recover()` every `recoveryInterval`, which
 * takes back the records of a holder that died after `leaseTimeout`, at once when it can prove the
 * holder gone (same host, its process no longer runs) or when it restarts under the same
 * `consumer` name. An idle engine waits in `watch()` (a blocking `XREAD` on a connection of its
 * own) rather than polling. See `scripts.ts` for the layout of the keys.
 *
 * @example
 * const storage = new RedisStorage<Event>({ url: 'redis://localhost:6379', name: 'events' });
 * const bufio = new BufIO<Event>({ storage, worker: (events) => db.insert(events) });
 */
export class RedisStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared = true;
  /** None: one lane, no coalescing. */
  readonly features: StorageFeatures = NO_FEATURES;
  /** How often the engine should call `recover()`: half of `leaseTimeout`, at least 1 s. */
  readonly recoveryInterval: number;
  /** The buffer's name, from the options. */
  readonly name: string;
  /** This instance's consumer name in the group. */
  readonly consumer: string;
  /** The keys this buffer lives under (before any client `keyPrefix`). */
  readonly keys: RedisStorageKeys;

  private readonly options: ResolvedRedisStorageOptions<T>;
  /** The encoding: the serializer, `maxRecordBytes`, and this storage's name in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private readonly connection: RedisConnection;
  /** Gathers the appends of a tick: sent in one pipeline (`StreamAppends`). */
  private readonly appends: AppendBatcher;
  /** Appends to the stream: the batched ones, and single ones now (moving 0.2.0's records). */
  private readonly stream: StreamAppends;
  private readonly reads: BatchReads;
  /** Where the buffer is and who this instance is, for the parts below. */
  private readonly context: BufferContext;
  private readonly keyList: readonly string[];
  /** Records this instance leased and has not acked or released. */
  private readonly leases: HeldLeases;
  private readonly hints: RetryHints;
  private readonly legacy: LegacyLayout | undefined;
  /** Runs one Redis call on the client, bounded, its errors typed. */
  private readonly run = <R>(operation: string, call: (client: RedisClient) => Promise<R>) =>
    this.connection.run(operation, () => call(this.client));
  private watcher: StreamWatch | undefined;
  private scope: string | undefined;
  private opening: Promise<void> | undefined;
  /** Records `open()` took back from an earlier run under this consumer name, not yet reported. */
  private reclaimed = 0;
  private closing: Promise<void> | undefined;

  /**
   * @throws InvalidOptionsError when an option is missing, of the wrong type or out of range, or
   * when the keys would not share one hash slot; the error names the option, the value given and
   * what is allowed.
   */
  constructor(options: RedisStorageOptions<T>) {
    this.options = resolveRedisStorageOptions(options);
    this.encoding = encodingOf(this.options, 'RedisStorage');
    const { name, consumer, layout, leaseTimeout } = this.options;
    this.name = name;
    this.consumer = consumer;
    this.keys = layout.keys;
    this.keyList = KEY_NAMES.map((key) => this.keys[key]);
    this.recoveryInterval = Math.max(MIN_RECOVERY_INTERVAL, Math.floor(leaseTimeout / 2));
    this.connection = new RedisConnection(
      this.options.redis,
      this.options.redisOptions,
      this.options.commandTimeout,
    );
    markOpen(consumer, true);
    this.hints = new RetryHints((at) => this.watcher?.retryDueAt(at));
    this.legacy =
      layout.legacy &&
      new LegacyLayout({
        keys: layout.legacy,
        bufferKeys: this.keyList,
        group: this.options.group,
        leaseTimeout,
        run: this.run,
        append: (texts) => this.stream.now('recover', texts),
        newScope,
        script: (script, keys, args) => this.connection.script('recover', script, keys, args),
      });
    this.stream = new StreamAppends({
      connection: this.connection,
      stream: this.keys.stream,
      ensureStream: () => this.ensureStream(),
    });
    this.appends = new AppendBatcher(this.stream.batching(this.options));
    this.context = {
      connection: this.connection,
      keys: this.keys,
      group: this.options.group,
      consumer,
      leaseTimeout,
      hints: this.hints,
      script: (operation, script, args) =>
        this.connection.script(operation, script, this.keyList, args),
    };
    this.reads = new BatchReads({
      ...this.context,
      ensureStream: () => this.ensureStream(),
      scopeSeen: (scope) => {
        this.scope = scope;
      },
      newScope,
    });
    this.leases = new HeldLeases({
      ...this.context,
      keyList: this.keyList,
      report: (error) => this.report(error),
    });
  }

  /** The ioredis client in use: yours, or the one the storage created from a URL. */
  get client(): RedisClient {
    return this.connection.client;
  }

  /**
   * `redis:<token>`: the token is drawn when the stream is created, so `${idScope}:${id}` names
   * one record for good, even if the stream is deleted and created again. Known once a reserve
   * (or `recover()`) has resolved.
   */
  get idScope(): string | undefined {
    return this.scope === undefined ? undefined : `redis:${this.scope}`;
  }

  /**
   * Stores records at the end of the stream. Appends made in the same tick share one round trip.
   *
   * @throws SerializationError (as a rejection) when a record cannot be serialized.
   * @throws RecordTooLargeError (as a rejection) when one is larger than `maxRecordBytes`.
   * @throws StorageUnavailableError (as a rejection) when Redis cannot be reached (at once, or
   * after `unavailableTimeout` with `onUnavailable: 'block'`).
   * @throws UnsupportedError (as a rejection) for a `lane` other than 0.
   */
  append(records: readonly T[], options?: AppendOptions): Promise<RecordId[]> {
    let texts: string[];
    try {
      this.assertOpen('append');
      assertSingleLane('RedisStorage', options);
      texts = encodeRecords(records, this.encoding);
    } catch (error) {
      return Promise.reject(error);
    }
    if (texts.length === 0) return Promise.resolve([]);
    return this.appends.add(texts);
  }

  /**
   * Leases up to `limit` records to this consumer: retried and recovered records first, in append
   * order, then fresh ones (`XREADGROUP`). With `maxBytes`, stream entries are looked at before
   * they are read, so that none is leased beyond what fits. A stored record that cannot be
   * deserialized is moved to `keys.invalid` and reported (`onUnreadable`, or `onError` without
   * it), not returned.
   */
  async reserve(limit: number, options: ReserveOptions): Promise<StoredRecord<T>[]> {
    this.assertOpen('reserve');
    if (!(limit >= 1)) return [];
    await this.leases.retryUnacked();
    await this.open();
    const max = Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER));
    let taken: TakenRecord[] = [];
    let room = max;
    if (options.maxBytes !== undefined || this.hints.mayHaveDue(options.now)) {
      const took = await this.reads.take(max, options);
      taken = took.records;
      room = options.maxBytes !== undefined || took.full ? 0 : max - taken.length;
    }
    const fresh = room > 0 ? await this.reads.readFresh(room) : [];
    const batch = await this.decode(taken, fresh, options.onUnreadable);
    this.watcher?.reserved();
    return batch;
  }

  /**
   * Removes records for good: `XACK` and a trim of the stream (an `XDEL` for acks that completed
   * out of order), or out of the retry keys. If Redis is unreachable it rejects, but keeps the
   * leases and acks again before this instance's next `reserve` or `recover`, so that a processed
   * batch is not processed again after the outage.
   */
  async ack(records: readonly StoredRecord<T>[]): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('ack');
    // Processed already: while the storage is open, keep the leases of an ack that met an outage
    // and ack them once Redis is back, rather than let them expire and the records be processed
    // again.
    await this.leases.ack(
      records.map((r) => String(r.id)),
      !this.closing,
    );
  }

  /**
   * Moves leased records, with one more attempt, to the retry set scored by `visibleAt`. If this
   * fails, the records stay leased without renewal, and come back after `leaseTimeout`.
   */
  async release(records: readonly StoredRecord<T>[], visibleAt: number): Promise<void> {
    if (records.length === 0) return;
    this.assertOpen('release');
    await this.leases.release(
      records.map((r) => String(r.id)),
      visibleAt,
    );
    this.hints.released(visibleAt);
  }

  /** Records stored and not leased, by any instance: unread stream entries and retries. */
  async size(): Promise<number> {
    this.assertOpen('size');
    const own = await countWaiting(this.run, this.keys, this.options.group);
    return own + ((await this.legacy?.waiting(this.client.isCluster)) ?? 0);
  }

  /**
   * Makes visible again, before fresh records, those whose lease ended without ack or release:
   * pending entries idle for `leaseTimeout`, leased retries past their expiry, and at once those of
   * a holder proven gone (a process of this host that no longer runs, or an earlier run under
   * this storage's own `consumer` name). Also moves records that BufIO 0.2.0 left under its key
   * names, and forgets group consumers that hold nothing and have been idle as long.
   */
  async recover(): Promise<number> {
    this.assertOpen('recover');
    await this.leases.retryUnacked();
    await this.open();
    let recovered = await recoverLapsed([], this.context);
    recovered += (await this.legacy?.migrate(this.client.isCluster)) ?? 0;
    if (recovered > 0) this.hints.madeDue();
    recovered += this.reclaimed;
    this.reclaimed = 0;
    return recovered;
  }

  /** Records leased now by other holders: other instances, or holders that died recently. */
  async leasedElsewhere(): Promise<number> {
    this.assertOpen('leasedElsewhere');
    const leased = await countLeased(this.run, this.keys, this.options.group);
    const legacy = (await this.legacy?.leased(this.client.isCluster)) ?? 0;
    return Math.max(0, leased - this.leases.size) + legacy;
  }

  /**
   * Calls `listener` when the stream holds entries the group has not read (appended by any
   * instance), and when a retry this instance knows of falls due; returns a function that stops.
   * Waits with blocking reads on a connection of its own (`client.duplicate()`), so an idle
   * engine costs Redis two round trips per 10 s instead of a poll every `flushInterval`.
   */
  watch(listener: () => void): () => void {
    if (this.closing) return () => undefined;
    this.watcher ??= new StreamWatch({
      connect: () => this.connection.duplicateForBlocking(),
      stream: this.keys.stream,
      group: this.options.group,
      blockMs: WATCH_BLOCK_MS,
      settleMs: Math.max(MIN_RECOVERY_INTERVAL, this.options.commandTimeout),
      report: (error) => this.report(storageFailure('watch', error)),
    });
    return this.watcher.add(listener);
  }

  /**
   * Sends appends still queued, stops renewing leases and watching and, if the storage created
   * its client, quits it. Records stay in Redis; records still leased are taken back by another
   * instance (or the next start) after `leaseTimeout`, at once on this host.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.appends.idle();
    this.leases.stop();
    await this.watcher?.stop();
    markOpen(this.consumer, false);
    await this.connection.close();
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Once, before anything is read: creates the stream and the group if missing, and learns the
   * scope. With a `consumer` name of the user's, an earlier run of this process may have died
   * holding leases under that name: they are taken back now, before this run leases anything.
   */
  private open(): Promise<void> {
    this.opening ??= (async () => {
      await this.ensureStream();
      if (!this.options.consumerGiven) return;
      this.reclaimed = await recoverLapsed([this.consumer], this.context);
      if (this.reclaimed > 0) this.hints.madeDue();
    })().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  /** Creates the stream (with a new scope) and the group where missing; learns the scope. */
  private async ensureStream(): Promise<void> {
    this.scope = String(
      await this.context.script('reserve', ENSURE, [this.options.group, newScope()]),
    );
  }

  /**
   * Holds the leases of a reserved batch and deserializes it (records from TAKE, then fresh stream
   * entries, in that order); sets aside, in one call, what cannot be read back.
   */
  private async decode(
    taken: readonly TakenRecord[],
    fresh: readonly FreshEntry[],
    onUnreadable: ReserveOptions['onUnreadable'],
  ): Promise<StoredRecord<T>[]> {
    const decoded = decodeBatch(taken, fresh, this.encoding.serializer, (id) =>
      this.invalidLocation(id),
    );
    this.leases.hold(decoded.held, decoded.fromDue);
    if (decoded.unreadable.length > 0) {
      await setAside(decoded.unreadable, onUnreadable, {
        ...this.context,
        leases: this.leases,
        name: this.name,
        invalidKey: this.keys.invalid,
        report: (error) => this.report(error),
      });
    }
    return decoded.batch;
  }

  private invalidLocation(id: string): string {
    const keyPrefix = this.client.options.keyPrefix ?? '';
    return `Redis hash "${keyPrefix}${this.keys.invalid}", field "${id}"`;
  }

  private assertOpen(operation: string): void {
    if (this.closing) throw closedError(`RedisStorage "${this.name}"`, operation);
  }

  private report(error: unknown): void {
    reportError(this.options.onError, error);
  }
}

/** A scope for a stream a script may create: random, never drawn twice. */
function newScope(): string {
  return randomBytes(10).toString('hex');
}
