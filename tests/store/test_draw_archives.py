"""Draw archives in Redis (store/draws.py): stored in the box's binary form, and archives an
earlier version stored as JSON text still read, on a real redis-server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from coordinator.domain.seal import BINARY_MAGIC, SealError, seal_json_text
from coordinator.store.draws import DrawArchives
from coordinator.store.layout import DRAW
from tests.integration.plan_coordinator import private_redis

KEY = b"k" * 32
ARCHIVE = {"commitment": {"draw_id": "D-1"}, "seed": "00" * 32, "inputs": {"barred": "A" * 900}}


@pytest_asyncio.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    async with private_redis(tmp_path) as client:
        yield client


async def test_binary_and_json_archives_both_read(redis: aioredis.Redis) -> None:
    archives = DrawArchives(redis, KEY)
    box = seal_json_text(KEY, "D-1", "draw", json.dumps(ARCHIVE))
    pipe = redis.pipeline(transaction=True)
    archives.stage_archive(pipe, "D-1", {"commitment": "{}", "sealed": box.to_bytes()})
    archives.stage_archive(pipe, "D-2", {"commitment": "{}", "sealed": seal_json_text(
        KEY, "D-2", "draw", json.dumps(ARCHIVE)).to_json()})  # as earlier versions stored it
    await pipe.execute()
    stored = await redis.hget(DRAW.format("D-1"), "sealed")
    assert stored is not None and stored.startswith(BINARY_MAGIC)
    assert await archives.sealed_archive("D-1") == ARCHIVE
    assert await archives.sealed_archive("D-2") == ARCHIVE
    assert await archives.sealed_archive("D-3") is None


async def test_a_binary_archive_moved_to_another_draw_does_not_open(redis: aioredis.Redis
                                                                    ) -> None:
    box = seal_json_text(KEY, "D-1", "draw", json.dumps(ARCHIVE)).to_bytes()
    await redis.hset(DRAW.format("D-9"), "sealed", box)
    with pytest.raises(SealError, match="another project"):
        await DrawArchives(redis, KEY).sealed_archive("D-9")
