"""Interval bookings on a real redis-server: overlap, atomicity, idempotence, races, fencing."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from coordinator.store.bookings import (
    BookingItem,
    Bookings,
    Fence,
    Fencing,
    StaleFenceError,
    expert_resource,
    opaque_holder,
    ws_resource,
)
from coordinator.store.embedded_redis import EmbeddedRedis

T0 = 1_750_000_000
HOUR = 3600


@pytest.fixture
async def aredis(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def bookings(aredis: aioredis.Redis) -> Bookings:
    return Bookings(aredis, prefix="t:bk:")


def ws(n: int, start: int, end: int, holder: str) -> BookingItem:
    return BookingItem(ws_resource(f"W{n}"), start, end, holder)


async def test_keys_follow_the_documented_layout(aredis: aioredis.Redis) -> None:
    store = Bookings(aredis)
    item = BookingItem(expert_resource("E7"), T0, T0 + HOUR, "s-1")
    assert (await store.reserve_all([item])).ok
    assert await aredis.zrange("bk:ex:E7", 0, -1, withscores=True) == [
        (f"{T0}:{T0 + HOUR}:s-1".encode(), float(T0))
    ]
    assert await store.all_intervals("ex:E7") == [item]


async def test_overlap_is_refused_and_names_the_holder(bookings: Bookings) -> None:
    assert (await bookings.reserve_all([ws(1, T0, T0 + 4 * HOUR, "alpha")])).ok
    result = await bookings.reserve_all([ws(1, T0 + HOUR, T0 + 2 * HOUR, "beta")])
    assert not result.ok
    assert result.conflict is not None
    assert result.conflict.index == 0
    assert result.conflict.existing == ws(1, T0, T0 + 4 * HOUR, "alpha")
    assert "alpha" in result.reason
    # A window that encloses the existing one, and one that overlaps its start, are refused too.
    assert not (await bookings.reserve_all([ws(1, T0 - HOUR, T0 + 5 * HOUR, "g")])).ok
    assert not (await bookings.reserve_all([ws(1, T0 - HOUR, T0 + 1, "g")])).ok
    assert await bookings.holders_overlapping("ws:W1", T0 + HOUR, T0 + HOUR + 1) == ["alpha"]


async def test_adjacent_intervals_do_not_overlap(bookings: Bookings) -> None:
    assert (await bookings.reserve_all([ws(1, T0, T0 + HOUR, "a")])).ok
    assert (await bookings.reserve_all([ws(1, T0 + HOUR, T0 + 2 * HOUR, "b")])).ok
    assert (await bookings.reserve_all([ws(1, T0 - HOUR, T0, "c")])).ok
    assert [b.holder for b in await bookings.all_intervals("ws:W1")] == ["c", "a", "b"]
    assert await bookings.holders_overlapping("ws:W1", T0 + HOUR, T0 + 2 * HOUR) == ["b"]


async def test_a_long_old_booking_is_still_seen(bookings: Bookings) -> None:
    """The scan bound follows the longest booking, so a long one is never skipped."""
    assert (await bookings.reserve_all([ws(1, T0, T0 + 30 * 24 * HOUR, "long")])).ok
    assert (await bookings.reserve_all([ws(1, T0 - 2 * HOUR, T0 - HOUR, "short")])).ok
    late = await bookings.reserve_all([ws(1, T0 + 20 * 24 * HOUR, T0 + 20 * 24 * HOUR + 60, "x")])
    assert late.conflict is not None and late.conflict.existing.holder == "long"


async def test_a_long_booking_is_seen_after_a_shorter_one_in_the_same_request(
        bookings: Bookings) -> None:
    """Two items on one resource in one call, the long one first: the longest interval the
    scan is bounded by stays the long one's (the script reads it once and keeps it current)."""
    assert (await bookings.reserve_all([ws(1, T0, T0 + HOUR, "first")])).ok
    assert (await bookings.reserve_all([ws(1, T0 + 2 * HOUR, T0 + 30 * 24 * HOUR, "long"),
                                        ws(1, T0 - 3 * HOUR, T0 - HOUR, "short")])).ok
    late = await bookings.reserve_all([ws(1, T0 + 20 * 24 * HOUR, T0 + 20 * 24 * HOUR + 60,
                                          "x")])
    assert late.conflict is not None and late.conflict.existing.holder == "long"


async def test_all_or_nothing(bookings: Bookings) -> None:
    assert (await bookings.reserve_all([ws(2, T0, T0 + HOUR, "taken")])).ok
    request = [
        ws(1, T0, T0 + HOUR, "new"),
        BookingItem(expert_resource("E1"), T0, T0 + HOUR, "new-e"),
        ws(2, T0 + 30 * 60, T0 + 2 * HOUR, "new"),
    ]
    result = await bookings.reserve_all(request)
    assert not result.ok and result.conflict is not None
    assert result.conflict.index == 2 and result.conflict.existing.holder == "taken"
    assert await bookings.all_intervals("ws:W1") == []
    assert await bookings.all_intervals("ex:E1") == []


async def test_items_of_one_request_may_not_overlap_each_other(bookings: Bookings) -> None:
    result = await bookings.reserve_all([ws(1, T0, T0 + HOUR, "a"), ws(1, T0 + 60, T0 + 90, "b")])
    assert result.conflict is not None and result.conflict.index == 1
    assert result.conflict.existing.holder == "a"
    assert await bookings.all_intervals("ws:W1") == []


async def test_retry_is_idempotent(bookings: Bookings) -> None:
    request = [ws(1, T0, T0 + HOUR, "h"), BookingItem("ex:E1", T0, T0 + HOUR, "h2")]
    first = await bookings.reserve_all(request)
    again = await bookings.reserve_all(request)
    assert (first.ok, first.added) == (True, 2)
    assert (again.ok, again.added) == (True, 0)
    assert len(await bookings.all_intervals("ws:W1")) == 1
    # Same window, another holder: still a conflict.
    assert not (await bookings.reserve_all([ws(1, T0, T0 + HOUR, "other")])).ok


async def test_release_removes_exactly_those_bookings(bookings: Bookings) -> None:
    mine = [ws(1, T0, T0 + HOUR, "me"), ws(2, T0, T0 + HOUR, "me")]
    theirs = ws(1, T0 + HOUR, T0 + 2 * HOUR, "them")
    assert (await bookings.reserve_all(mine)).ok
    assert (await bookings.reserve_all([theirs])).ok
    assert await bookings.release(mine) == 2
    assert await bookings.release(mine) == 0
    assert await bookings.all_intervals("ws:W1") == [theirs]
    assert (await bookings.reserve_all([ws(1, T0, T0 + HOUR, "next")])).ok


async def test_opaque_holders_differ_per_resource() -> None:
    a = opaque_holder(b"k" * 32, "res-1", "ws:W1")
    b = opaque_holder(b"k" * 32, "res-1", "ex:E1")
    assert a != b and a == opaque_holder(b"k" * 32, "res-1", "ws:W1")
    assert "res-1" not in a and len(a) == 32


def test_items_are_validated() -> None:
    with pytest.raises(ValueError):
        BookingItem("ws:W1", T0, T0, "h")
    with pytest.raises(ValueError):
        BookingItem("ws:W1", T0, T0 + 1, "")
    with pytest.raises(TypeError):
        BookingItem("ws:W1", T0, T0 + 1.5, "h")  # type: ignore[arg-type]


async def test_concurrent_draws_never_double_book(redis_server: EmbeddedRedis) -> None:
    """20 tasks on their own connections race for overlapping windows on shared workstations."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(20)]
    try:
        rng = random.Random(7)
        stores = [Bookings(c, prefix="race:") for c in clients]
        # Every task wants two workstations of W1..W4 and one expert of E1..E3, in windows
        # that all overlap T0 + 2h: at most one task can win any given resource.
        requests: list[list[BookingItem]] = []
        for t in range(20):
            start = T0 + rng.randrange(0, 2 * HOUR)
            end = T0 + 2 * HOUR + rng.randrange(1, 2 * HOUR)
            pair = rng.sample(range(1, 5), 2)
            items = [ws(n, start, end, f"task{t}-w{n}") for n in pair]
            items.append(BookingItem(f"ex:E{rng.randrange(1, 4)}", start, end, f"task{t}-e"))
            requests.append(items)
        go = asyncio.Event()

        async def attempt(i: int) -> bool:
            await go.wait()
            result = await stores[i].reserve_all(requests[i])
            return result.ok

        tasks = [asyncio.create_task(attempt(i)) for i in range(20)]
        await asyncio.sleep(0)
        go.set()
        won = await asyncio.gather(*tasks)

        check = stores[0]
        resources = [f"ws:W{n}" for n in range(1, 5)] + [f"ex:E{n}" for n in range(1, 4)]
        booked: dict[str, list[BookingItem]] = {r: await check.all_intervals(r) for r in resources}
        for intervals in booked.values():
            assert len(intervals) <= 1  # all windows overlap T0 + 2h
        winners = {i for i, ok in enumerate(won) if ok}
        assert winners, "someone must win"
        # Winners booked everything they asked for, losers nothing.
        holders = {b.holder for intervals in booked.values() for b in intervals}
        for i, items in enumerate(requests):
            mine = {item.holder for item in items}
            assert (mine <= holders) if i in winners else not (mine & holders)
        # No two winners share a resource: each conflict set has exactly one winner.
        used = [r.resource_key for i in winners for r in requests[i]]
        assert len(used) == len(set(used))
        # And a loser lost because a winner held one of its resources.
        for i in set(range(20)) - winners:
            assert {r.resource_key for r in requests[i]} & set(used)
    finally:
        for c in clients:
            await c.aclose()


async def test_many_random_concurrent_windows_never_overlap(redis_server: EmbeddedRedis) -> None:
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(8)]
    try:
        stores = [Bookings(c, prefix="rnd:") for c in clients]
        rng = random.Random(11)

        async def worker(k: int) -> None:
            for j in range(40):
                start = T0 + rng.randrange(0, 24) * 1800
                end = start + rng.randrange(1, 6) * 1800
                picks = rng.sample(range(1, 7), 2)
                await stores[k].reserve_all([ws(n, start, end, f"{k}-{j}-{n}") for n in picks])

        await asyncio.gather(*(worker(k) for k in range(8)))
        for n in range(1, 7):
            intervals = await stores[0].all_intervals(f"ws:W{n}")
            for a, b in itertools.pairwise(intervals):
                assert a.end <= b.start, (a, b)
    finally:
        for c in clients:
            await c.aclose()


async def test_stale_fence_token_is_refused(aredis: aioredis.Redis, bookings: Bookings) -> None:
    fencing = Fencing(aredis, prefix="t:fence:")
    old = await fencing.acquire("project-lease")
    assert (await bookings.reserve_all([ws(1, T0, T0 + HOUR, "old")], fence=old)).ok
    new = await fencing.acquire("project-lease")
    assert new.token > old.token and await fencing.current("project-lease") == new.token

    stale = await bookings.reserve_all([ws(2, T0, T0 + HOUR, "old")], fence=old)
    assert not stale.ok and stale.stale_token == new.token and "stale" in stale.reason
    assert await bookings.all_intervals("ws:W2") == []
    with pytest.raises(StaleFenceError):
        await bookings.release([ws(1, T0, T0 + HOUR, "old")], fence=old)
    assert len(await bookings.all_intervals("ws:W1")) == 1

    assert (await bookings.reserve_all([ws(2, T0, T0 + HOUR, "new")], fence=new)).ok
    assert await bookings.release([ws(1, T0, T0 + HOUR, "old")], fence=new) == 1
    # A plain tuple works too, and a token never issued (counter absent) counts from 0.
    assert (await bookings.reserve_all([ws(3, T0, T0 + 1, "n")], fence=("t:fence:none", 0))).ok
    assert Fence("k", 1) == ("k", 1)
