"""The leader's lease is renewed while its coordinator starts: a start longer than the lease
(a large registry to load) does not hand the lease to a standby, which would start too and be
overtaken in turn; and a lease lost while starting ends that start."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis.asyncio as aioredis

from coordinator.leadership import Leadership
from coordinator.server import Coordinator, CoordinatorConfig, lead_once
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.layout import LEADER

LEASE_MS = 3_000  # steps down after 1 s unrenewed (the lease less two renewals)


class SlowStart:
    """A coordinator whose start takes longer than the lease."""

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.started = asyncio.Event()
        self.stopped = False

    def __call__(self, config: Any, fence: Any) -> Coordinator:
        return cast(Coordinator, self)

    async def start(self) -> int:
        await asyncio.sleep(self.start_s)
        self.started.set()
        return 0

    async def stop(self) -> None:
        self.stopped = True


async def _holder(redis: aioredis.Redis) -> str:
    raw = await redis.get(LEADER)
    return raw.decode() if raw is not None else ""


async def test_a_start_longer_than_the_lease_keeps_the_lease(
        redis_server: EmbeddedRedis) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    a, b = Leadership(redis, "a", LEASE_MS), Leadership(redis, "b", LEASE_MS)
    slow = SlowStart(LEASE_MS / 1000 * 1.5)
    leading = asyncio.create_task(lead_once(a, cast(CoordinatorConfig, None), None, slow))
    try:
        await asyncio.sleep(0.2)
        standby = asyncio.create_task(b.acquire())
        await asyncio.wait_for(slow.started.wait(), timeout=10)
        assert (await _holder(redis)).startswith("a|") and not standby.done()
        await asyncio.sleep(1.5)  # leading now: still renewed
        assert (await _holder(redis)).startswith("a|") and not standby.done()
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
    assert slow.stopped
    await asyncio.wait_for(standby, timeout=5)  # given back on the stop: b leads at once
    assert (await _holder(redis)).startswith("b|")
    await redis.aclose()


async def test_a_lease_lost_while_starting_ends_the_start(redis_server: EmbeddedRedis) -> None:
    redis = aioredis.Redis.from_url(redis_server.url)
    a = Leadership(redis, "a", LEASE_MS)
    slow = SlowStart(30)
    leading = asyncio.create_task(lead_once(a, cast(CoordinatorConfig, None), None, slow))
    await asyncio.sleep(0.2)
    await redis.set(LEADER, "b|99", px=LEASE_MS)  # another holds it now
    await asyncio.wait_for(leading, timeout=5)  # stepped down, not 30 s later
    assert slow.stopped and not slow.started.is_set()
    assert await _holder(redis) == "b|99"  # its resign leaves another's lease alone
    await redis.aclose()
