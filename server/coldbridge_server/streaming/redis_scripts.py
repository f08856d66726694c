"""The Lua scripts of the Redis event store; each touches the keys of one partition only.

A Lua script runs atomically in Redis, so the check-and-append of an event id, an erasure,
and a snapshot are each all-or-nothing and ordered with every other write of the partition.
Stream ids ``ms-seq`` are compared numerically (``lt``).
"""

from __future__ import annotations

__all__ = ["APPEND", "ERASE", "SNAPSHOT"]

APPEND = """
-- KEYS: log, ids; ARGV: (event_id, user_id, payload) per event.
-- Returns per event its new stream id, or '' for an event id already logged.
local out = {}
for i = 1, #ARGV, 3 do
  local eid = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], eid) == 1 then
    out[#out + 1] = ''
  else
    local sid = redis.call('XADD', KEYS[1], '*', 'u', ARGV[i + 1], 'i', eid, 'e', ARGV[i + 2])
    redis.call('HSET', KEYS[2], eid, sid)
    out[#out + 1] = sid
  end
end
return out
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
-- and from each bundle version's snapshot (meta 'cursor:<version>'; same hash tag, same slot)
for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
  local version = string.match(field, '^cursor:(.*)$')
  if version then redis.call('HDEL', KEYS[3] .. ':' .. version, ARGV[1]) end
end
local sid = redis.call('XADD', KEYS[1], '*', 'x', ARGV[1])
redis.call('HSET', KEYS[4], 'floor', sid)
return {sid, deleted}
"""

SNAPSHOT = """
-- KEYS: the version's snap hash, meta, the partition's snap key (prefix of every version's);
-- ARGV: cursor, bundle version, mode ('full' | 'inc'), base cursor, keep (versions whose
-- snapshots are kept), then (user_id, state blob) pairs.
-- Each bundle version has its own snapshot: snap key '<snap>:<version>', meta fields
-- 'cursor:<version>' and 'written:<version>' (order of the last write); 'cursor' and
-- 'version' name the snapshot written last. A full write drops the snapshots of all but the
-- `keep` most recently written versions.
-- Returns 'ok', 'skip' (a snapshot of this version at this cursor or later is stored),
-- 'stale' (older than the last erasure) or 'full' (an incremental write does not apply to
-- the stored snapshot of this version: write all users instead).
local function lt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local version = ARGV[2]
local m = redis.call('HMGET', KEYS[2], 'cursor:' .. version, 'floor')
local cursor, floor = m[1], m[2]
if floor and lt(ARGV[1], floor) then return 'stale' end
if cursor and not lt(cursor, ARGV[1]) then return 'skip' end
if ARGV[3] == 'inc' and not (cursor and not lt(cursor, ARGV[4])) then return 'full' end
if ARGV[3] == 'full' then redis.call('DEL', KEYS[1]) end
for i = 6, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
local n = redis.call('HINCRBY', KEYS[2], 'writes', 1)
redis.call('HSET', KEYS[2], 'cursor:' .. version, ARGV[1], 'written:' .. version, n,
  'cursor', ARGV[1], 'version', version)
if ARGV[3] == 'full' then
  local written = {}
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    local v = string.match(field, '^written:(.*)$')
    if v then written[#written + 1] = {v, tonumber(redis.call('HGET', KEYS[2], field))} end
  end
  table.sort(written, function(a, b) return a[2] > b[2] end)
  for i = tonumber(ARGV[5]) + 1, #written do
    local v = written[i][1]
    redis.call('DEL', KEYS[3] .. ':' .. v)
    redis.call('HDEL', KEYS[2], 'cursor:' .. v, 'written:' .. v)
  end
end
return 'ok'
"""
