"""The commands queued for the guest sites (``SITE_COMMANDS``, until acknowledged) and the fence
counter that orders them (``FENCE``): an agent runs a command only above the last fence it saw,
so a deposed coordinator's late command is refused. A command takes its fence in the step that
queues it (command_fence.lua), so fences grow in the order commands are queued."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import redis.asyncio as aioredis

from coordinator.store.layout import FENCE, SITE_COMMANDS
from coordinator.store.lua_scripts import lua_script
from coordinator.store.placements import Writes

# KEYS: the fence counter, the site's queue. ARGV: command id, the command encoded without a
# fence. Reply: its fence.
_QUEUE_LUA: Final = lua_script(
    "command_fence.lua", body="return queue_command(KEYS[1], KEYS[2], ARGV[1], ARGV[2])\n")


class SiteCommands:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._queue = redis.register_script(_QUEUE_LUA)

    async def current_fence(self) -> int:
        return int(await self.redis.get(FENCE) or 0)

    async def queue(self, site_id: str, command_id: str, command: bytes) -> int:
        """Queue a command (encoded, its fence unset) with the next fence; returns the fence."""
        return int(await self._queue(keys=[FENCE, SITE_COMMANDS.format(site_id)],
                                     args=[command_id, command]))

    @staticmethod
    def stage_queue(pipe: Any, site_id: str, command_id: str, command: bytes) -> None:
        """`queue` in the caller's MULTI, or in a placement's writes (place.lua)."""
        key = SITE_COMMANDS.format(site_id)
        if isinstance(pipe, Writes):
            pipe.queue_command(key, command_id, command)
        else:  # EVAL: see AuditLog.append_batch_with on scripts inside a MULTI
            pipe.eval(_QUEUE_LUA, 2, FENCE, key, command_id, command)

    async def pending(self, site_id: str) -> list[bytes]:
        raw = await self.redis.hgetall(SITE_COMMANDS.format(site_id))
        return [v if isinstance(v, bytes) else v.encode() for v in raw.values()]

    async def done(self, site_id: str, command_id: str) -> None:
        await self.redis.hdel(SITE_COMMANDS.format(site_id), command_id)

    async def count(self, site_ids: Iterable[str]) -> int:
        """The commands queued for these sites, together (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.hlen(SITE_COMMANDS.format(site_id))
        return sum(int(n) for n in await pipe.execute())
