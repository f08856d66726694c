"""The Lua scripts of the Redis event store; each touches the keys of one partition only.

A Lua script runs atomically in Redis, so the check-and-append of an event id, an erasure,
and a snapshot are each all-or-nothing and ordered with every other write of the partition.
Stream ids ``ms-seq`` are compared numerically (``lt``).
"""

from __future__ import annotations

__all__ = ["APPEND", "ERASE", "SNAPSHOT"]

APPEND = """
-- KEYS: log, ids; ARGV: the caller's cursor, then its events in one string (one argument:
-- redis-py packs a command's arguments one by one, slowly), per event
-- '<bytes of event_id> <bytes of user_id> <bytes of payload> ' .. event_id .. user_id ..
-- payload (redis_codec.append_argument).
-- Returns {1 if the stream's last entry before this call is the caller's cursor (nothing
-- it has not applied precedes the new entries) else 0, the new stream id of each event or
-- '' for an event id already logged, joined by ','}.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local follows = 0
if (last[1] and last[1][1] or '0-0') == ARGV[1] then follows = 1 end
local s, at, events, out = ARGV[2], 1, {}, {}
while at <= #s do  -- parse all first: a malformed argument fails before any write
  local _, stop, ne, nu, np = string.find(s, '^(%d+) (%d+) (%d+) ', at)
  ne, nu, np = tonumber(ne), tonumber(nu), tonumber(np)
  at = stop + ne + nu + np + 1
  events[#events + 1] = {string.sub(s, stop + 1, stop + ne),
    string.sub(s, stop + ne + 1, stop + ne + nu), string.sub(s, stop + ne + nu + 1, at - 1)}
end
for _, ev in ipairs(events) do
  if redis.call('HEXISTS', KEYS[2], ev[1]) == 1 then
    out[#out + 1] = ''
  else
    local sid = redis.call('XADD', KEYS[1], '*', 'u', ev[2], 'i', ev[1], 'e', ev[3])
    redis.call('HSET', KEYS[2], ev[1], sid)
    out[#out + 1] = sid
  end
end
return {follows, table.concat(out, ',')}
"""

ERASE = """
-- KEYS: log, ids, snap, meta; ARGV: user_id.
-- Deletes the user's entries, ids and snapshot state, then appends an erasure entry (so
-- every follower forgets the user at that point of the order) and makes it the snapshot
-- floor. Returns {erasure stream id, deleted event ids}.
local deleted = {}
local start = '-'
while true do
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local f = entry[2]
    local user, eid = nil, nil
    for j = 1, #f, 2 do
      if f[j] == 'u' then user = f[j + 1] elseif f[j] == 'i' then eid = f[j + 1] end
    end
    if user == ARGV[1] then
      redis.call('XDEL', KEYS[1], entry[1])
      redis.call('HDEL', KEYS[2], eid)
      deleted[#deleted + 1] = eid
    end
  end
  start = '(' .. entries[#entries][1]
end
redis.call('HDEL', KEYS[3], ARGV[1])
local sid = redis.call('XADD', KEYS[1], '*', 'x', ARGV[1])
redis.call('HSET', KEYS[4], 'floor', sid)
return {sid, deleted}
"""

SNAPSHOT = """
-- KEYS: snap, meta; ARGV: cursor, bundle version, mode ('full' | 'inc'), base cursor,
-- then (user_id, state blob) pairs. Returns 'ok', 'skip' (a snapshot of this version at
-- this cursor or later is stored), 'stale' (older than the last erasure) or 'full' (an
-- incremental write does not apply to the stored snapshot: write all users instead).
local function lt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local m = redis.call('HMGET', KEYS[2], 'cursor', 'version', 'floor')
local cursor, version, floor = m[1], m[2], m[3]
if floor and lt(ARGV[1], floor) then return 'stale' end
local same = cursor and version == ARGV[2]
if same and not lt(cursor, ARGV[1]) then return 'skip' end
if ARGV[3] == 'inc' and not (same and not lt(cursor, ARGV[4])) then return 'full' end
if ARGV[3] == 'full' then redis.call('DEL', KEYS[1]) end
for i = 5, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
redis.call('HSET', KEYS[2], 'cursor', ARGV[1], 'version', ARGV[2])
return 'ok'
"""
