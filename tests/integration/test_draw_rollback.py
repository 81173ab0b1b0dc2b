"""A supplementary draw (a declined seat's replacement) cut short after its intent reached
`booking`, then recovered on restart: placed when its seats are still free
(`draw.recovered`), rolled back when another writer took one meanwhile
(`draw.rolled_back`: our bookings released, the allocation as it was before the draw, the
departure standing). First draws never reach `booking` (their bookings and placement are one
Lua call); a supplementary draw still books and stores in two steps.

Real Redis; the workflow in-process, the crash an exception at the fault point.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from coordinator import workflow as workflow_module
from coordinator.batch.executor import InProcessExecutor
from coordinator.domain.audit import generate_signing_key
from coordinator.draw_intents import pending_intents
from coordinator.province.generator import generate_province
from coordinator.store.bookings import BookingItem, Bookings, ws_resource
from coordinator.store.values import text
from coordinator.workflow import Workflow
from tests.integration.plan_coordinator import plan_coordinator, private_redis

DAY = date(2026, 3, 2)
EVENING_BEFORE = datetime(2026, 3, 1, 10, tzinfo=UTC)
SEED = hashlib.sha256(b"rollback").digest()
PROVINCE = generate_province(seed=21, day=DAY, cities=3, sites=6, workstations=120,
                             experts=1200, companies=200, projects=6)
KEY = b"r" * 32
SIGNER = generate_signing_key()


class Crash(RuntimeError):
    """Stands for the coordinator dying at a fault point."""


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[aioredis.Redis, Path]]:
    async with private_redis(tmp_path) as client:
        yield client, tmp_path


async def _coordinator(redis: aioredis.Redis, root: Path, *, fresh: bool) -> Workflow:
    return await plan_coordinator(redis, root, province=PROVINCE, now=EVENING_BEFORE,
                                  seed=SEED, key=KEY, signer=SIGNER, fresh=fresh,
                                  fallback_at_once=True)


async def _holders(redis: aioredis.Redis) -> dict[str, str]:
    """Every booking's holder -> its resource key."""
    found: dict[str, str] = {}
    async for raw in redis.scan_iter(match="bk:*"):
        name = text(raw)
        if not name.startswith("bk:~"):
            for member in await redis.zrange(name, 0, -1):
                found[BookingItem.from_member(name[3:], member).holder] = name[3:]
    return found


@pytest.mark.parametrize("taken", [False, True])
async def test_a_redraw_cut_short_at_booking_is_placed_or_rolled_back(
        store: tuple[aioredis.Redis, Path], monkeypatch: pytest.MonkeyPatch,
        taken: bool) -> None:
    redis, root = store
    first = await _coordinator(redis, root, fresh=True)
    summary = await first.plan_day(DAY, "plan", InProcessExecutor())
    assert summary["drawn"] >= 1
    project_id = next(o["project_id"] for o in summary["outcomes"] if o["outcome"] == "drawn")
    before = await first.allocations.read(project_id)
    assert before is not None and len(before.draw_ids) == 1
    declined = before.active_seats()[0]

    def dies_after_intent(name: str) -> None:
        if name == "after_intent":
            raise Crash(f"killed at {name}")

    monkeypatch.setattr(workflow_module, "fault_point", dies_after_intent)
    with pytest.raises(Crash):
        await first.reply_to_notice(declined.notice_id, False, "ill", "decline-1")
    monkeypatch.undo()
    [intent] = await pending_intents(redis, KEY)
    assert (intent.project_id, intent.phase) == (project_id, "booking")
    [new_seat] = intent.seat_records()
    ours = {new_seat.session_id, new_seat.expert_hold}
    assert not ours & set(await _holders(redis))  # cut short before anything was booked

    project = next(p for p in PROVINCE.projects if p.id == project_id)
    if taken:  # while the coordinator is down, another writer takes the new seat's station
        other = await Bookings(redis).reserve_all([BookingItem(
            ws_resource(new_seat.workstation_id), project.window.start_ts,
            project.window.end_ts, "someone-else")])
        assert other.ok

    restarted = await _coordinator(redis, root, fresh=False)  # recovery runs in load
    assert await pending_intents(redis, KEY) == []
    outcomes = [e for e in await restarted.audit.entries() if e.subject == project_id
                and e.kind in ("draw.recovered", "draw.rolled_back", "draw.abandoned")]
    assert [(e.kind, e.detail["draw_id"]) for e in outcomes] == [
        ("draw.rolled_back" if taken else "draw.recovered", intent.draw_id)]
    after = await restarted.allocations.read(project_id)
    assert after is not None
    holders = await _holders(redis)
    if taken:
        assert "someone-else" in str(outcomes[0].detail["reason"])
        # As before the draw: the first draw only, the departure standing, the new seat
        # nowhere, none of its bookings left behind.
        assert after.draw_ids == before.draw_ids
        assert [s.session_id for s in after.seats] == [s.session_id for s in before.seats]
        assert {s.session_id: s.status for s in after.seats}[declined.session_id] != \
            declined.status
        assert not ours & set(holders)
        assert holders["someone-else"] == f"ws:{new_seat.workstation_id}"
    else:
        assert outcomes[0].detail["from"] == "booking"
        assert after.draw_ids == [*before.draw_ids, intent.draw_id]
        assert new_seat.session_id in {s.session_id for s in after.active_seats()}
        assert holders[new_seat.session_id] == f"ws:{new_seat.workstation_id}"
        assert holders[new_seat.expert_hold] == f"ex:{new_seat.expert_id}"
        placed = [e for e in await restarted.audit.entries()
                  if e.kind == "draw.placed" and e.detail["draw_id"] == intent.draw_id]
        assert len(placed) == 1
    # Every active seat holds exactly its two bookings; the declined seat holds none.
    seats = {h for s in after.active_seats() for h in (s.session_id, s.expert_hold)}
    assert seats <= set(holders)
    assert declined.session_id not in holders and declined.expert_hold not in holders
    assert (await restarted.audit.verify()).ok
