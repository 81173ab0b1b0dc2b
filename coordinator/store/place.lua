-- The placements of a chunk of draws in one call (see placements.py): first the chunk's
-- commitments (the prefix: its writes, the draws' archives and seed labels, and its audit
-- entries, `draw.committed` and the like, which must land ahead of every placement: on a head
-- another writer moved, nothing is written), then each draw (a group of booking items, and
-- the writes that store its placement) booked all or none, in order, so a later draw of the
-- chunk sees the earlier ones; a draw's writes are made only when all its items are booked,
-- in the same step. The overlap rule is overlap.lua's (registered ahead of this text), the
-- same as reserve.lua's. A placed draw's audit entry (`draw.placed`, built on the chain's
-- head by audit_log.py) is appended in the same step by `append_entry` (audit_append.lua,
-- also ahead of this text), while the chain still ends where it was built; its commands take
-- their fences as they are queued (`queue_command`, command_fence.lua).
--
-- KEYS[1..n]  one sorted set per item; member "<start>:<end>:<holder>", score = start
-- KEYS[n+1]   hash: resource key -> longest interval ever booked on it (bounds the scan)
-- KEYS[n+2]   the site commands' fence counter (command_fence.lua)
-- KEYS[n+3]   the leader's fencing counter (only when ARGV[2] is not empty)
-- then        the audit stream and its head (only when ARGV[3] is not empty)
-- then        one key per write, in order: the prefix's, then the draws'
-- ARGV[1]     g, the number of draws
-- ARGV[2]     fencing token, or "" for none
-- ARGV[3]     "1" when the prefix or the draws carry audit entries, else ""
-- ARGV[4]     the prefix, MessagePack: [[[command, arg, ...], ...], [entry, ...]]: its writes
--             (as a draw's, or HINCRBY) and its entries' `append_entry` arguments
-- ARGV[4+d]   draw d, MessagePack: [[start, end, member, ...], [[command, arg, ...], ...],
--             entry]: its items, its writes (command SET, HSET, SADD, RPUSH or LTRIM and the
--             arguments after the key, or QUEUE, command id, encoded command: a command
--             queued with the next fence), and its entry's `append_entry` arguments (prev seq,
--             prev hash, seq, hash, JSON) or []; one argument per draw, as a chunk's few
--             thousand values cost more to send one by one than to book
--
-- Replies:
--   {"stale", current}            the fencing counter has moved past ARGV[2]; nothing written
--   {"moved"}                     the chain no longer ends where the prefix's entries were
--                                 built; nothing written
--   {"ok", r1, ..., rg}           per draw: {"ok", added, audited} (audited 1 when its entry
--                                 was appended) or {"conflict", index, member} (index 1-based
--                                 within the draw; that draw wrote nothing)

local g = tonumber(ARGV[1])
local prefix = cmsgpack.unpack(ARGV[4])
local draws = {}
local n = 0
for d = 1, g do
  local draw = cmsgpack.unpack(ARGV[4 + d])
  draws[d] = draw
  n = n + #draw[1] / 3
end
local maxlen_key = KEYS[n + 1]
local command_fence_key = KEYS[n + 2]
local write_key = n + 3  -- KEYS index of the next write
if ARGV[2] ~= '' then
  write_key = write_key + 1
end
local audit_key = nil  -- KEYS index of the audit stream (its head next)
if ARGV[3] ~= '' then
  audit_key = write_key
  write_key = write_key + 2
end
local allowed = {SET = true, HSET = true, SADD = true, RPUSH = true, LTRIM = true,
                 QUEUE = true}
local function unexpected(writes, also)
  for _, write in ipairs(writes) do
    if not (allowed[write[1]] or write[1] == also) then
      return redis.error_reply('place.lua: unexpected write ' .. tostring(write[1]))
    end
  end
  return nil
end
-- every write checked before anything is written: a script error undoes nothing
local refused = unexpected(prefix[1], 'HINCRBY')
for d = 1, g do
  refused = refused or unexpected(draws[d][2], nil)
end
if refused then
  return refused
end

local function write_all(writes)
  for _, write in ipairs(writes) do
    if write[1] == 'QUEUE' then
      queue_command(command_fence_key, KEYS[write_key], write[2], write[3])
    else
      redis.call(write[1], KEYS[write_key], unpack(write, 2))
    end
    write_key = write_key + 1
  end
end

if ARGV[2] ~= '' then
  local current = tonumber(redis.call('GET', KEYS[n + 3]) or '0')
  if current > tonumber(ARGV[2]) then
    return {'stale', current}
  end
end

-- The prefix's entries land ahead of every placement, or nothing is written: its first
-- chains on the head, and the stream ends before it.
local committed = prefix[2]
if #committed > 0 then
  local first = committed[1]
  if not head_is(KEYS[audit_key + 1], first[1], first[2])
      or last_stream_seq(KEYS[audit_key]) >= tonumber(first[3]) then
    return {'moved'}
  end
end
write_all(prefix[1])
for _, entry in ipairs(committed) do  -- each chains on the last: all land
  append_entry(KEYS[audit_key], KEYS[audit_key + 1], entry[1], entry[2], entry[3], entry[4],
               entry[5])
end

-- Entries only onto a stream that ends at its head's seq or before (else the chain was
-- written around its script: append_entry's XADD would fail with this draw's writes made).
local audit = false
if audit_key then
  local first = nil
  for d = 1, g do
    if first == nil and #draws[d][3] > 0 then
      first = tonumber(draws[d][3][3])
    end
  end
  audit = first ~= nil and last_stream_seq(KEYS[audit_key]) < first
end

local replies = {'ok'}
local base = 0  -- KEYS index before the draw's first item
for d = 1, g do
  local items, writes = draws[d][1], draws[d][2]
  local count = #items / 3
  local starts, ends, members = {}, {}, {}
  for i = 1, count do
    starts[i] = tonumber(items[3 * i - 2])
    ends[i] = tonumber(items[3 * i - 1])
    members[i] = items[3 * i]
  end
  local conflict = nil
  for i = 1, count do
    local other = booked_overlap(maxlen_key, KEYS[base + i], starts[i], ends[i], members[i])
        or request_overlap(KEYS, base, starts, ends, members, i)
    if other then
      conflict = {'conflict', i, other}
      break
    end
  end
  if conflict then  -- skipped: the draw's placement is not stored
    write_key = write_key + #writes
    replies[#replies + 1] = conflict
  else
    local added = 0
    for i = 1, count do
      added = added + book_interval(maxlen_key, KEYS[base + i], starts[i], ends[i], members[i])
    end
    write_all(writes)
    local audited = 0
    local entry = draws[d][3]
    if audit and #entry > 0 then
      audited = append_entry(KEYS[audit_key], KEYS[audit_key + 1], entry[1], entry[2],
                             entry[3], entry[4], entry[5])[1]
    end
    replies[#replies + 1] = {'ok', added, audited}
  end
  base = base + count
end
return replies
