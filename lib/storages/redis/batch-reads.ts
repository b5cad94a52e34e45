import type { ReserveOptions, StoredRecord, UnreadableRecord } from '../../core/storage.js';
import type { Serializer } from '../serializer.js';
import type { RedisStorageKeys } from './buffer-keys.js';
import { payloadOf } from './legacy-layout.js';
import type { LuaScript } from './lua-script.js';
import { storageFailure, type RedisConnection } from './redis-connection.js';
import type { RetryHints } from './retry-hints.js';
import { TAKE } from './scripts.js';
import { fieldsOf } from './stream-watch.js';

/** Most retries whose delay has passed that one reserve moves to `due`, beyond its limit. */
const PROMOTE_CAP = 1000;

/** A record as Redis handed it over from TAKE, before it is deserialized. */
export interface TakenRecord {
  readonly id: string;
  readonly attempts: number;
  readonly lapsed: number;
  /** From `data` (leased in `lease`), rather than a stream entry pending in the group. */
  readonly fromDue: boolean;
  readonly payload: string;
}

/** A fresh stream entry: its id and fields. */
export type FreshEntry = readonly [string, unknown[]];

/** What the parts of a `RedisStorage` share: where the buffer is, and who this instance is. */
export interface BufferContext {
  readonly connection: RedisConnection;
  readonly keys: RedisStorageKeys;
  readonly group: string;
  readonly consumer: string;
  readonly leaseTimeout: number;
  readonly hints: RetryHints;
  /** Runs one of the scripts over the buffer's keys, as one bounded Redis call. */
  script(
    operation: string,
    script: LuaScript,
    args: readonly (string | number)[],
  ): Promise<unknown>;
}

/** What `BatchReads` needs from its storage. */
export interface BatchReadsOptions extends BufferContext {
  /** Creates the stream and the group where missing. */
  ensureStream(): Promise<void>;
  /** The scope the stream read carries, seen with each read. */
  scopeSeen(scope: string): void;
  /** A new scope, for a stream TAKE may create. */
  newScope(): string;
}

/**
 * The reads of a reserve: retried and recovered records (and, with `maxBytes`, fresh ones) from
 * the TAKE script, and fresh stream entries with a plain `XREADGROUP`.
 */
export class BatchReads {
  constructor(private readonly options: BatchReadsOptions) {}

  /** Retried and recovered records (and, with `maxBytes`, fresh ones): the TAKE script. */
  async take(
    limit: number,
    options: ReserveOptions,
  ): Promise<{ records: TakenRecord[]; full: boolean }> {
    const { group, consumer, leaseTimeout, hints } = this.options;
    const { now, maxBytes } = options;
    const mark = hints.mark();
    const reply = (await this.options.script('reserve', TAKE, [
      group,
      consumer,
      limit,
      now === Infinity ? '+inf' : now === -Infinity ? '-inf' : String(now),
      maxBytes === undefined ? '' : String(maxBytes),
      leaseTimeout,
      PROMOTE_CAP + limit,
      maxBytes === undefined ? '0' : '1',
      this.options.newScope(),
    ])) as unknown[];
    this.options.scopeSeen(String(reply[0]));
    hints.observe(mark, Number(reply[1]), String(reply[2]));
    const records: TakenRecord[] = [];
    for (let i = 4; i + 4 < reply.length; i += 5) {
      records.push({
        id: String(reply[i]),
        attempts: Number(reply[i + 1]),
        lapsed: Number(reply[i + 2]),
        fromDue: reply[i + 3] === 'h',
        payload: String(reply[i + 4]),
      });
    }
    return { records, full: Number(reply[3]) === 1 };
  }

  /**
   * Fresh records: `XREADGROUP` in a transaction with a read of the scope, so that the ids and the
   * scope they are named in come from the same stream.
   */
  async readFresh(count: number): Promise<FreshEntry[]> {
    const { connection, keys, group, consumer } = this.options;
    for (let attempt = 0; ; attempt++) {
      const results = await connection.run('reserve', () =>
        connection.client
          .multi()
          .hget(keys.meta, 'scope')
          .xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', keys.stream, '>')
          .exec(),
      );
      const [[scopeError, scope], [readError, reply]] = (results ?? [
        [new Error('the transaction returned no results')],
        [undefined],
      ]) as [[Error | null, unknown], [Error | null, unknown]];
      const missing =
        scope === null || (readError instanceof Error && readError.message.startsWith('NOGROUP'));
      if (missing && attempt === 0) {
        // The stream or the group is gone (deleted, or lost with a Redis without persistence).
        await this.options.ensureStream();
        continue;
      }
      const error = scopeError ?? readError;
      if (error) throw storageFailure('reserve', error);
      this.options.scopeSeen(String(scope));
      return entriesOf(reply);
    }
  }
}

/** A reserved batch, deserialized: what to hand out, what to hold leased, what to set aside. */
export interface DecodedBatch<T> {
  readonly batch: StoredRecord<T>[];
  /** Every id leased: records from TAKE, then fresh stream entries, in that order. */
  readonly held: string[];
  /** The ids of `held` leased from `due` (renewed by RENEW rather than `XCLAIM`). */
  readonly fromDue: string[];
  readonly unreadable: UnreadableRecord[];
}

/** Deserializes a reserved batch; `location` says where a record set aside will be kept. */
export function decodeBatch<T>(
  taken: readonly TakenRecord[],
  fresh: readonly FreshEntry[],
  serializer: Serializer<T>,
  location: (id: string) => string,
): DecodedBatch<T> {
  const batch: StoredRecord<T>[] = [];
  const unreadable: UnreadableRecord[] = [];
  const held: string[] = new Array<string>(taken.length + fresh.length);
  let n = 0;
  for (const { id, attempts, lapsed, fromDue, payload } of taken) {
    held[n++] = id;
    try {
      const record = serializer.deserialize(payload);
      batch.push({ id, record, attempts, deliveries: fromDue ? attempts + lapsed + 1 : 1 });
    } catch (cause) {
      unreadable.push({ id, payload, location: location(id), cause });
    }
  }
  for (const [id, fields] of fresh) {
    held[n++] = id;
    // Ours have one field, the payload: a fast look before the search of payloadOf.
    const payload = fields[0] === 'd' ? String(fields[1]) : payloadOf(fields);
    try {
      batch.push({ id, record: serializer.deserialize(payload), attempts: 0, deliveries: 1 });
    } catch (cause) {
      unreadable.push({ id, payload, location: location(id), cause });
    }
  }
  const fromDue = taken.filter((record) => record.fromDue).map((record) => record.id);
  return { batch, held, fromDue, unreadable };
}

/**
 * The entries of an `XREADGROUP`/`XREAD` reply for one stream: `[[key, entries]]`, or a map of key
 * to entries under RESP3 reply mapping; null when there are none.
 */
function entriesOf(reply: unknown): [string, unknown[]][] {
  if (reply === null || reply === undefined) return [];
  const streams = Array.isArray(reply) ? reply : [...fieldsOf(reply).entries()];
  const first = streams[0] as [unknown, unknown] | undefined;
  const entries = (first?.[1] ?? []) as [unknown, unknown][];
  return entries
    .filter((entry) => Array.isArray(entry))
    .map(([id, fields]) => [String(id), Array.isArray(fields) ? fields : []]);
}
