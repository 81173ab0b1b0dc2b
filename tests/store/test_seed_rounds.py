"""A day's seed round claimed in one step on a real server: the coordinator's commitment never
stored without the sealed share it commits to, and a second claim changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.layout import SEED_SHARE
from coordinator.store.seed_rounds import SeedRounds

DAY = "2026-03-02"


@pytest.fixture
async def aredis(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.delete(SEED_SHARE.format(DAY))  # the session's server: start from none
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_claim_sets_all_its_fields_once(aredis: aioredis.Redis) -> None:
    rounds = SeedRounds(aredis)
    await aredis.hset(SEED_SHARE.format(DAY), "supervisor_commitment", "s" * 64)
    first = {"coordinator_commitment": "a" * 64, "coordinator_sealed": "sealed-a"}
    assert await rounds.claim(DAY, "coordinator_commitment", first)
    assert not await rounds.claim(DAY, "coordinator_commitment", {
        "coordinator_commitment": "b" * 64, "coordinator_sealed": "sealed-b"})
    assert await rounds.fields(DAY) == {"supervisor_commitment": "s" * 64, **first}
    assert await rounds.claim(DAY, "used", {"used": "1"})
    assert not await rounds.claim(DAY, "used", {"used": "1"})
