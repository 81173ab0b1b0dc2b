"""The commands queued for the guest sites (``SITE_COMMANDS``, until acknowledged) and the fence
counter that orders them (``FENCE``): an agent runs a command only above the last fence it saw,
so a deposed coordinator's late command is refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from coordinator.store.layout import FENCE, SITE_COMMANDS


class SiteCommands:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def current_fence(self) -> int:
        return int(await self.redis.get(FENCE) or 0)

    async def next_fence(self) -> int:
        return int(await self.redis.incr(FENCE))

    async def take_fences(self, n: int) -> int:
        """Take `n` fences at once; the highest of them."""
        return int(await self.redis.incrby(FENCE, n))

    @staticmethod
    def stage_take_fences(pipe: Any, n: int) -> None:
        pipe.incrby(FENCE, n)

    async def queue(self, site_id: str, command_id: str, command: bytes) -> None:
        await self.redis.hset(SITE_COMMANDS.format(site_id), command_id, command)

    @staticmethod
    def stage_queue(pipe: Any, site_id: str, command_id: str, command: bytes) -> None:
        pipe.hset(SITE_COMMANDS.format(site_id), command_id, command)

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
