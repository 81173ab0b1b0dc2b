-- A command queued for a site takes its fence in the step that queues it, one copy for
-- site_commands.py's script and place.lua (a draw's Reserve commands): fences then grow in the
-- order the queue receives commands, so the sender, which sends a site's pending commands in
-- fence order and never one below a fence it has sent, and the agent, which refuses one below
-- a fence it has seen, lose none to two writers that took their fences in one order and
-- queued in the other.
--
-- The fence is CoordinatorCommand's field 2 (uint64), appended to the command's encoding
-- as its tag (0x10: field 2, varint) and a varint: a protobuf parser takes the last value of
-- a field it meets twice (concatenated encodings merge), so the command reads with this fence.

local function with_fence(command, fence)
  local out = {command, string.char(0x10)}
  local v = fence
  while v >= 128 do
    out[#out + 1] = string.char(v % 128 + 128)
    v = math.floor(v / 128)
  end
  out[#out + 1] = string.char(v)
  return table.concat(out)
end

-- Queue `command` (encoded, its fence unset) under `command_id` in the hash `queue_key`, with
-- the next fence of the counter `fence_key`; returns that fence.
local function queue_command(fence_key, queue_key, command_id, command)
  local fence = redis.call('INCR', fence_key)
  redis.call('HSET', queue_key, command_id, with_fence(command, fence))
  return fence
end
