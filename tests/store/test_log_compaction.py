"""The store's log compaction held off during a plan and given back (store/log_compaction.py):
on a real redis-server, with a holder killed by SIGKILL and a server that refuses CONFIG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from coordinator.domain.audit import generate_signing_key
from coordinator.province.generator import generate_province
from coordinator.store.layout import COMPACTION_HELD
from coordinator.store.log_compaction import SETTING, LogCompaction
from coordinator.store.values import text
from tests.integration.plan_coordinator import plan_coordinator, private_redis

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    async with private_redis(tmp_path) as client:
        await client.config_set(SETTING, "250")  # not the default: given back as it was
        yield client


async def setting(redis: aioredis.Redis) -> str:
    return await LogCompaction(redis).setting()


async def held(redis: aioredis.Redis) -> str:
    value = await redis.get(COMPACTION_HELD)
    assert value is not None
    return text(value)


async def test_held_off_then_given_back_as_it_was(redis: aioredis.Redis) -> None:
    compaction = LogCompaction(redis)
    assert await compaction.hold()
    assert await setting(redis) == "0"
    assert await held(redis) == "250"
    assert await compaction.release() == "250"
    assert await setting(redis) == "250"
    assert await redis.exists(COMPACTION_HELD) == 0
    assert await compaction.release() is None  # nothing held: nothing changed
    assert await setting(redis) == "250"


async def test_a_holder_killed_with_sigkill_is_undone_at_the_next_start(
        redis: aioredis.Redis, tmp_path: Path) -> None:
    url = redis.connection_pool.connection_kwargs["path"]
    holder = (
        "import asyncio, os, signal, redis.asyncio as r\n"
        "from coordinator.store.log_compaction import LogCompaction\n"
        "async def main():\n"
        f"    assert await LogCompaction(r.Redis(unix_socket_path={url!r})).hold()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", holder], cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL
    assert await setting(redis) == "0"  # left held off by the dead holder

    # A second holder before any recovery keeps the setting from before the first.
    assert await LogCompaction(redis).hold()
    assert await held(redis) == "250"

    day = date(2026, 3, 2)
    province = generate_province(seed=5, day=day, cities=2, sites=4, workstations=20,
                                 experts=60, companies=20, projects=2)
    await plan_coordinator(redis, tmp_path, province=province,
                           now=datetime(2026, 3, 1, 10, tzinfo=UTC), seed=b"s" * 32,
                           key=b"k" * 32, signer=generate_signing_key(), fresh=True)
    assert await setting(redis) == "250"  # the coordinator's start gave it back
    assert await redis.exists(COMPACTION_HELD) == 0


async def test_a_server_that_refuses_config_is_left_as_it_is(redis: aioredis.Redis,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    await redis.acl_setuser("planner", enabled=True, nopass=True, keys=["*"],
                            commands=["+@all", "-config"])
    path = redis.connection_pool.connection_kwargs["path"]
    limited = aioredis.Redis(unix_socket_path=path, username="planner")
    try:
        assert not await LogCompaction(limited).hold()
        assert "refuses CONFIG" in caplog.text
        assert await redis.exists(COMPACTION_HELD) == 0  # no record of a hold not made
        await LogCompaction(limited).recover()  # nothing held: nothing to give back
    finally:
        await limited.aclose()
    assert await setting(redis) == "250"


async def test_giving_back_to_a_store_that_is_gone_is_logged_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gone = aioredis.Redis(unix_socket_path=str(tmp_path / "no-such.sock"))
    try:
        await LogCompaction(gone).give_back()  # a plan's end must report the plan, not this
    finally:
        await gone.aclose()
    assert "could not give back" in caplog.text


@pytest.mark.parametrize("forged", [b"abc", b"\xff\xfe", b"-5", b"\xd9\xa1"])
async def test_a_forged_record_gives_back_the_default_not_compaction_off_for_good(
        redis: aioredis.Redis, forged: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """Edited, undecodable, negative or a non-ASCII digit: the plan's end and the next start
    still turn compaction back on, and the record goes."""
    await redis.set(COMPACTION_HELD, forged)
    compaction = LogCompaction(redis)
    assert await compaction.hold()  # NX: the forged record stays as it is
    assert await setting(redis) == "0"
    await compaction.give_back()
    assert await setting(redis) == "100"
    assert await redis.exists(COMPACTION_HELD) == 0
    assert "not a percentage" in caplog.text
    await redis.set(COMPACTION_HELD, forged)
    await redis.config_set(SETTING, "0")
    await LogCompaction(redis).recover()
    assert await setting(redis) == "100"
