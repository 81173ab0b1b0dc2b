"""Pending workstation activation codes (``ENROLMENT``: digest, expiry, wrong tries, one per
workstation) and the count of refused enrolments per site and window (``ENROLMENT_REFUSALS``).
The rules: coordinator/enrolment.py."""

from __future__ import annotations

import redis.asyncio as aioredis

from coordinator.store.layout import ENROLMENT, ENROLMENT_REFUSALS
from coordinator.store.values import text


class ActivationCodes:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def replace(self, subject: str, *, digest: str, expires: str, keep_s: int) -> None:
        """The workstation's one pending code, replacing any earlier one (one MULTI); Redis
        forgets it after `keep_s` (garbage only: the expiry runs on the clock)."""
        key = ENROLMENT.format(subject)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"digest": digest, "expires": expires, "wrong": 0})
        pipe.expire(key, keep_s)
        await pipe.execute()

    async def pending(self, subject: str) -> dict[str, str]:
        """The pending code's fields ({} where none is)."""
        raw = await self.redis.hgetall(ENROLMENT.format(subject))
        return {text(k): text(v) for k, v in raw.items()}

    async def wrong_try(self, subject: str) -> int:
        """Count a wrong try; the count so far."""
        return int(await self.redis.hincrby(ENROLMENT.format(subject), "wrong", 1))

    async def burn(self, subject: str) -> bool:
        """Remove the pending code: True for the one caller that removed it."""
        return bool(await self.redis.delete(ENROLMENT.format(subject)))

    async def count_refusal(self, site_id: str, window: int, *, keep_s: int) -> int:
        """One more refused enrolment of the site in the window; the count so far."""
        key = ENROLMENT_REFUSALS.format(site_id, window)
        count = int(await self.redis.incr(key))
        if count == 1:
            await self.redis.expire(key, keep_s)
        return count
