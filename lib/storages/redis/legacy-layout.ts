import { countLeased, countWaiting } from './buffer-counts.js';
import type { LegacyKeys } from './buffer-keys.js';
import { LuaScript, type RedisClient } from './lua-script.js';
import { PREAMBLE } from './script-preamble.js';

/** What a `LegacyLayout` needs from its storage. */
export interface LegacyLayoutOptions {
  readonly keys: LegacyKeys;
  /** The buffer's keys, in script order. */
  readonly bufferKeys: readonly string[];
  readonly group: string;
  readonly leaseTimeout: number;
  /** Runs one Redis call as the storage does (bounded, errors typed). */
  run<R>(operation: string, call: (client: RedisClient) => Promise<R>): Promise<R>;
  /** Appends serialized records to the buffer's stream, in order, all or none. */
  append(texts: readonly string[]): Promise<unknown>;
  /** A candidate scope, in case moving records creates the stream. */
  newScope(): string;
  /** Runs a script of the storage. */
  script(
    script: LuaScript,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown>;
}

/** Records moved per script call: each call holds Redis up for about this many records. */
const MIGRATE_CAP = 1000;

/**
 * Records that BufIO 0.2.0 left under its key names (`bufio:<name>:stream` … without a hash tag),
 * moved into the buffer's keys. The storage looks at every `recover()` (at start, and on the
 * engine's recovery timer), so that records of 0.2.0 processes still running during a rolling
 * upgrade come over too, once those processes let go of them.
 *
 * On a standalone Redis, the MIGRATE script moves everything (undelivered entries, retries with
 * their time and attempts, due records, and leases that lapsed) in one atomic step per call. On a
 * cluster, 0.2.0 could only append (every other script failed with CROSSSLOT), so only its stream
 * holds records: they are read and appended to the buffer's stream, then deleted, key by key (a
 * crash in between appends them twice, never loses them).
 */
export class LegacyLayout {
  /** Whether 0.2.0's keys held records when last looked at (unknown at first: assume so). */
  private present = true;

  constructor(private readonly options: LegacyLayoutOptions) {}

  /** Moves what 0.2.0 left and nobody holds; returns how many records it made ready. */
  async migrate(cluster: boolean): Promise<number> {
    return cluster ? this.migrateStream() : this.migrateAll();
  }

  /** Records waiting under 0.2.0's keys (stored and not leased). */
  async waiting(cluster: boolean): Promise<number> {
    if (!this.present) return 0;
    const { keys, group } = this.options;
    if (cluster) return this.options.run('size', (client) => client.xlen(keys.stream));
    return countWaiting(this.options.run, keys, group);
  }

  /** Records 0.2.0 processes hold leased. */
  async leased(cluster: boolean): Promise<number> {
    if (!this.present || cluster) return 0;
    const { keys, group } = this.options;
    return countLeased(this.options.run, keys, group);
  }

  private async migrateAll(): Promise<number> {
    const { keys, bufferKeys, group, leaseTimeout } = this.options;
    const legacy = [keys.stream, keys.retry, keys.due, keys.lease, keys.data];
    let ready = 0;
    for (;;) {
      const [moved, madeReady, left] = (await this.options.script(
        MIGRATE,
        [...bufferKeys, ...legacy],
        [group, leaseTimeout, MIGRATE_CAP, this.options.newScope()],
      )) as [number, number, number];
      ready += Number(madeReady);
      this.present = Number(left) > 0;
      if (Number(moved) < MIGRATE_CAP) return ready;
    }
  }

  private async migrateStream(): Promise<number> {
    const { stream } = this.options.keys;
    let moved = 0;
    for (;;) {
      const entries = await this.options.run('recover', (client) =>
        client.xrange(stream, '-', '+', 'COUNT', MIGRATE_CAP),
      );
      if (entries.length === 0) {
        this.present = false;
        return moved;
      }
      await this.options.append(entries.map(([, fields]) => payloadOf(fields)));
      const ids = entries.map(([id]) => id);
      await this.options.run('recover', (client) => client.xdel(stream, ...ids));
      moved += entries.length;
    }
  }
}

/** The record's payload in a stream entry's fields (`d`), or '' when it has none. */
export function payloadOf(fields: readonly unknown[]): string {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (String(fields[i]) === 'd') return String(fields[i + 1]);
  }
  return '';
}

/**
 * KEYS: the buffer's keys, then 0.2.0's keys of it (stream, retry, due, lease, data), on a Redis
 * that is not a cluster. ARGV: group, leaseMs, cap, newScope.
 *
 * Moves up to about cap records that 0.2.0 left under its key names into this layout, each with a
 * new id of this stream (ids of two streams may collide): its attempts kept, a retry keeping its
 * visibleAt, a lease that lapsed counted in `lapsed`. Records a 0.2.0 process still holds (its PEL
 * entries or leases not expired) stay until it acks them or its lease lapses. Returns how many
 * moved, how many of them are ready (not retries waiting), and 1 if 0.2.0's keys still hold
 * something.
 */
const MIGRATE = new LuaScript(`${PREAMBLE}
local oldStream, oldRetry, oldDue, oldLease, oldData = KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local group, leaseMs, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', oldStream, oldRetry, oldDue, oldLease, oldData) == 0 then return { 0, 0, 0 } end
ensure(group, ARGV[4])
local n, ready = 0, 0
local function move(v, lapses, visibleAt)
  local attempts, payload = splitRecord(v)
  local id = redis.call('XADD', stream, '*', 'd', '')
  redis.call('XDEL', stream, id)
  redis.call('HSET', data, id, attempts .. ':' .. payload)
  if lapses > 0 then redis.call('HSET', lapsed, id, lapses) end
  if visibleAt then
    redis.call('ZADD', retry, visibleAt, id)
  else
    redis.call('ZADD', due, 0, dueKey(id))
    ready = ready + 1
  end
  n = n + 1
end
local function moveHeld(id, lapses, visibleAt)
  local v = redis.call('HGET', oldData, id)
  if v then move(v, lapses, visibleAt) end
  redis.call('HDEL', oldData, id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', oldLease, '-inf', serverNow(), 'LIMIT', 0, cap)) do
  moveHeld(id, 1)
  redis.call('ZREM', oldLease, id)
end
if n < cap then
  for _, key in ipairs(redis.call('ZRANGE', oldDue, 0, cap - n - 1)) do
    moveHeld(idOf(key), 0)
    redis.call('ZREM', oldDue, key)
  end
end
if n < cap then
  local retries = redis.call('ZRANGE', oldRetry, 0, cap - n - 1, 'WITHSCORES')
  for i = 1, #retries, 2 do
    moveHeld(retries[i], 0, retries[i + 1])
    redis.call('ZREM', oldRetry, retries[i])
  end
end
if n < cap and redis.call('EXISTS', oldStream) == 1 then
  local last = lastDelivered(group, oldStream)
  if last then
    for _, p in ipairs(redis.call('XPENDING', oldStream, group, 'IDLE', leaseMs, '-', '+', cap - n)) do
      local entry = redis.call('XRANGE', oldStream, p[1], p[1])
      if #entry > 0 then move('0:' .. payloadOf(entry[1][2]), p[4]) end
      redis.call('XACK', oldStream, group, p[1])
      redis.call('XDEL', oldStream, p[1])
    end
  end
  if n < cap then
    for _, entry in ipairs(redis.call('XRANGE', oldStream, last and ('(' .. last) or '-', '+', 'COUNT', cap - n)) do
      move('0:' .. payloadOf(entry[2]), 0)
      redis.call('XDEL', oldStream, entry[1])
    end
  end
  local pending = last and redis.call('XPENDING', oldStream, group)[1] or 0
  if redis.call('XLEN', oldStream) == 0 and pending == 0 then redis.call('DEL', oldStream) end
end
return { n, ready, redis.call('EXISTS', oldStream, oldRetry, oldDue, oldLease, oldData) > 0 and 1 or 0 }
`);
