"""The conduct store in a real Redis: sealed records round-trip, a moved blob is refused, and
a follower's step loses to a write made meanwhile."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
import redis.asyncio as aioredis

from coordinator.domain.conduct import ConductError, ConductEvent, Sanction
from coordinator.domain.model import ConductBar
from coordinator.store.conduct import ConductStore, events_key
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.errors import STORE_CONFLICT

BAR = ConductBar("E1", "no_show_cool_off", date(2026, 11, 2), date(2026, 11, 30), "absent", (3,))
EVENT = ConductEvent("E1", "no_show", datetime(2026, 11, 2, 1, tzinfo=UTC), "P1", (3,), "x")


@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[ConductStore]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield ConductStore(client, os.urandom(32))
    finally:
        await client.aclose()


async def test_records_round_trip_sealed(store: ConductStore) -> None:
    assert await store.read_bars() == (0, []) and await store.bars_version() == 0
    assert await store.store_bars([BAR]) == 1
    assert await store.read_bars() == (1, [BAR]) and await store.bars_version() == 1
    sanction = Sanction("s1", "E2", date(2026, 12, 1), date(2026, 12, 10), "fraud", "op", (7,))
    await store.store_sanction(sanction)
    assert await store.read_sanctions() == [sanction]
    await store.store_followed({"E1": [EVENT]}, 9)
    assert await store.read_events(["E1", "E2"]) == {"E1": [EVENT], "E2": []}
    assert await store.followed_cursor() == 9
    raw = await store.redis.get(events_key("E1"))
    assert raw is not None and b"no_show" not in raw  # sealed


async def test_events_moved_to_another_experts_key_are_refused(store: ConductStore) -> None:
    await store.store_followed({"E1": [EVENT]}, 1)
    await store.redis.set(events_key("E2"), await store.redis.get(events_key("E1")))
    with pytest.raises(ConductError, match=r"conduct:events:E2: holds another expert's events"):
        await store.read_events(["E2"])


async def test_a_follow_step_loses_to_a_write_made_meanwhile(store: ConductStore) -> None:
    async with store.following() as step:
        assert await step.cursor() == 0
        assert await step.write({"E1": [EVENT]}, 4, [BAR]) == 1  # nothing moved: written
    assert await store.read_bars() == (1, [BAR]) and await store.followed_cursor() == 4

    with pytest.raises(STORE_CONFLICT):
        async with store.following() as step:
            await step.cursor()
            await store.store_bars([])  # a `conduct update` meanwhile
            await step.write({}, 5, None)
    assert await store.followed_cursor() == 4 and await store.read_bars() == (2, [])
