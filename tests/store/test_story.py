"""A project's story in Redis: appended with the state in one MULTI, read back in order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from coordinator.domain.lifecycle import (
    Departed,
    DrawPlaced,
    ProjectState,
    SeatState,
    handle_project,
    handle_seat,
    story_entry,
)
from coordinator.domain.pii import PiiKeys
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.registry import PROJECT_STORY, STORY_KEPT, Registry


@pytest.fixture
async def aredis(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def registry(aredis: aioredis.Redis) -> Registry:
    return Registry(aredis, PiiKeys.from_master(b"k" * 32))


async def test_story_keeps_transitions_in_order(registry: Registry,
                                                aredis: aioredis.Redis) -> None:
    drawn, todo = handle_project(ProjectState.REGISTERED, DrawPlaced("drw-1"))
    first = story_entry("2026-03-01T01:00:00+00:00", ProjectState.REGISTERED, drawn,
                        DrawPlaced("drw-1"), todo)
    declined, todo = handle_seat(SeatState.NOTIFIED, Departed("req-9", "declined"))
    second = story_entry("2026-03-01T03:00:00+00:00", SeatState.NOTIFIED, declined,
                         Departed("req-9", "declined"), todo, seat="ses-1")
    pipe = aredis.pipeline(transaction=True)
    registry.stage_story(pipe, "P1", first)
    registry.stage_story(pipe, "P1", second)
    await pipe.execute()

    assert await registry.story("P1") == [first, second]
    assert await registry.story("P1", last=1) == [second]
    assert await registry.story("P2") == []  # each project its own story
    assert await aredis.llen(PROJECT_STORY.format("P1")) == 2


async def test_story_keeps_only_the_newest(registry: Registry) -> None:
    entries = [story_entry(f"2026-03-01T01:00:{i % 60:02d}+00:00", ProjectState.REGISTERED,
                           ProjectState.DRAWN, DrawPlaced(f"drw-{i}"), [])
               for i in range(STORY_KEPT + 5)]
    pipe = registry.redis.pipeline(transaction=True)
    for entry in entries:
        registry.stage_story(pipe, "P1", entry)
    await pipe.execute()
    kept = await registry.story("P1")
    assert len(kept) == STORY_KEPT and kept[0] == entries[5] and kept[-1] == entries[-1]
