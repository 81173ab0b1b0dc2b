-- Atomic all-or-nothing interval booking over several resources (see bookings.py).
--
-- KEYS[1..n]  one sorted set per resource; member "<start>:<end>:<holder>", score = start
-- KEYS[n+1]   hash: resource key -> longest interval ever booked on it (bounds the scan)
-- KEYS[n+2]   fencing counter (only when ARGV[2] is not empty)
-- ARGV[1]     n, the number of items
-- ARGV[2]     fencing token, or "" for none
-- ARGV[3..]   per item: start, end, member
--
-- Replies:
--   {"ok", added}                 every item booked (added = members new this call)
--   {"conflict", index, member}   item `index` (1-based) overlaps `member`; nothing written
--   {"stale", current}            the fencing counter has moved past ARGV[2]; nothing written
--
-- Intervals are half-open [start, end): adjacent bookings do not overlap. The exact same member
-- already present is not a conflict, so a retry after a lost reply is harmless.

local n = tonumber(ARGV[1])
local maxlen_key = KEYS[n + 1]

if ARGV[2] ~= '' then
  local current = tonumber(redis.call('GET', KEYS[n + 2]) or '0')
  if current > tonumber(ARGV[2]) then
    return {'stale', current}
  end
end

local function bounds(member)
  local s, e = string.match(member, '^(%-?%d+):(%-?%d+):')
  return tonumber(s), tonumber(e)
end

local starts, ends, members = {}, {}, {}
for i = 1, n do
  local base = 3 + (i - 1) * 3
  starts[i] = tonumber(ARGV[base])
  ends[i] = tonumber(ARGV[base + 1])
  members[i] = ARGV[base + 2]
end

-- Phase 1: check everything; write nothing until every item is known to fit.
for i = 1, n do
  local s, e, member = starts[i], ends[i], members[i]
  -- Every stored interval is at most `longest` long, so one that ends after s starts after
  -- s - longest: the scan is bounded by the window, not by the resource's whole history.
  local longest = tonumber(redis.call('HGET', maxlen_key, KEYS[i]) or '')
  local low = '-inf'
  if longest then
    low = '(' .. (s - longest)
  end
  local found = redis.call('ZRANGEBYSCORE', KEYS[i], low, '(' .. e)
  for _, other in ipairs(found) do
    if other ~= member then
      local _, oe = bounds(other)
      if oe and oe > s then
        return {'conflict', i, other}
      end
    end
  end
  -- Items of this same request may not overlap each other on one resource either.
  for j = 1, i - 1 do
    if KEYS[j] == KEYS[i] and members[j] ~= member and starts[j] < e and s < ends[j] then
      return {'conflict', i, members[j]}
    end
  end
end

-- Phase 2: book them all.
local added = 0
for i = 1, n do
  added = added + redis.call('ZADD', KEYS[i], starts[i], members[i])
  local len = ends[i] - starts[i]
  local longest = tonumber(redis.call('HGET', maxlen_key, KEYS[i]) or '')
  if not longest or len > longest then
    redis.call('HSET', maxlen_key, KEYS[i], len)
  end
end
return {'ok', added}
