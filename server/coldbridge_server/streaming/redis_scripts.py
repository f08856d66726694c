"""The Lua scripts of the Redis event store; each touches the keys of one partition only.

A Lua script runs atomically in Redis, so the check-and-append of an event id, an erasure,
and a snapshot are each all-or-nothing and ordered with every other write of the partition.
Stream ids ``ms-seq`` are compared numerically (``lt``).

Retention (:data:`TRIM`) deletes the oldest entries of a stream and their event ids, never
past the stored snapshot's cursor, and records the last deleted id as ``trimmed`` in the
partition's meta; :data:`READ` returns that trim point together with the entries it reads,
so a reader whose cursor is below it knows that entries it never applied are gone.
"""

from __future__ import annotations

__all__ = ["APPEND", "ERASE", "READ", "SNAPSHOT", "TRIM"]

APPEND = """
-- KEYS: log, ids, meta; ARGV: the caller's cursor, then its events in one string (one argument:
-- redis-py packs a command's arguments one by one, slowly), per event
-- '<bytes of event_id> <bytes of user_id> <bytes of payload> ' .. event_id .. user_id ..
-- payload (redis_codec.append_argument).
-- Returns {1 if the stream's last entry before this call is the caller's cursor (nothing
-- it has not applied precedes the new entries) else 0, the new stream id of each event or
-- '' for an event id already logged, joined by ','}. A stream that retention trimmed empty
-- ends at its trim point, not at '0-0': a caller that applied nothing did miss entries.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
last = last[1] and last[1][1] or redis.call('HGET', KEYS[3], 'trimmed') or '0-0'
local follows = 0
if last == ARGV[1] then follows = 1 end
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
-- and from each bundle version's snapshot (meta 'cursor:<version>'; same hash tag, same slot)
for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
  local version = string.match(field, '^cursor:(.*)$')
  if version then redis.call('HDEL', KEYS[3] .. ':' .. version, ARGV[1]) end
end
local sid = redis.call('XADD', KEYS[1], '*', 'x', ARGV[1])
redis.call('HSET', KEYS[4], 'floor', sid)
return {sid, deleted}
"""

_LT = """
local function lt(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
"""

SNAPSHOT = (
    """
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
"""
    + _LT
    + """
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
)

READ = """
-- KEYS: log, meta; ARGV: after (exclusive), end (inclusive, or '+'), count.
-- Returns {trim point or '', entries}: read in one step, so the caller knows whether an
-- entry after ARGV[1] was already deleted by retention (trim point > ARGV[1]).
local trimmed = redis.call('HGET', KEYS[2], 'trimmed') or ''
return {trimmed, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'COUNT', ARGV[3])}
"""

TRIM = (
    """
-- KEYS: log, ids, meta; ARGV: bundle version, keep (newest entries kept; 0 = no limit),
-- max age in ms (0 = none), limit (most entries deleted by this call).
-- Deletes the oldest entries that every stored snapshot covers (the lowest 'cursor:<v>' of
-- the kept bundle versions, and only if this bundle version has one: a replica of either
-- version of a roll-out still starts from its own snapshot) and that are beyond the newest
-- `keep` or older than the max age (stream ids are Redis's ms clock), the event ids that
-- point to them, and records the last deleted id as the partition's trim point. Returns
-- {events deleted (erasure entries not counted), 1 if the limit stopped it else 0}.
"""
    + _LT
    + """
local meta = redis.call('HGETALL', KEYS[3])
local cursor, own = nil, false
for i = 1, #meta, 2 do
  local v = string.match(meta[i], '^cursor:(.*)$')
  if v then
    if v == ARGV[1] then own = true end
    if not cursor or lt(meta[i + 1], cursor) then cursor = meta[i + 1] end
  end
end
if not own then return {0, 0} end
local keep, age, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local excess = 0
if keep > 0 then excess = math.max(redis.call('XLEN', KEYS[1]) - keep, 0) end
local oldest = nil
if age > 0 then
  local t = redis.call('TIME')
  oldest = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age) .. '-0'
end
local entries = redis.call('XRANGE', KEYS[1], '-', cursor, 'COUNT', limit)
-- An entry's event id maps to it while the entry exists (erasure and trimming delete both).
local last, n, eids = nil, 0, {}
for i, entry in ipairs(entries) do
  local sid = entry[1]
  if i > excess and not (oldest and lt(sid, oldest)) then break end
  local f = entry[2]
  for j = 1, #f, 2 do
    if f[j] == 'i' then eids[#eids + 1] = f[j + 1] end
  end
  last, n = sid, i
end
if not last then return {0, 0} end
for i = 1, #eids, 200 do
  redis.call('HDEL', KEYS[2], unpack(eids, i, math.min(i + 199, #eids)))
end
local ms, seq = string.match(last, '^(%d+)-(%d+)$')
redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. tostring(tonumber(seq) + 1))
redis.call('HSET', KEYS[3], 'trimmed', last)
local more = 0
if n == limit then more = 1 end
return {#eids, more}
"""
)
