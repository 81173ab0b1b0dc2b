"""The intents of announced first draws, dropped off the draw's path (AnnouncedIntents)
against a real Redis: an outage delays the drop and loses nothing, and one waiting for it is
told the store is out; batched as they come. (Until dropped they count as in flight, and a
new intent of the same project waits for the drop: tests/integration/
test_single_draw_trips.py.)"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from coordinator import draw_intents
from coordinator.draw_intents import AnnouncedIntents, make_intent, pending_intents, stage_intent
from coordinator.store.errors import STORE_UNAVAILABLE
from tests.integration.plan_coordinator import private_redis

KEY = b"a" * 32


async def _intents(redis: aioredis.Redis, *project_ids: str) -> None:
    pipe = redis.pipeline(transaction=True)
    for project_id in project_ids:
        stage_intent(pipe, KEY, make_intent(project_id, f"d-{project_id}", "placed", 0))
    await pipe.execute()


class _Slow:
    """The store, each MULTI answered 0.2 s late (4 turns of a waiter's 0.05 s)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.redis.pipeline(transaction=transaction)

        class SlowPipeline:
            def __getattr__(self, name: str) -> Any:
                return getattr(pipe, name)

            async def execute(self) -> Any:
                await asyncio.sleep(0.2)
                return await pipe.execute()

        return SlowPipeline()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_outage_delays_the_drops_and_loses_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(draw_intents, "DROP_RETRY_S", 0.05)
    async with private_redis(tmp_path) as redis:
        await _intents(redis, "P-1", "P-2", "P-3")
        down = aioredis.Redis(port=_closed_port(), socket_connect_timeout=0.2)
        announced = AnnouncedIntents(down)
        announced.add(["P-1", "P-2"])
        # One waiting for a drop is told the store is out, as by any call to it, not kept.
        with pytest.raises(STORE_UNAVAILABLE):  # not asyncio's TimeoutError
            await asyncio.wait_for(announced.settle({"P-2"}), timeout=10)
        assert announced.pending == {"P-1", "P-2"}  # still in flight: nobody else takes them
        announced.redis = redis  # the store is back
        await asyncio.wait_for(announced.settle({"P-1"}), timeout=10)
        assert announced.pending == set()
        assert [i.project_id for i in await pending_intents(redis, KEY)] == ["P-3"]
        await down.aclose()


async def test_a_failure_from_before_the_wait_is_not_the_waiter_s_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store came back just after a try failed: one who starts waiting then gets the
    drop made by the next try, not the earlier failure (CI caught the old code raising it)."""
    monkeypatch.setattr(draw_intents, "DROP_RETRY_S", 0.05)
    async with private_redis(tmp_path) as redis:
        await _intents(redis, "P-1")
        down = aioredis.Redis(port=_closed_port(), socket_connect_timeout=0.2)
        announced = AnnouncedIntents(down)
        announced.add(["P-1"])
        while announced.failing is None:  # a try failed; the next is a moment away
            await asyncio.sleep(0.001)
        announced.redis = _Slow(redis)  # back, its answer slower than a wait's turn
        await asyncio.wait_for(announced.settle({"P-1"}), timeout=10)
        assert announced.pending == set() and announced.failing is None
        assert await pending_intents(redis, KEY) == []
        await down.aclose()


async def test_added_while_a_drop_is_under_way_they_go_in_the_next(tmp_path: Path) -> None:
    async with private_redis(tmp_path) as redis:
        await _intents(redis, "P-1", "P-2")
        announced = AnnouncedIntents(redis)
        announced.add(["P-1"])
        announced.add(["P-2"])  # before the first drop ran: the same task takes it
        await announced.settle()
        assert await pending_intents(redis, KEY) == []
        announced.add([])  # nothing to drop: no task, nothing pending
        assert announced.pending == set()


async def test_a_drop_the_store_refuses_outright_is_raised_not_retried_in_a_loop(
        tmp_path: Path) -> None:
    """Forged store content (the intents' set made a string): the MULTI fails with a reply
    error that is no outage; one waiting for the drop gets it, at once."""
    async with private_redis(tmp_path) as redis:
        await _intents(redis, "P-1")
        await redis.delete("intents")
        await redis.set("intents", "forged")
        announced = AnnouncedIntents(redis)
        announced.add(["P-1"])
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await asyncio.wait_for(announced.settle(), timeout=10)
        assert announced.pending == {"P-1"}  # kept: the next drop tries it again
        await redis.delete("intents")
        await asyncio.wait_for(announced.settle(), timeout=10)
        assert announced.pending == set()
