-- The overlap rule of interval bookings, one copy for reserve.lua and place.lua: bookings.py
-- puts this text ahead of each script when it registers it (lua_scripts.py).
--
-- Members are "<start>:<end>:<holder>", scored by start, one sorted set per resource; the
-- hash `maxlen_key` keeps, per resource key, the longest interval ever booked on it.
-- Intervals are half-open [start, end): adjacent bookings do not overlap. The exact same
-- member already present is not a conflict, so a replay after a lost reply books nothing twice.

local function interval_end(member)
  local _, e = string.match(member, '^(%-?%d+):(%-?%d+):')
  return tonumber(e)
end

-- The longest interval booked on `key`, or nil; read once per key and script run (a run
-- checks a key, then books it: one HGET, not two), kept current by `book_interval`.
local longest_seen = {}
local function longest_of(maxlen_key, key)
  local found = longest_seen[key]
  if found == nil then
    found = tonumber(redis.call('HGET', maxlen_key, key) or '') or false
    longest_seen[key] = found
  end
  return found or nil
end

-- The member booked on `key` that [s, e) overlaps, or nil. Every stored interval is at most
-- `longest` long, so one that ends after s starts after s - longest: the scan is bounded by
-- the window, not by the resource's whole history.
local function booked_overlap(maxlen_key, key, s, e, member)
  local longest = longest_of(maxlen_key, key)
  local low = '-inf'
  if longest then
    low = '(' .. (s - longest)
  end
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', key, low, '(' .. e)) do
    if other ~= member then
      local oe = interval_end(other)
      if oe and oe > s then
        return other
      end
    end
  end
  return nil
end

-- Items of one request (keys[base + j], starts[j], ends[j], members[j]) may not overlap each
-- other on one resource either: the member of an earlier item that item i overlaps, or nil.
local function request_overlap(keys, base, starts, ends, members, i)
  for j = 1, i - 1 do
    if keys[base + j] == keys[base + i] and members[j] ~= members[i] and starts[j] < ends[i]
        and starts[i] < ends[j] then
      return members[j]
    end
  end
  return nil
end

-- Book [s, e) on `key` (checked first); 1 when the member is new.
local function book_interval(maxlen_key, key, s, e, member)
  local added = redis.call('ZADD', key, s, member)
  local longest = longest_of(maxlen_key, key)
  if not longest or e - s > longest then
    redis.call('HSET', maxlen_key, key, e - s)
    longest_seen[key] = e - s
  end
  return added
end
