"""The certificate serials whose revocation is already on the audit trail (``CRL_AUDITED``), so
each revocation is audited once however often the list is reloaded."""

from __future__ import annotations

import redis.asyncio as aioredis

from coordinator.store.layout import CRL_AUDITED


class AuditedRevocations:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def serials(self) -> set[int]:
        return {int(v, 16) for v in await self.redis.smembers(CRL_AUDITED)}

    async def add(self, serial: int) -> None:
        await self.redis.sadd(CRL_AUDITED, format(serial, "x"))
