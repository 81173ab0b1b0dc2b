-- The audit chain's compare-and-set append, one copy for audit_log.py's own script and for
-- place.lua (which audits a draw's placement in the step that stores it), put ahead of each
-- (lua_scripts.py).
--
-- The entry is added only if the head (hash {seq, hash}) is still its predecessor, so two
-- coordinators (or a stale one after a failover) cannot fork the chain. Stream IDs are the
-- seq: XADD refuses an ID that does not grow.
-- Reply: {1, seq} appended, or {0, head seq, head hash} when the head is not the predecessor.
-- The head (seq, hash), and whether it is the given predecessor.
local function head_is(head, prev_seq, prev_hash)
  local head_seq = tonumber(redis.call('HGET', head, 'seq') or '0')
  local head_hash = redis.call('HGET', head, 'hash') or string.rep('0', 64)
  return head_seq == tonumber(prev_seq) and head_hash == prev_hash, head_seq, head_hash
end

local function append_entry(stream, head, prev_seq, prev_hash, seq, hash, entry)
  local holds, head_seq, head_hash = head_is(head, prev_seq, prev_hash)
  if not holds then
    return {0, head_seq, head_hash}
  end
  redis.call('XADD', stream, seq .. '-0', 'entry', entry)
  redis.call('HSET', head, 'seq', seq, 'hash', hash)
  return {1, tonumber(seq)}
end

-- The seq of the stream's last entry (0 when empty): an append script checks it before it
-- writes anything, as a script's error undoes none of the writes made before it.
local function last_stream_seq(stream)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if last == nil then
    return 0
  end
  return tonumber(string.match(last[1], '^(%d+)-'))
end
