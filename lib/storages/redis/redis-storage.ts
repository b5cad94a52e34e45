import type { Redis } from 'ioredis';
import { SerializationError, StorageError } from '../../core/errors.js';
import type {
  AppendOptions,
  RecordId,
  ReserveOptions,
  Storage,
  StorageFeatures,
  StoredRecord,
} from '../../core/storage.js';
import { AppendBatcher, type CallOutcome } from '../append-batcher.js';
import { LeaseRenewal } from '../lease-renewal.js';
import { encodeRecords, type EncodeOptions } from '../serializer.js';
import { assertSingleLane, NO_FEATURES } from '../single-lane.js';
import { isUnavailable, RedisConnection, storageFailure } from './redis-connection.js';
import {
  type RedisStorageOptions,
  type ResolvedRedisStorageOptions,
  resolveRedisStorageOptions,
} from './redis-storage-options.js';
import {
  ACK,
  APPEND_MANY,
  BURY,
  KEY_NAMES,
  RECOVER,
  RELEASE,
  RENEW,
  RESERVE,
  SIZE,
} from './scripts.js';

/** The Redis keys of one buffer, as the storage names them (before any client `keyPrefix`). */
export type RedisStorageKeys = { readonly [K in (typeof KEY_NAMES)[number]]: string };

/** Most retries whose delay has passed that one `reserve` moves to the due list. */
const PROMOTE_CAP = 1000;
/** Most records one `recover` makes visible again; the next call continues. */
const RECOVER_CAP = 1000;
/** Records per append command: a tick of many producers in one, without holding Redis up long. */
const APPEND_CHUNK = 1000;
/** How long to wait before sending again when Redis is connected but answered "busy/loading". */
const BUSY_PAUSE = 100;

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
 * const storage = new RedisStorage<Event>({ url: 'redis://localhost:6379', name: 'events' });
 * const bufio = new BufIO<Event>({ storage, worker: (events) => db.insert(events) });
 */
export class RedisStorage<T> implements Storage<T> {
  readonly durable = true;
  readonly shared = true;
  /** None: one lane, no coalescing. */
  readonly features: StorageFeatures = NO_FEATURES;
  /** The buffer's name, from the options. */
  readonly name: string;
  /** This instance's consumer name in the group. */
  readonly consumer: string;
  /** The keys this buffer lives under. */
  readonly keys: RedisStorageKeys;

  private readonly options: ResolvedRedisStorageOptions<T>;
  /** How `append` serializes records, and names this storage in its errors. */
  private readonly encoding: EncodeOptions<T>;
  private readonly connection: RedisConnection;
  private readonly appends: AppendBatcher;
  private readonly keyList: readonly string[];
  /** Records this instance leased and has not acked or released: their leases are renewed. */
  private readonly leases: LeaseRenewal;
  /** Records processed whose ack failed (Redis was unreachable): acked again before other work. */
  private readonly unacked = new Set<string>();
  private closing: Promise<void> | undefined;

  /**
   * @throws InvalidOptionsError when an option is missing, of the wrong type or out of range; the
   * error names the option, the value given and what is allowed.
   */
  constructor(options: RedisStorageOptions<T>) {
    this.options = resolveRedisStorageOptions(options);
    this.encoding = {
      serializer: this.options.serializer,
      maxRecordBytes: this.options.maxRecordBytes,
      storageName: 'RedisStorage',
    };
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
    this.appends = new AppendBatcher({
      write: (calls) => this.writeAppends(calls),
      failure: (error) => storageFailure('append', error),
      isUnavailable,
      pause: (_retry, until) => this.waitToAppend(until),
      // One connection, pipelined: bursts of successive ticks keep their order in flight.
      oneAtATime: false,
      onUnavailable: this.options.onUnavailable,
      unavailableTimeout: this.options.unavailableTimeout,
    });
    this.leases = new LeaseRenewal({
      leaseTimeout: this.options.leaseTimeout,
      renew: (ids) =>
        this.connection
          .run('lease renewal', () =>
            RENEW.run(this.client, this.keyList, [
              this.options.group,
              this.consumer,
              this.options.leaseTimeout,
              ...ids,
            ]),
          )
          .then(() => undefined),
      report: (error) => this.report(error),
    });
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
   * @throws UnsupportedError (as a rejection) for a `lane` other than 0.
   */
  append(records: readonly T[], options?: AppendOptions): Promise<RecordId[]> {
    if (this.closing) return Promise.reject(this.closedError('append'));
    let texts: string[];
    try {
      assertSingleLane('RedisStorage', options);
      texts = encodeRecords(records, this.encoding);
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
    const ids: string[] = [];
    for (let i = 0; i < reply.length; i += 3) ids.push(String(reply[i]));
    this.leases.hold(ids);
    for (let i = 0; i < reply.length; i += 3) {
      const id = String(reply[i]);
      const text = String(reply[i + 2]);
      try {
        batch.push({
          id,
          record: this.options.serializer.deserialize(text),
          attempts: Number(reply[i + 1]),
          deliveries: Number(reply[i + 1]) + 1,
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
        this.leases.forget(ids);
      }
      throw error;
    }
    this.leases.forget(ids);
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
      this.leases.forget(ids);
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
      await this.appends.idle();
      this.leases.stop();
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
      for (const id of ids) this.unacked.delete(id);
      this.leases.forget(ids);
      this.report(error);
      return;
    }
    for (const id of ids) this.unacked.delete(id);
    this.leases.forget(ids);
  }

  /**
   * One pipeline for the appends of a tick, in as few commands as possible: the calls' records go
   * in one append script per up to `APPEND_CHUNK` records (a lone record in a plain `XADD`), cut
   * only between calls, so that each call is stored whole or not at all. One command rather than
   * one per record halves the client's CPU per record, which is what bounds the rate here.
   */
  private async writeAppends(calls: readonly (readonly string[])[]): Promise<CallOutcome[]> {
    await this.connection.whenReady('append', false, Infinity);
    const chunks: (readonly string[])[][] = [];
    let chunk: (readonly string[])[] = [];
    let size = 0;
    for (const texts of calls) {
      if (size > 0 && size + texts.length > APPEND_CHUNK) {
        chunks.push(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(texts);
      size += texts.length;
    }
    if (chunk.length > 0) chunks.push(chunk);
    const pipeline = this.client.pipeline();
    for (const group of chunks) {
      const texts = group.flat();
      if (texts.length === 1) pipeline.xadd(this.keys.stream, '*', 'd', texts[0] as string);
      else pipeline.eval(APPEND_MANY, 1, this.keys.stream, ...texts);
    }
    const results = await this.connection.bounded('append', pipeline.exec());
    if (!results) throw new StorageError('Redis append failed: the pipeline returned no results');
    return chunks.flatMap((group, i): CallOutcome[] => {
      const [error, reply] = results[i] ?? [new Error('no reply in the pipeline'), undefined];
      if (error) return group.map(() => error);
      const ids = Array.isArray(reply) ? reply.map(String) : [String(reply)];
      let at = 0;
      return group.map((texts) => ids.slice(at, (at += texts.length)));
    });
  }

  /**
   * Before appends that met an unreachable Redis are sent again: waits for the connection to be
   * ready, until `until`; or, when it is ready already (Redis answered "busy" or "loading"), a
   * moment. A client that has ended will not come back: its appends fail now.
   */
  private async waitToAppend(until: number): Promise<void> {
    if (this.client.status === 'ready') {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, Math.min(BUSY_PAUSE, until - Date.now()))),
      );
      return;
    }
    try {
      await this.connection.whenReady('append', true, until);
    } catch (error) {
      if (this.client.status === 'end') throw error;
    }
  }

  /** A stored record that cannot be deserialized must not block the buffer: set it aside. */
  private async bury(id: string, text: string, cause: unknown): Promise<void> {
    this.leases.forget([id]);
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
