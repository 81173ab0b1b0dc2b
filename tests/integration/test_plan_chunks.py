"""A day plan placed in chunks (coordinator/plan_chunks.py) is the plan placed draw by draw,
and a coordinator that stops between a chunk's phases resumes it without booking anyone twice.

Real Redis; the workflow in-process (as the coordinator runs it) with a fixed plan seed, so
two plans of the same province can be compared draw for draw.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from coordinator import plan_chunks
from coordinator.batch.executor import InProcessExecutor
from coordinator.domain.audit import generate_signing_key
from coordinator.domain.day_plan import plan_order
from coordinator.province.generator import generate_province
from coordinator.store.bookings import BookingItem
from coordinator.store.log_compaction import LogCompaction
from coordinator.store.values import text
from coordinator.workflow import Workflow, WorkflowError
from tests.integration.plan_coordinator import plan_coordinator, private_redis

DAY = date(2026, 3, 2)
EVENING_BEFORE = datetime(2026, 3, 1, 10, tzinfo=UTC)
SEED = hashlib.sha256(b"chunks").digest()
PROVINCE = generate_province(seed=21, day=DAY, cities=3, sites=6, workstations=120,
                             experts=1200, companies=200, projects=20)
KEY = b"m" * 32
SIGNER = generate_signing_key()

Picture = dict[str, tuple[str, list[tuple[str, str]]]]  # project: (draw id, seats)


class Crash(RuntimeError):
    """Stands for the coordinator dying at a fault point."""


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[aioredis.Redis, Path]]:
    async with private_redis(tmp_path) as client:
        yield client, tmp_path


async def _coordinator(redis: aioredis.Redis, root: Path, *, fresh: bool) -> Workflow:
    return await plan_coordinator(redis, root, province=PROVINCE, now=EVENING_BEFORE,
                                  seed=SEED, key=KEY, signer=SIGNER, fresh=fresh)


async def _picture(workflow: Workflow) -> Picture:
    """Each drawn project's draw id and seats, from the sealed allocations in Redis."""
    found: Picture = {}
    for project in PROVINCE.projects:
        alloc = await workflow.allocations.read(project.id)
        if alloc is not None:
            assert len(alloc.draw_ids) == 1, project.id
            found[project.id] = (alloc.draw_ids[0], sorted(
                (s.expert_id, s.workstation_id) for s in alloc.active_seats()))
    return found


async def _no_double_booking(workflow: Workflow) -> None:
    """Every booking belongs to a seat and every seat holds its two; nothing overlaps."""
    redis = workflow.redis
    holders: set[str] = set()
    for project in PROVINCE.projects:
        alloc = await workflow.allocations.read(project.id)
        for seat in alloc.active_seats() if alloc else []:
            holders |= {seat.session_id, seat.expert_hold}
    booked: list[BookingItem] = []
    async for raw in redis.scan_iter(match="bk:*"):
        name = text(raw)
        if name.startswith("bk:~"):
            continue
        items = sorted((BookingItem.from_member(name[3:], m) for m in
                        await redis.zrange(name, 0, -1)), key=lambda b: b.start)
        for a, b in itertools.pairwise(items):
            assert not a.overlaps(b.start, b.end), (a, b)
        booked += items
    assert {b.holder for b in booked} == holders and len(booked) == len(holders)
    assert await redis.scard("intents") == 0
    placed = Counter(e.subject for e in await workflow.audit.entries()
                     if e.kind == "draw.placed")
    assert placed and set(placed.values()) == {1}  # each project placed once


async def _plan(workflow: Workflow, rid: str) -> dict[str, Any]:
    return await workflow.plan_day(DAY, rid, InProcessExecutor())


async def _unchunked(redis: aioredis.Redis, root: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Picture:
    with monkeypatch.context() as patch:
        patch.setattr(plan_chunks, "CHUNK_MAX", 1)  # one draw per chunk: draw by draw
        sizes = plan_chunks.chunk_sizes()
        assert [next(sizes) for _ in range(3)] == [1, 1, 1]
        workflow = await _coordinator(redis, root, fresh=True)
        summary = await _plan(workflow, "one-by-one")
    assert summary["drawn"] >= 10 and summary["conflicts"] == 0
    return await _picture(workflow)


async def test_a_chunked_plan_is_the_plan_drawn_one_by_one(
        store: tuple[aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    redis, root = store
    reference = await _unchunked(redis, root, monkeypatch)
    await redis.flushall()

    sizes: list[int] = []
    compaction: set[str] = set()  # the store's log rewrite setting as each chunk is placed
    place = plan_chunks.place_chunk

    async def counting(workflow: Workflow, chunk: Any, plan_id: str) -> list[str]:
        sizes.append(len(chunk))
        compaction.add(await LogCompaction(redis).setting())
        return await place(workflow, chunk, plan_id)

    monkeypatch.setattr("coordinator.day_plan.place_chunk", counting)
    workflow = await _coordinator(redis, root, fresh=True)
    summary = await _plan(workflow, "chunked")
    assert sizes == [1, 2, 4, 8, 5]  # growing chunks over the 20 projects
    assert compaction == {"0"}  # held off throughout the plan, given back after it
    assert await LogCompaction(redis).setting() == "100"
    assert await _picture(workflow) == reference
    ids = [o["project_id"] for o in summary["outcomes"]]
    assert ids == [p.id for p in plan_order(p for p in PROVINCE.projects if p.id in ids)]
    await _no_double_booking(workflow)
    # Each drawn project: draw.committed before draw.placed, the chain intact.
    entries = await workflow.audit.entries()
    seen: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        if entry.kind in ("draw.committed", "draw.placed"):
            seen[entry.subject].append(entry.kind)
    assert {tuple(kinds) for kinds in seen.values() if "draw.placed" in kinds} == {
        ("draw.committed", "draw.placed")}
    assert (await workflow.audit.verify()).ok
    # The conduct follower is at the trail's end (one behind if it audited a change of
    # bars): the next single draw does not read the plan's entries.
    read: list[int] = []
    entries_with = workflow.audit.entries_with

    async def reading(after_seq: int = 0, also: Any = None) -> Any:
        found, replies = await entries_with(after_seq, also)
        read.append(len(found))
        return found, replies

    monkeypatch.setattr(workflow.audit, "entries_with", reading)
    assert await workflow.conduct_follower.follow() is None
    assert read and sum(read) <= 1


@pytest.mark.parametrize("point", ["before_place", "after_pipeline"])
async def test_a_plan_stopped_inside_a_chunk_resumes_without_double_booking(
        store: tuple[aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch,
        point: str) -> None:
    redis, root = store
    reference = await _unchunked(redis, root, monkeypatch)
    await redis.flushall()

    hits: Counter[str] = Counter()

    def dies_in_third_chunk(name: str) -> None:
        hits[name] += 1
        if name == point and hits[name] == 3:  # the chunk of 4 draws
            raise Crash(f"killed at {name}")

    patched: Callable[[str], None] = dies_in_third_chunk
    monkeypatch.setattr(plan_chunks, "fault_point", patched)
    doomed = await _coordinator(redis, root, fresh=True)
    with pytest.raises(WorkflowError, match="killed at"):
        await _plan(doomed, "first")
    # A plan that fails gives the log compaction back too (SIGKILL: tests/store).
    assert await LogCompaction(redis).setting() == "100"
    # The whole chunk was cut short: placed (intents to announce) or not even committed.
    cut = 4 if point == "after_pipeline" else 0
    assert await redis.scard("intents") == cut
    committed = [e for e in await doomed.audit.entries() if e.kind == "draw.committed"]
    assert len(committed) == 1 + 2 + cut  # the chunks of 1 and 2 before it
    monkeypatch.undo()

    restarted = await _coordinator(redis, root, fresh=False)  # recovery takes them forward
    recovered = [e for e in await restarted.audit.entries() if e.kind.startswith("draw.")
                 and e.kind in ("draw.recovered", "draw.rolled_back", "draw.abandoned")]
    assert [e.kind for e in recovered] == ["draw.recovered"] * cut
    summary = await _plan(restarted, "second")
    assert summary["conflicts"] == 0
    # The same draws, the same seats: stopping is no way to redraw anyone.
    assert await _picture(restarted) == reference
    await _no_double_booking(restarted)
    assert (await restarted.audit.verify()).ok
