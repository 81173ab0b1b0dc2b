"""The intents of announced first draws, dropped off the draw's path (AnnouncedIntents)
against a real Redis: an outage delays the drop and loses nothing, and one waiting for it is
told the store is out; batched as they come. (Until dropped they count as in flight, and a
new intent of the same project waits for the drop: tests/integration/
test_single_draw_trips.py.)"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

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
