import { LuaScript } from './lua-script.js';

/**
 * What every script over a buffer's keys starts with: the keys by name (in the order of
 * `KEY_NAMES`) and the helpers the scripts share. The layout they move records in is described
 * in scripts.ts.
 */
export const PREAMBLE = `
local stream, retry, due, lease, data = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local invalid, lapsed, holders, meta = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
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
local function nextRetry()
  local head = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
  return head[2] or ''
end
-- The group's last-delivered-id in a stream (default: the buffer's), or nil when the stream or
-- the group is missing.
local function lastDelivered(group, key)
  local groups = redis.pcall('XINFO', 'GROUPS', key or stream)
  if groups.err then return nil end
  for _, info in ipairs(groups) do
    local name, last
    for i = 1, #info, 2 do
      if info[i] == 'name' then name = info[i + 1]
      elseif info[i] == 'last-delivered-id' then last = info[i + 1] end
    end
    if name == group then return last end
  end
  return nil
end
-- Creates what is missing: the stream (with a new scope: its ids start over) and the group. A
-- group lost from a stream that survived is created again from the start: what is still in the
-- stream was never acknowledged, so all of it is delivered again, with the same scope.
local function ensure(group, newScope)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    redis.call('HSET', meta, 'scope', newScope)
    return newScope
  end
  redis.pcall('XGROUP', 'CREATE', stream, group, '0')
  redis.call('HSETNX', meta, 'scope', newScope)
  return redis.call('HGET', meta, 'scope')
end
`;

/** A script over a buffer's keys: `body` after the preamble. */
export function script(body: string): LuaScript {
  return new LuaScript(`${PREAMBLE}${body}`);
}
