-- The placements of a chunk of draws in one call (see placements.py): each draw (a group of
-- booking items, and the writes that store its placement) is booked all or none, in order,
-- so a later draw of the chunk sees the earlier ones; a draw's writes are made only when all
-- its items are booked, in the same step.
--
-- KEYS[1..n]  one sorted set per item; member "<start>:<end>:<holder>", score = start
-- KEYS[n+1]   hash: resource key -> longest interval ever booked on it (bounds the scan)
-- KEYS[n+2]   fencing counter (only when ARGV[2] is not empty)
-- then        one key per write, in order
-- ARGV[1]     g, the number of draws
-- ARGV[2]     fencing token, or "" for none
-- ARGV[3..2+g]     the number of items of each draw (n is their sum)
-- ARGV[3+g..2+2g]  the number of writes of each draw
-- then        per item: start, end, member; then per write: command (SET, HSET, SADD, RPUSH, LTRIM),
--             the number of its arguments, the arguments (after the key)
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
local write_key = n + 2  -- KEYS index of the next write
if ARGV[2] ~= '' then
  write_key = n + 3
end
local write_arg = 3 + 2 * g + 3 * n  -- ARGV index of the next write
local allowed = {SET = true, HSET = true, SADD = true, RPUSH = true, LTRIM = true}
do  -- every write checked before anything is written: a script error undoes nothing
  local at = write_arg
  while at <= #ARGV do
    if not allowed[ARGV[at]] then
      return redis.error_reply('place.lua: unexpected write ' .. tostring(ARGV[at]))
    end
    at = at + 2 + tonumber(ARGV[at + 1])
  end
end

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
local base = 3 + 2 * g
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
  local writes = tonumber(ARGV[2 + g + d])
  if conflict then
    for _ = 1, writes do  -- skipped: the draw's placement is not stored
      write_arg = write_arg + 2 + tonumber(ARGV[write_arg + 1])
      write_key = write_key + 1
    end
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
    for _ = 1, writes do
      local command, count = ARGV[write_arg], tonumber(ARGV[write_arg + 1])
      redis.call(command, KEYS[write_key], unpack(ARGV, write_arg + 2, write_arg + 1 + count))
      write_arg = write_arg + 2 + count
      write_key = write_key + 1
    end
    replies[#replies + 1] = {'ok', added}
  end
  first = first + count
end
return replies
