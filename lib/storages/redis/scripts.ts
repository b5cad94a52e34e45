import { LuaScript } from './lua-script.js';
import { script } from './script-preamble.js';

/*
 * The layout of a buffer in Redis, and the Lua scripts that move records in it.
 *
 * KEYS. Every key is `<prefix>:<part>` and carries one hash tag (`bufio:{events}:stream`), so that
 * a buffer lives in one hash slot, on one node of a Redis Cluster (see `buffer-keys.ts`):
 *
 *   stream   fresh records: a stream, one entry per record, the payload in field `d`. The consumer
 *            group `group` leases them: an entry read by a consumer is in the group's pending
 *            entries list (PEL) until it is acknowledged, released, recovered or set aside.
 *   retry    released records waiting out their delay: sorted set, id -> visibleAt (engine clock)
 *   due      retried or recovered records ready again: sorted set of ids zero-padded to sort in
 *            append order (all scored 0); they come out before fresh records
 *   lease    leased records from `due`: sorted set, id -> lease expiry (Redis clock)
 *   holders  who holds each lease in `lease`: hash, id -> consumer
 *   data     payloads of records no longer in the stream: hash, id -> '<attempts>:<payload>'
 *   lapsed   leases of a record that ended without ack or release (its holder died): hash, id -> n
 *   invalid  records that could not be read back, set aside: hash, id -> payload
 *   meta     `scope`: a random token, new whenever the stream is created (see below)
 *
 * A record is always in exactly one place: undelivered or pending in `stream`, or in `data` and in
 * exactly one of `retry`, `due` and `lease`, or in `invalid`; every move is one script, so that a
 * crash between two calls cannot leave it nowhere.
 *
 * IDS. A record's id is its stream entry id (`<ms>-<seq>`) for good, also once it moved to `data`.
 * Redis never issues an id twice in one stream, but a stream deleted and created again starts over
 * from the clock, and could (within a millisecond, or after the clock went back) issue an id again.
 * So the stream is only ever created by ENSURE (appends use `XADD NOMKSTREAM`), and creating it
 * draws a new `scope`, read with every reserve (in the same transaction as the read): the
 * storage's `idScope` is `redis:<scope>`, and `${idScope}:${id}` never names two records.
 *
 * COMMON PATH, without Lua per record:
 *   append   APPEND: a loop of `XADD` (one call per tick of appends, up to 1000 records)
 *   reserve  MULTI / HGET meta scope / XREADGROUP COUNT n / EXEC; 1 delivery, 0 attempts
 *   ack      XACK, then TRIM: `XTRIM MINID` up to the oldest entry still pending (or not yet read
 *            by the group); everything below it has been acknowledged. Freeing whole stream nodes,
 *            this costs next to nothing per record where `XDEL` would search a node per id. Acks
 *            that complete out of order (a later batch first) are below no such bound: their ids
 *            get an `XDEL` in a second round trip.
 * A reserve runs TAKE first only when records may wait in `retry` or `due` (the client learns it
 * from its own releases and from the replies of TAKE and RECOVER), or with a byte cap (`maxBytes`),
 * which must look at entries before the group reads them.
 *
 * DELIVERIES. A stream entry is read once (its PEL delivery count is 1; lease renewal uses
 * `XCLAIM … JUSTID`, which does not count), so a fresh record has 1 delivery. Once in `data`, a
 * record's deliveries are `attempts + lapsed + 1`: a release adds an attempt; a lease that ended
 * without ack or release (found by RECOVER: a PEL entry idle for `leaseTimeout`, a `lease` expiry
 * passed, or a holder proven dead) adds its deliveries to `lapsed`.
 *
 * Every key a script touches is passed in KEYS (never built in Lua), so that a client's `keyPrefix`
 * applies to all of them, and Redis Cluster can check that they share a slot.
 */

/** ARGV: group, newScope. Creates the stream and the group if missing; returns the scope. */
export const ENSURE = script(`
return ensure(ARGV[1], ARGV[2])
`);

/**
 * KEYS: the stream alone. ARGV: payloads. Appends them in order and returns their ids; one call, so
 * all or none are stored. A missing stream is not created here (ENSURE does it, drawing a new
 * scope): the reply is then a NOSTREAM error, and nothing was stored.
 */
export const APPEND = new LuaScript(`
local first = redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'd', ARGV[1])
if not first then return redis.error_reply('NOSTREAM the stream is missing') end
local ids = { first }
for i = 2, #ARGV do ids[i] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end
return ids
`);

/**
 * ARGV: group, consumer, limit, now, maxBytes ('' for none), leaseMs, promoteCap, fresh ('1' to
 * read fresh records here too: with maxBytes), newScope.
 *
 * Moves retries whose visibleAt has come to `due`, then leases up to `limit` records from `due`
 * (and, with `fresh`, from the stream: looked at before they are read, so that none is leased
 * beyond `maxBytes`). Returns scope, records left in `due`, the next retry time ('' for none),
 * whether `maxBytes` stopped it (1 or 0), then per record: id, attempts, lapsed, source ('h' from
 * `data`, 's' from the stream), payload.
 */
export const TAKE = script(`
local group, consumer = ARGV[1], ARGV[2]
local limit, maxBytes, leaseMs = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out, counted, bytes = {}, 0, 0
-- The first record is always taken, so that an oversized one cannot block the buffer.
local function fits(size)
  if maxBytes ~= nil and counted > 0 and bytes + size > maxBytes then return false end
  bytes = bytes + size
  counted = counted + 1
  return true
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', retry, '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[7]))) do
  redis.call('ZREM', retry, id)
  redis.call('ZADD', due, 0, dueKey(id))
end

local full = false
if redis.call('EXISTS', due) == 1 then
  local expiry = serverNow() + leaseMs
  for _, key in ipairs(redis.call('ZRANGE', due, 0, limit - 1)) do
    local id = idOf(key)
    local v = redis.call('HGET', data, id)
    if v then
      local attempts, payload = splitRecord(v)
      if not fits(#payload) then
        full = true
        break
      end
      redis.call('ZADD', lease, expiry, id)
      redis.call('HSET', holders, id, consumer)
      out[#out + 1] = id
      out[#out + 1] = attempts
      out[#out + 1] = tonumber(redis.call('HGET', lapsed, id)) or 0
      out[#out + 1] = 'h'
      out[#out + 1] = payload
    end
    redis.call('ZREM', due, key)
  end
end

local scope = redis.call('HGET', meta, 'scope')
local room = limit - counted
if ARGV[8] == '1' and not full and room > 0 then
  local last = lastDelivered(group)
  if last == nil then
    scope = ensure(group, ARGV[9])
    last = lastDelivered(group)
  end
  if maxBytes ~= nil then
    -- Look before reading: an entry read by the group is leased, and cannot be put back.
    local n = 0
    for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', room)) do
      if not fits(#payloadOf(entry[2])) then
        full = true
        break
      end
      n = n + 1
    end
    room = n
  end
  if room > 0 then
    local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room, 'STREAMS', stream, '>')
    if reply then
      for _, entry in ipairs(reply[1][2]) do
        out[#out + 1] = entry[1]
        out[#out + 1] = 0
        out[#out + 1] = 0
        out[#out + 1] = 's'
        out[#out + 1] = payloadOf(entry[2])
      end
    end
  end
end
if not scope then scope = ensure(group, ARGV[9]) end
local header = { scope, redis.call('ZCARD', due), nextRetry(), full and 1 or 0 }
for i = 1, #out do header[#header + 1] = out[i] end
return header
`);

/**
 * ARGV: group. After an `XACK`: trims the stream below the oldest entry the group still needs (the
 * oldest pending entry, or the first one it has not read), and returns that bound; everything
 * below it has been acknowledged. Returns '' when the group is missing.
 */
export const TRIM = script(`
local group = ARGV[1]
local last = lastDelivered(group)
if last == nil then return '' end
local summary = redis.call('XPENDING', stream, group)
local floor
if summary[1] > 0 then
  floor = summary[2]
else
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  floor = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
redis.call('XTRIM', stream, 'MINID', floor)
return floor
`);

/**
 * ARGV: group, ids... Removes the records wherever they are (the stream, `retry`, `due`, `lease`),
 * for acks that the fast path cannot make: records from `due`, or stream records recovered by
 * another instance after this one's lease lapsed. Returns how many ids it was given.
 */
export const ACK = script(`
local group = ARGV[1]
for from = 2, #ARGV, 500 do
  local ids, dueKeys = {}, {}
  for i = from, math.min(from + 499, #ARGV) do
    ids[#ids + 1] = ARGV[i]
    dueKeys[#dueKeys + 1] = dueKey(ARGV[i])
  end
  redis.pcall('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
  redis.call('ZREM', lease, unpack(ids))
  redis.call('ZREM', retry, unpack(ids))
  redis.call('ZREM', due, unpack(dueKeys))
  redis.call('HDEL', data, unpack(ids))
  redis.call('HDEL', holders, unpack(ids))
  redis.call('HDEL', lapsed, unpack(ids))
end
return #ARGV - 1
`);

/**
 * ARGV: group, consumer, visibleAt, ids... Moves records leased by `consumer` to `retry` with one
 * more attempt. A record no longer leased by it (its lease lapsed, and it was recovered) is left
 * where it is. Returns how many moved.
 */
export const RELEASE = script(`
local group, consumer, visibleAt = ARGV[1], ARGV[2], ARGV[3]
local n = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HGET', data, id)
  if v then
    local holder = redis.call('HGET', holders, id)
    if (holder == false or holder == consumer) and redis.call('ZREM', lease, id) == 1 then
      local attempts, payload = splitRecord(v)
      redis.call('HSET', data, id, (attempts + 1) .. ':' .. payload)
      redis.call('HDEL', holders, id)
      redis.call('ZADD', retry, visibleAt, id)
      n = n + 1
    end
  else
    local entry = redis.call('XRANGE', stream, id, id)
    if #entry > 0 then
      redis.pcall('XACK', stream, group, id)
      redis.call('XDEL', stream, id)
      redis.call('HSET', data, id, '1:' .. payloadOf(entry[1][2]))
      redis.call('ZADD', retry, visibleAt, id)
      n = n + 1
    end
  end
end
return n
`);

/**
 * ARGV: consumer, leaseMs, ids... Extends the leases `consumer` holds on records from `due` (stream
 * entries are renewed with a plain `XCLAIM … JUSTID`). Returns how many it extended.
 */
export const RENEW = script(`
local consumer = ARGV[1]
local expiry = serverNow() + tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', holders, id) == consumer then
    redis.call('ZADD', lease, 'XX', expiry, id)
    n = n + 1
  end
end
return n
`);

/**
 * ARGV: group, consumer, leaseMs, cap, dead consumers... Makes records whose lease ended without ack
 * or release visible again, in `due`, counting that lease in `lapsed`: leases from `due` whose
 * expiry passed, PEL entries idle for at least leaseMs, and everything held by the dead consumers
 * named (a restart under the same name, a process proven gone). Forgets consumers of the group
 * that hold nothing and have been idle that long, and the dead ones. Returns how many records (at
 * most about cap), records in `due`, the next retry time ('' for none), then the names of the
 * consumers of the group and of the holders of leases from `due`.
 */
export const RECOVER = script(`
local group, consumer = ARGV[1], ARGV[2]
local leaseMs, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local dead, anyDead = {}, false
for i = 5, #ARGV do
  dead[ARGV[i]] = true
  anyDead = true
end
local n = 0
local function toDue(id, lapses)
  redis.call('ZADD', due, 0, dueKey(id))
  redis.call('HINCRBY', lapsed, id, lapses)
  n = n + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', lease, '-inf', serverNow(), 'LIMIT', 0, cap)) do
  redis.call('ZREM', lease, id)
  redis.call('HDEL', holders, id)
  toDue(id, 1)
end
local holding = redis.call('HGETALL', holders)
local names, seen = {}, {}
for i = 1, #holding, 2 do
  local id, holder = holding[i], holding[i + 1]
  if dead[holder] then
    if redis.call('ZREM', lease, id) == 1 then toDue(id, 1) end
    redis.call('HDEL', holders, id)
  elseif not seen[holder] then
    seen[holder] = true
    names[#names + 1] = holder
  end
end
local function fromStream(pending)
  if pending.err then return end
  for _, p in ipairs(pending) do
    local id = p[1]
    local entry = redis.call('XRANGE', stream, id, id)
    if #entry > 0 then
      redis.call('HSET', data, id, '0:' .. payloadOf(entry[1][2]))
      toDue(id, p[4])
    end
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
  end
end
if redis.call('EXISTS', stream) == 1 then
  if n < cap then
    fromStream(redis.pcall('XPENDING', stream, group, 'IDLE', leaseMs, '-', '+', cap - n))
  end
  if anyDead then
    for name in pairs(dead) do
      fromStream(redis.pcall('XPENDING', stream, group, '-', '+', cap, name))
    end
  end
  local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, group)
  if not consumers.err then
    for _, info in ipairs(consumers) do
      local name, pending, idle
      for i = 1, #info, 2 do
        if info[i] == 'name' then name = info[i + 1]
        elseif info[i] == 'pending' then pending = info[i + 1]
        elseif info[i] == 'idle' then idle = info[i + 1] end
      end
      if name ~= consumer and pending == 0 and (dead[name] or (idle ~= nil and idle > leaseMs)) then
        redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
      elseif not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
end
local reply = { n, redis.call('ZCARD', due), nextRetry() }
for i = 1, #names do reply[#reply + 1] = names[i] end
return reply
`);

/**
 * ARGV: group, then id and payload of each record that could not be read back. Sets them aside in
 * `invalid`, out of the buffer (wherever they were). Returns how many.
 */
export const SET_ASIDE = script(`
local group = ARGV[1]
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  redis.pcall('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('ZREM', lease, id)
  redis.call('ZREM', retry, id)
  redis.call('ZREM', due, dueKey(id))
  redis.call('HDEL', data, id)
  redis.call('HDEL', holders, id)
  redis.call('HDEL', lapsed, id)
  redis.call('HSET', invalid, id, ARGV[i + 1])
end
return (#ARGV - 1) / 2
`);
