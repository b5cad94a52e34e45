import { LuaScript } from './lua-script.js';

/*
 * The Lua scripts behind RedisStorage. Each runs atomically in Redis, so a record is always in
 * exactly one of these places, and a crash between two calls can never leave it nowhere:
 *
 *   stream  fresh records (XADD), each leased to one consumer of the group while in its PEL
 *   retry   released records waiting out their delay: sorted set, id -> visibleAt (engine clock)
 *   due     retried or recovered records ready again: sorted set of padded ids, all scored 0, so
 *           that they sort in append order and come out before fresh records
 *   lease   retried records leased to a consumer: sorted set, id -> lease expiry (Redis clock)
 *   data    payloads of records no longer in the stream: hash, id -> '<attempts>:<payload>'
 *   invalid payloads that could not be deserialized, set aside: hash, id -> payload
 *
 * Every key a script touches is passed in KEYS (never built in Lua), so a client's `keyPrefix`
 * applies to all of them. Ids are stream ids (`<ms>-<seq>`) and keep their order for good.
 */

/** The keys every script receives, in this order. */
export const KEY_NAMES = ['stream', 'retry', 'due', 'lease', 'data', 'invalid'] as const;

const PREAMBLE = `
local stream, retry, due, lease, data, invalid = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function pad(digits) return string.rep('0', 20 - #digits) .. digits end
local function dueKey(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return pad(ms) .. '-' .. pad(seq)
end
local function idOf(key)
  local ms, seq = string.match(key, '^0*(%d+)-0*(%d+)$')
  return ms .. '-' .. seq
end
local function serverNow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function splitRecord(v)
  local i = string.find(v, ':', 1, true)
  return tonumber(string.sub(v, 1, i - 1)), string.sub(v, i + 1)
end
local function payloadOf(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then return fields[i + 1] end
  end
  return ''
end
`;

/** ARGV: payloads. Appends them in order; returns their ids. One call, so all or none are stored. */
export const APPEND_MANY = `
local ids = {}
for i = 1, #ARGV do ids[i] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i]) end
return ids
`;

/**
 * ARGV: group, consumer, limit, now, maxBytes ('' for none), leaseMs, promoteCap.
 * Returns a flat list: id, attempts, payload, id, attempts, payload, ...
 */
export const RESERVE = new LuaScript(`${PREAMBLE}
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
      out[#out + 1] = id
      out[#out + 1] = attempts
      out[#out + 1] = payload
    end
    redis.call('ZREM', due, key)
  end
end

local room = limit - counted
if full or room <= 0 or redis.call('EXISTS', stream) == 0 then return out end

local last = nil
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, delivered
  for i = 1, #info, 2 do
    if info[i] == 'name' then name = info[i + 1] elseif info[i] == 'last-delivered-id' then delivered = info[i + 1] end
  end
  if name == group then last = delivered end
end
if last == nil then
  -- No group (first use, or lost with a Redis that restarted without persistence): whatever is
  -- in the stream was never acknowledged, so deliver all of it.
  redis.call('XGROUP', 'CREATE', stream, group, '0')
  last = '0-0'
end

if maxBytes ~= nil then
  -- Look before reading: an entry read by the group is leased, and cannot be put back.
  local n = 0
  for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', room)) do
    if not fits(#payloadOf(entry[2])) then break end
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
      out[#out + 1] = payloadOf(entry[2])
    end
  end
end
return out
`);

/** ARGV: group, ids... Removes the records wherever they are. Returns how many ids it was given. */
export const ACK = new LuaScript(`${PREAMBLE}
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
end
return #ARGV - 1
`);

/**
 * ARGV: group, visibleAt, ids... Moves leased records to `retry` with one more attempt. A record
 * no longer leased (its lease expired and it was recovered) is left where it is. Returns how many
 * moved.
 */
export const RELEASE = new LuaScript(`${PREAMBLE}
local group, visibleAt = ARGV[1], ARGV[2]
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HGET', data, id)
  if v then
    if redis.call('ZREM', lease, id) == 1 then
      local attempts, payload = splitRecord(v)
      redis.call('HSET', data, id, (attempts + 1) .. ':' .. payload)
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
 * ARGV: group, consumer, leaseMs, ids... Extends this consumer's leases: a retried record's expiry
 * moves on; a stream entry is claimed again with no minimum idle time, which resets its idle time
 * (entries acknowledged meanwhile are no longer pending and are skipped).
 */
export const RENEW = new LuaScript(`${PREAMBLE}
local group, consumer = ARGV[1], ARGV[2]
local expiry = serverNow() + tonumber(ARGV[3])
local claim = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', lease, id) then
    redis.call('ZADD', lease, expiry, id)
  else
    claim[#claim + 1] = id
  end
end
if #claim > 0 and redis.call('EXISTS', stream) == 1 then
  for from = 1, #claim, 100 do
    local chunk = {}
    for j = from, math.min(from + 99, #claim) do chunk[#chunk + 1] = claim[j] end
    chunk[#chunk + 1] = 'JUSTID'
    redis.pcall('XCLAIM', stream, group, consumer, 0, unpack(chunk))
  end
end
return #ARGV - 3
`);

/**
 * ARGV: group, consumer, leaseMs, cap. Makes records whose lease expired visible again, in `due`,
 * with their attempt count: retried records whose lease expiry passed, and stream entries idle in
 * the PEL for at least leaseMs (XAUTOCLAIM). Then forgets consumers that hold nothing and have
 * been idle that long (each restart brings a new consumer name). Returns how many records.
 */
export const RECOVER = new LuaScript(`${PREAMBLE}
local group, consumer = ARGV[1], ARGV[2]
local leaseMs, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', lease, '-inf', serverNow(), 'LIMIT', 0, cap)) do
  redis.call('ZREM', lease, id)
  redis.call('ZADD', due, 0, dueKey(id))
  n = n + 1
end
if redis.call('EXISTS', stream) == 0 then return n end
local cursor = '0-0'
repeat
  if n >= cap then break end
  local reply = redis.pcall('XAUTOCLAIM', stream, group, consumer, leaseMs, cursor, 'COUNT', cap - n)
  if reply.err then break end
  cursor = reply[1]
  for _, entry in ipairs(reply[2]) do
    if entry and entry[2] then
      local id = entry[1]
      redis.call('XACK', stream, group, id)
      redis.call('XDEL', stream, id)
      redis.call('HSET', data, id, '0:' .. payloadOf(entry[2]))
      redis.call('ZADD', due, 0, dueKey(id))
      n = n + 1
    end
  end
until cursor == '0-0'
local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, group)
if not consumers.err then
  for _, info in ipairs(consumers) do
    local name, pending, idle
    for i = 1, #info, 2 do
      if info[i] == 'name' then name = info[i + 1]
      elseif info[i] == 'pending' then pending = info[i + 1]
      elseif info[i] == 'idle' then idle = info[i + 1] end
    end
    if name ~= consumer and pending == 0 and idle ~= nil and idle > leaseMs then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    end
  end
end
return n
`);

/** ARGV: group. Records stored and not leased: undelivered stream entries, retries, due records. */
export const SIZE = new LuaScript(`${PREAMBLE}
local n = redis.call('XLEN', stream)
if n > 0 then
  local summary = redis.pcall('XPENDING', stream, ARGV[1])
  if not summary.err then n = n - summary[1] end
end
return n + redis.call('ZCARD', retry) + redis.call('ZCARD', due)
`);

/** ARGV: group, id, payload. Sets a record that cannot be deserialized aside, out of the buffer. */
export const BURY = new LuaScript(`${PREAMBLE}
local group, id = ARGV[1], ARGV[2]
redis.pcall('XACK', stream, group, id)
redis.call('XDEL', stream, id)
redis.call('ZREM', lease, id)
redis.call('ZREM', retry, id)
redis.call('ZREM', due, dueKey(id))
redis.call('HDEL', data, id)
redis.call('HSET', invalid, id, ARGV[3])
return 1
`);
