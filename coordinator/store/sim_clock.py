"""A simulated clock's time (``SIM_CLOCK``), so that a coordinator restarted with the same command
line (or a standby taking over) resumes the day there, not at its start."""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from coordinator.store.layout import SIM_CLOCK
from coordinator.store.values import text


async def save(redis: aioredis.Redis, now: datetime) -> None:
    await redis.set(SIM_CLOCK, now.isoformat())


async def saved(redis: aioredis.Redis) -> datetime | None:
    raw = await redis.get(SIM_CLOCK)
    return datetime.fromisoformat(text(raw)) if raw else None
