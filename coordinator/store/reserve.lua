-- Atomic all-or-nothing interval booking over several resources (see bookings.py); the
-- overlap rule is overlap.lua's, registered ahead of this text.
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

local n = tonumber(ARGV[1])
local maxlen_key = KEYS[n + 1]

if ARGV[2] ~= '' then
  local current = tonumber(redis.call('GET', KEYS[n + 2]) or '0')
  if current > tonumber(ARGV[2]) then
    return {'stale', current}
  end
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
  local other = booked_overlap(maxlen_key, KEYS[i], starts[i], ends[i], members[i])
      or request_overlap(KEYS, 0, starts, ends, members, i)
  if other then
    return {'conflict', i, other}
  end
end

-- Phase 2: book them all.
local added = 0
for i = 1, n do
  added = added + book_interval(maxlen_key, KEYS[i], starts[i], ends[i], members[i])
end
return {'ok', added}
