-- The bookings of a chunk of draws in one call (see placements.py): each draw (a group of
-- items) is booked all or none, in order, so a later draw of the chunk sees the earlier ones.
--
-- KEYS[1..n]  one sorted set per item; member "<start>:<end>:<holder>", score = start
-- KEYS[n+1]   hash: resource key -> longest interval ever booked on it (bounds the scan)
-- KEYS[n+2]   fencing counter (only when ARGV[2] is not empty)
-- ARGV[1]     g, the number of draws
-- ARGV[2]     fencing token, or "" for none
-- ARGV[3..2+g]  the number of items of each draw (n is their sum)
-- ARGV[3+g..] per item: start, end, member
--
-- Replies:
--   {"stale", current}            the fencing counter has moved past ARGV[2]; nothing written
--   {"ok", r1, ..., rg}           per draw: {"ok", added} or {"conflict", index, member}
--                                 (index 1-based within the draw; that draw wrote nothing)
--
-- The overlap rule is reserve.lua's: half-open [start, end), the exact same member already
-- present is no conflict (a replay after a lost reply books nothing twice).

local g = tonumber(ARGV[1])
local n = 0
for d = 1, g do
  n = n + tonumber(ARGV[2 + d])
end
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

local replies = {'ok'}
local first = 1  -- index of the draw's first item in KEYS
local base = 3 + g
for d = 1, g do
  local count = tonumber(ARGV[2 + d])
  local starts, ends, members = {}, {}, {}
  for i = 1, count do
    local at = base + (first + i - 2) * 3
    starts[i] = tonumber(ARGV[at])
    ends[i] = tonumber(ARGV[at + 1])
    members[i] = ARGV[at + 2]
  end
  local conflict = nil
  for i = 1, count do
    local key = KEYS[first + i - 1]
    local s, e, member = starts[i], ends[i], members[i]
    local longest = tonumber(redis.call('HGET', maxlen_key, key) or '')
    local low = '-inf'
    if longest then
      low = '(' .. (s - longest)
    end
    for _, other in ipairs(redis.call('ZRANGEBYSCORE', key, low, '(' .. e)) do
      if other ~= member then
        local _, oe = bounds(other)
        if oe and oe > s then
          conflict = {'conflict', i, other}
          break
        end
      end
    end
    if conflict then break end
    for j = 1, i - 1 do
      if KEYS[first + j - 1] == key and members[j] ~= member and starts[j] < e
          and s < ends[j] then
        conflict = {'conflict', i, members[j]}
        break
      end
    end
    if conflict then break end
  end
  if conflict then
    replies[#replies + 1] = conflict
  else
    local added = 0
    for i = 1, count do
      local key = KEYS[first + i - 1]
      added = added + redis.call('ZADD', key, starts[i], members[i])
      local len = ends[i] - starts[i]
      local longest = tonumber(redis.call('HGET', maxlen_key, key) or '')
      if not longest or len > longest then
        redis.call('HSET', maxlen_key, key, len)
      end
    end
    replies[#replies + 1] = {'ok', added}
  end
  first = first + count
end
return replies
