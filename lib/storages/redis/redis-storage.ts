import type { Redis } from 'ioredis';
import { SerializationError, StorageError } from '../../core/errors.js';
import type { RecordId, ReserveOptions, Storage, StoredRecord } from '../../core/storage.js';
import { AppendPipeline } from './append-pipeline.js';
import { isUnavailable, RedisConnection } from './redis-connection.js';
import {
  type RedisStorageOptions,
  type ResolvedRedisStorageOptions,
  resolveRedisStorageOptions,
} from './redis-storage-options.js';
import { ACK, BURY, KEY_NAMES, RECOVER, RELEASE, RENEW, RESERVE, SIZE } from './scripts.js';
import { encodeRecords } from './serializer.js';

/** The Redis keys of one buffer, as the storage names them (before any client `keyPrefix`). */
export type RedisStorageKeys = { readonly [K in (typeof KEY_NAMES)[number]]: string };

/** Most retries whose delay has passed that one `reserve` moves to the due list. */
const PROMOTE_CAP = 1000;
/** Most records one `recover` makes visible again; the next call continues. */
const RECOVER_CAP = 1000;

/**
 * Keeps records in Redis Streams: durable as your Redis is (configure AOF for that), and shared:
 * any number of processes may push to and work on one buffer, each a consumer of one group.
 *
 * Records are appended with `XADD`, pipelined per tick; batches are leased with `XREADGROUP`;
 * acknowledged with `XACK` and `XDEL` at once (a Lua script); released for a retry into a sorted
 * set by visibility time, with their attempt count, so that retry delays and `maxAttempts` survive
 * restarts. A live process renews its leases; leases of a process that died are taken over after
 * `leaseTimeout` (`XAUTOCLAIM`, in `recover()`, which the engine calls on every poll).
 * Unacknowledged records are never trimmed. See `scripts.ts` for the layout of the keys.
 *
 * @example
 * const storage = new RedisStorage<Event>({ redis: 'redis://localhost:6379', name: 'events' });
 * const bufio = new BufIO<Event>({ storage, worker: (events) => db.insert(events) });
 */
export class RedisStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared = true;
  /** The buffer's name, from the options. */
  readonly name: string;
  /** This instance's consumer name in the group. */
  readonly consumer: string;
  /** The keys this buffer lives under. */
  readonly keys: RedisStorageKeys;

  private readonly options: ResolvedRedisStorageOptions<T>;
  private readonly connection: RedisConnection;
  private readonly appends: AppendPipeline;
  private readonly keyList: readonly string[];
  /** Records this instance leased and has not acked or released: their leases are renewed. */
  private readonly held = new Set<string>();
  /** Records processed whose ack failed (Redis was unreachable): acked again before other work. */
  private readonly unacked = new Set<string>();
  private readonly renewTimer: NodeJS.Timeout;
  private renewing = false;
  private renewFailing = false;
  private closing: Promise<void> | undefined;

  /**
   * @throws InvalidOptionsError when an option is missing, of the wrong type or out of range; the
   * error names the option, the value given and what is allowed.
   */
  constructor(options: RedisStorageOptions<T>) {
    this.options = resolveRedisStorageOptions(options);
    const { name, prefix, consumer } = this.options;
    this.name = name;
    this.consumer = consumer;
    const keys = Object.fromEntries(KEY_NAMES.map((key) => [key, `${prefix}:${key}`]));
    this.keys = Object.freeze(keys) as RedisStorageKeys;
    this.keyList = KEY_NAMES.map((key) => this.keys[key]);
    this.connection = new RedisConnection(
      this.options.redis,
      this.options.redisOptions,
      this.options.commandTimeout,
    );
    this.appends = new AppendPipeline(this.connection, this.keys.stream, {
      wait: this.options.onUnavailable === 'block',
      timeout: this.options.unavailableTimeout,
    });
    this.renewTimer = setInterval(
      () => void this.renew(),
      Math.max(10, Math.floor(this.options.leaseTimeout / 3)),
    );
    this.renewTimer.unref();
  }

  /** The ioredis client in use: yours, or the one the storage created from a URL. */
  get client(): Redis {
    return this.connection.client;
  }

  /**
   * Stores records at the end of the stream. Appends made in the same tick share one round trip.
   *
   * @throws SerializationError (as a rejection) when a record cannot be serialized.
   * @throws RecordTooLargeError (as a rejection) when one is larger than `maxRecordBytes`.
   * @throws StorageUnavailableError (as a rejection) when Redis cannot be reached (at once, or
   * after `unavailableTimeout` with `onUnavailable: 'block'`).
   */
  append(records: readonly T[]): Promise<RecordId[]> {
    if (this.closing) return Promise.reject(this.closedError('append'));
    let texts: string[];
    try {
      texts = encodeRecords(records, this.options.serializer, this.options.maxRecordBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    if (texts.length === 0) return Promise.resolve([]);
    return this.appends.add(texts);
  }

  /**
   * Leases up to `limit` records to this consumer: due retries and recovered records first, in
   * append order, then fresh ones (`XREADGROUP`). With `maxBytes`, stream entries are looked at
   * before they are read, so that none is leased beyond what fits. A stored record that cannot be
   * deserialized is moved to `keys.invalid` and reported to `onError`, not returned.
   */
  async reserve(limit: number, options: ReserveOptions): Promise<StoredRecord<T>[]> {
    if (this.closing) throw this.closedError('reserve');
    if (!(limit >= 1)) return [];
    await this.retryUnacked();
    const now = options.now;
    const reply = (await this.connection.run('reserve', () =>
      RESERVE.run(this.client, this.keyList, [
        this.options.group,
        this.consumer,
        Math.floor(Math.min(limit, Number.MAX_SAFE_INTEGER)),
        now === Infinity ? '+inf' : now === -Infinity ? '-inf' : String(now),
        options.maxBytes === undefined ? '' : String(options.maxBytes),
        this.options.leaseTimeout,
        PROMOTE_CAP + limit,
      ]),
    )) as (string | number)[];
    const batch: StoredRecord<T>[] = [];
    for (let i = 0; i < reply.length; i += 3) {
      const id = String(reply[i]);
      const text = String(reply[i + 2]);
      this.held.add(id);
      try {
        batch.push({
          id,
          record: this.options.serializer.deserialize(text),
          attempts: Number(reply[i + 1]),
        });
      } catch (error) {
        await this.bury(id, text, error);
      }
    }
    return batch;
  }

  /**
   * Removes records for good (`XACK` and `XDEL`, or out of the retry keys), in one script. If
   * Redis is unreachable it rejects, but keeps the leases and acks again before this instance's
   * next `reserve` or `recover`, so that a processed batch is not processed again after the outage.
   */
  async ack(records: readonly StoredRecord<T>[]): Promise<void> {
    if (records.length === 0) return;
    if (this.closing) throw this.closedError('ack');
    const ids = records.map((r) => String(r.id));
    try {
      await this.connection.run('ack', () =>
        ACK.run(this.client, this.keyList, [this.options.group, ...ids]),
      );
    } catch (error) {
      if (isUnavailable(error) && !this.closing) {
        // Processed already: keep the leases and ack them once Redis is back, rather than let
        // them expire and have the records processed again.
        for (const id of ids) this.unacked.add(id);
      } else {
        for (const id of ids) this.held.delete(id);
      }
      throw error;
    }
    for (const id of ids) this.held.delete(id);
  }

  /**
   * Moves leased records, with one more attempt, to the retry set scored by `visibleAt`. If this
   * fails, the records stay leased without renewal, and come back after `leaseTimeout`.
   */
  async release(records: readonly StoredRecord<T>[], visibleAt: number): Promise<void> {
    if (records.length === 0) return;
    if (this.closing) throw this.closedError('release');
    const ids = records.map((r) => String(r.id));
    const at = Number.isFinite(visibleAt) ? visibleAt : visibleAt > 0 ? '+inf' : 0;
    try {
      await this.connection.run('release', () =>
        RELEASE.run(this.client, this.keyList, [this.options.group, at, ...ids]),
      );
    } finally {
      // Released, or left leased without renewal: then it comes back when its lease expires.
      for (const id of ids) this.held.delete(id);
    }
  }

  /** Records stored and not leased, by any instance: unread stream entries and retries. */
  async size(): Promise<number> {
    if (this.closing) throw this.closedError('size');
    return Number(
      await this.connection.run('size', () =>
        SIZE.run(this.client, this.keyList, [this.options.group]),
      ),
    );
  }

  /**
   * Makes visible again, before fresh records, those whose lease expired: stream entries idle
   * for `leaseTimeout` (`XAUTOCLAIM`) and leased retries past their expiry, up to 1000 per call.
   * Also forgets group consumers that hold nothing and have been idle as long.
   */
  async recover(): Promise<number> {
    if (this.closing) throw this.closedError('recover');
    await this.retryUnacked();
    return Number(
      await this.connection.run('recover', () =>
        RECOVER.run(this.client, this.keyList, [
          this.options.group,
          this.consumer,
          this.options.leaseTimeout,
          RECOVER_CAP,
        ]),
      ),
    );
  }

  /**
   * Sends appends still queued, stops renewing leases and, if the storage created its client,
   * quits it. Records stay in Redis; records still leased are taken back by another instance (or
   * the next start) after `leaseTimeout`.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.appends.settled();
      clearInterval(this.renewTimer);
      await this.connection.close();
    })();
    return this.closing;
  }

  private async retryUnacked(): Promise<void> {
    if (this.unacked.size === 0) return;
    const ids = [...this.unacked];
    try {
      await this.connection.run('ack', () =>
        ACK.run(this.client, this.keyList, [this.options.group, ...ids]),
      );
    } catch (error) {
      if (isUnavailable(error)) throw error;
      // Refused rather than unreachable: stop holding them; their leases expire and the records
      // are processed again (at least once), rather than every reserve failing from now on.
      for (const id of ids) {
        this.unacked.delete(id);
        this.held.delete(id);
      }
      this.report(error);
      return;
    }
    for (const id of ids) {
      this.unacked.delete(id);
      this.held.delete(id);
    }
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.held.size === 0 || this.closing) return;
    this.renewing = true;
    try {
      await this.connection.run('lease renewal', () =>
        RENEW.run(this.client, this.keyList, [
          this.options.group,
          this.consumer,
          this.options.leaseTimeout,
          ...this.held,
        ]),
      );
      this.renewFailing = false;
    } catch (error) {
      // Reported once per outage, not on every tick of it.
      if (!this.renewFailing) this.report(error);
      this.renewFailing = true;
    } finally {
      this.renewing = false;
    }
  }

  /** A stored record that cannot be deserialized must not block the buffer: set it aside. */
  private async bury(id: string, text: string, cause: unknown): Promise<void> {
    this.held.delete(id);
    try {
      await this.connection.run('reserve', () =>
        BURY.run(this.client, this.keyList, [this.options.group, id, text]),
      );
    } catch (error) {
      // Still leased, no longer renewed: it comes back after leaseTimeout and is tried again.
      this.report(error);
      return;
    }
    this.report(
      new SerializationError(
        `record ${id} of RedisStorage "${this.name}" could not be deserialized and was moved to "${this.keys.invalid}": ${cause instanceof Error ? cause.message : String(cause)}`,
        { cause },
      ),
    );
  }

  private report(error: unknown): void {
    try {
      this.options.onError(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // A failing error hook must not break the storage.
    }
  }

  private closedError(operation: string): StorageError {
    return new StorageError(`RedisStorage "${this.name}" is closed: cannot ${operation}`);
  }
}
