"""The notices withdrawn from redrawn members (``NOTICE_WITHDRAWN``): a resumed departure
finds its member told already (coordinator/withdrawals.py)."""

from __future__ import annotations

import redis.asyncio as aioredis

from coordinator.store.layout import NOTICE_WITHDRAWN


class WithdrawnNotices:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def told(self, notice_id: str) -> bool:
        return bool(await self.redis.sismember(NOTICE_WITHDRAWN, notice_id))

    async def mark(self, notice_id: str) -> None:
        await self.redis.sadd(NOTICE_WITHDRAWN, notice_id)
