"""A single draw through the coordinator against a real Redis: its round trips to the store
are counted (latency at national size is mostly trips), and the writes it folds into the
trips of its commitment and placement keep their meaning: the seed label is taken with the
commitment, the reply is kept with the placement and its `draw.placed`."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from coordinator import plan_chunks
from coordinator.allocation import DEPARTURES
from coordinator.domain.audit import generate_signing_key
from coordinator.domain.day_plan import project_seed
from coordinator.domain.lifecycle import VALIDATE_ENV
from coordinator.domain.model import Window
from coordinator.draw_intents import finish_placed, make_intent, pending_intents, stage_intent
from coordinator.errors import WorkflowError
from coordinator.notifier import MemoryOutbox
from coordinator.province.generator import generate_province
from coordinator.store.audit_log import AuditLog
from coordinator.store.bookings import Fence
from coordinator.workflow import Workflow
from tests.integration.plan_coordinator import plan_coordinator, private_redis

DAY = date(2026, 3, 2)
EVENING_BEFORE = datetime(2026, 3, 1, 10, tzinfo=UTC)
PROVINCE = generate_province(seed=23, day=DAY, cities=3, sites=6, workstations=120,
                             experts=1200, companies=200, projects=6)
#: Store round trips of a single draw once its day is under way: its first reads (the conduct
#: skim with the project, its state, the request's reply and the seed label), and one step
#: for its commitment, placement and `draw.placed` (place.lua). The intent's drop follows
#: off the draw's path.
TRIPS = 2


class Crash(RuntimeError):
    """Stands for the coordinator dying inside the draw."""


@pytest_asyncio.fixture
async def workflow(tmp_path: Path) -> AsyncIterator[Workflow]:
    async with private_redis(tmp_path) as redis:
        yield await plan_coordinator(redis, tmp_path, province=PROVINCE, now=EVENING_BEFORE,
                                     seed=hashlib.sha256(b"trips").digest(), key=b"t" * 32,
                                     signer=generate_signing_key(), fresh=True,
                                     fallback_at_once=True)


def _projects() -> list[str]:
    return sorted(p.id for p in PROVINCE.projects)


async def test_a_single_draw_takes_its_trips_and_no_more(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, *_ = _projects()
    await workflow.draw(first, "r-first")  # the day's seed round fixed, its snapshot stored
    sent: list[int] = []
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True
                       ) -> None:
        sent.append(1)
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    monkeypatch.setenv(VALIDATE_ENV, "0")  # the tests' lifecycle check reads, production not
    summary = await workflow.draw(second, "r-second")
    on_path = len(sent)
    await workflow.announced.settle()
    monkeypatch.undo()
    assert summary.seats > 0
    assert on_path <= TRIPS and len(sent) == on_path + 1  # and the intent's drop, after it
    assert await workflow.redis.scard("intents") == 0
    # The reply went with `draw.placed`: the same request is answered from it.
    assert await workflow.draw(second, "r-second") == summary


async def test_a_draw_cut_short_before_its_commitment_leaves_its_label_to_the_next(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    project_id, warm = _projects()[:2]
    await workflow.draw(warm, "r-warm")  # the day's seed round fixed, its snapshot stored
    await workflow.announced.settle()
    before = await _stored(workflow)

    def dies_before_placing(name: str) -> None:
        if name == "before_place":
            raise Crash(f"killed at {name}")

    monkeypatch.setattr(plan_chunks, "fault_point", dies_before_placing)
    with pytest.raises(Crash):
        await workflow.draw(project_id, "r-1")
    monkeypatch.undo()
    assert await workflow.registry.project_state(project_id) == "registered"
    assert await workflow.replay("r-1") is None  # no reply kept: the request may come again
    # Nothing of the draw was written (its commitment goes in its placement's step) but the
    # conduct cursor the draw followed first.
    assert {k: v for k, v in (await _stored(workflow)).items()
            if not k.startswith(b"conduct:")} == {
        k: v for k, v in before.items() if not k.startswith(b"conduct:")}
    summary = await workflow.draw(project_id, "r-2")
    (committed,) = [e for e in await workflow.audit.entries()
                    if e.kind == "draw.committed" and e.subject == project_id]
    # The label the cut draw used was not taken: the draw ran again under it (the same seed).
    assert committed.detail["seed_from"]["label"] == project_id
    assert committed.detail["seed_hash"] == summary.commitment
    assert await workflow.seed_shares.first_label(DAY, project_id) == f"{project_id}/r1"


async def test_the_label_is_read_under_the_stored_window_s_day_not_the_desk_s(
        workflow: Workflow) -> None:
    """The first trip reads the label under the day of the window the desk holds; the stored
    project decides: its window in another day, the label is read again under that day."""
    project_id = _projects()[1]
    await workflow.seed_shares.take_first_labels(DAY, [project_id])  # its label: id/r1
    held = workflow.desk.project(project_id)
    assert held is not None
    later = timedelta(days=1)  # under that day the label would be the bare id
    workflow.desk.add_project(replace(held, window=Window(held.window.start + later,
                                                         held.window.end + later)))
    summary = await workflow.draw(project_id, "r-moved")
    (committed,) = [e for e in await workflow.audit.entries()
                    if e.kind == "draw.committed" and e.subject == project_id]
    assert committed.detail["seed_from"] == {"day": DAY.isoformat(),
                                             "label": f"{project_id}/r1"}
    assert committed.detail["seed_hash"] == summary.commitment


async def test_a_resent_draw_is_answered_while_a_plan_holds_the_draw_lock(
        workflow: Workflow) -> None:
    project_id = _projects()[2]
    summary = await workflow.draw(project_id, "r-once")
    async with workflow.draw_lock:  # as a day plan does, for minutes
        again = await asyncio.wait_for(workflow.draw(project_id, "r-once"), timeout=10)
    assert again == summary


async def test_a_draw_with_no_skim_to_ride_reads_in_a_trip_of_its_own(
        workflow: Workflow) -> None:
    """A follower's first follow runs no skim (it reads the stored cursor in a transaction):
    the draw's first reads then go in a trip of their own, with the same meaning."""
    project_id = _projects()[3]
    workflow.conduct_follower._stored = None
    summary = await workflow.draw(project_id, "r-own")
    assert workflow.conduct_follower.also_replies is None  # no skim carried the reads
    workflow.conduct_follower._stored = None
    assert await workflow.draw(project_id, "r-own") == summary  # the reply kept, read back
    workflow.conduct_follower._stored = None
    with pytest.raises(WorkflowError, match="not awaiting a draw"):
        await workflow.draw(project_id, "r-other")  # its state read
    with pytest.raises(WorkflowError, match="no project"):
        await workflow.draw("P-nowhere", "r-none")


async def _stored(workflow: Workflow) -> dict[bytes, object]:
    """Every key's value, by content: a hash's DUMP bytes follow its table's iteration order,
    which a read moves on Redis 7 (incremental rehashing), so DUMP is no test of "unwritten"."""
    redis, values = workflow.redis, {}
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        values[key] = (await redis.hgetall(key) if kind == "hash" else
                       await redis.smembers(key) if kind == "set" else
                       await redis.dump(key))
    return values


async def test_a_refused_draw_writes_nothing_though_the_trail_has_following_due(
        workflow: Workflow) -> None:
    """Its first reads ride the conduct skim, but the trail is followed (a write) only once
    the draw goes on: a request for no project, or one drawn already, changes no key."""
    project_id = _projects()[4]
    await workflow.draw(project_id, "r-drawn")  # its entries are past the stored cursor
    before = await _stored(workflow)
    for asked, reason in (("P-nowhere", "no project"), (project_id, "not awaiting a draw")):
        workflow.conduct_follower._stored = None  # as after a restart: following is due
        with pytest.raises(WorkflowError, match=reason):
            await workflow.draw(asked, f"r-{asked}")
    assert await _stored(workflow) == before
    await workflow.conduct_follower.follow()  # the following was due: it writes
    assert await _stored(workflow) != before


async def test_a_draw_killed_between_its_audited_placement_and_its_notices_has_them_sent(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`draw.placed` lands with the placement, before the notices: the intent stays until
    they went, so the restart sends them (to the seats still active) and audits that."""
    project_id = _projects()[5]

    def dies_after_placement(name: str) -> None:
        if name == "after_pipeline":
            raise Crash(f"killed at {name}")

    monkeypatch.setattr(plan_chunks, "fault_point", dies_after_placement)
    with pytest.raises(Crash):
        await workflow.draw(project_id, "r-killed")
    monkeypatch.undo()
    outbox = workflow.notifier
    assert isinstance(outbox, MemoryOutbox) and outbox.notices == []
    [intent] = await pending_intents(workflow.redis, b"t" * 32)
    assert (intent.project_id, intent.phase) == (project_id, "placed")
    alloc = await workflow.allocations.read(project_id)
    assert alloc is not None
    gone, *kept = alloc.seats  # a member who left meanwhile is not told again
    gone.status = DEPARTURES["declined"]
    await workflow.allocations.save(alloc)

    restarted = await plan_coordinator(
        workflow.redis, tmp_path, province=PROVINCE, now=EVENING_BEFORE,
        seed=hashlib.sha256(b"trips").digest(), key=b"t" * 32,
        signer=workflow.audit._key, fresh=False)
    assert await pending_intents(workflow.redis, b"t" * 32) == []
    sent = restarted.notifier
    assert isinstance(sent, MemoryOutbox)
    assert sorted(n.notice_id for n in sent.notices) == sorted(s.notice_id for s in kept)
    entries = [e for e in await restarted.audit.entries() if e.subject == project_id]
    assert [e.kind for e in entries if e.kind in ("draw.placed", "draw.recovered")] == [
        "draw.placed", "draw.recovered"]  # placed once; the restart says what it did
    assert (await restarted.audit.verify()).ok


async def test_another_writer_moving_the_chain_under_a_draw_costs_it_a_retry_only(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commitment's entry must land ahead of the placement: with the head moved between
    signing and placing, place.lua writes nothing and the draw is placed on the new head."""
    project_id = _projects()[2]
    other = AuditLog(workflow.redis, signing_key=workflow.audit._key, clock=workflow.clock)
    place = workflow.placements.place
    calls: list[int] = []

    async def moved_first(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await other.append("site.lost", "S-elsewhere", {})
        return await place(*args, **kw)

    monkeypatch.setattr(workflow.placements, "place", moved_first)
    summary = await workflow.draw(project_id, "r-moved-head")
    assert len(calls) == 2 and summary.seats > 0
    kinds = [(e.kind, e.subject) for e in await workflow.audit.entries()
             if e.subject in (project_id, "S-elsewhere")]
    assert kinds == [("site.lost", "S-elsewhere"), ("draw.committed", project_id),
                     ("draw.placed", project_id)]
    assert (await workflow.audit.verify()).ok


async def test_a_deposed_leader_s_draw_books_nothing_and_its_commitment_stands(
        workflow: Workflow) -> None:
    """A stale fencing token (another coordinator leads now): place.lua refuses the whole
    step, commitment included; the draw's commitment is then written and audited with the
    refusal, as for a seat taken: its seed is spent (label taken), nothing is booked."""
    warm, project_id = _projects()[:2]
    await workflow.draw(warm, "r-warm")
    await workflow.redis.set("t:leader", 7)
    workflow.bookings.default_fence = Fence("t:leader", 6)
    with pytest.raises(WorkflowError, match="booking conflict"):
        await workflow.draw(project_id, "r-deposed")
    assert await workflow.registry.project_state(project_id) == "registered"
    assert await workflow.allocations.read(project_id) is None
    assert await workflow.redis.scard("intents") == 0
    entries = [e for e in await workflow.audit.entries() if e.subject == project_id]
    assert [e.kind for e in entries] == ["draw.committed", "draw.booking_conflict"]
    assert "stale fencing token" in entries[1].detail["detail"]
    assert await workflow.draws.sealed_archive(entries[0].detail["draw_id"]) is not None
    assert await workflow.seed_shares.first_label(DAY, project_id) == f"{project_id}/r1"
    assert (await workflow.audit.verify()).ok


async def test_a_committed_intent_an_earlier_version_left_is_taken_forward(
        workflow: Workflow, tmp_path: Path) -> None:
    """Before first draws were committed in their placement's step, a crash could leave an
    intent `committed` (archive stored, `draw.committed` audited, nothing booked): a store
    upgraded with one is re-run at start with the committed seed and placed, as then."""
    warm, project_id = _projects()[:2]
    await workflow.draw(warm, "r-warm")  # the day's seed round fixed
    project = await workflow.registry.project(project_id)
    assert project is not None
    day_seed, _ = await workflow.seed_shares.day_seed(DAY)
    label = await workflow.seed_shares.first_label(DAY, project_id)
    prepared = workflow.desk.prepare(project, workflow.clock.now(),
                                     workflow.down_workstations(),
                                     seed=project_seed(day_seed, label))
    result = workflow.desk.run(prepared)
    assert not isinstance(result, str)
    await workflow.store_snapshot(result)
    seq = await workflow.audit.known_seq()
    key = workflow.master_key

    def old_phase_one(pipe: Any) -> None:  # as the earlier version's commitment MULTI wrote
        workflow.seed_shares.stage_take_first_labels(pipe, DAY, [project_id])
        workflow.draws.stage_archive(pipe, result.draw_id, result.archive_fields(key))
        stage_intent(pipe, key, make_intent(project_id, result.draw_id, "committed", seq,
                                            state_after="drawn"))

    await workflow.record_batch([("draw.committed", project_id,
                                  prepared.commitment_record())], before=old_phase_one)

    restarted = await plan_coordinator(
        workflow.redis, tmp_path, province=PROVINCE, now=EVENING_BEFORE,
        seed=hashlib.sha256(b"trips").digest(), key=b"t" * 32,
        signer=workflow.audit._key, fresh=False)
    await restarted.announced.settle()
    assert await pending_intents(workflow.redis, b"t" * 32) == []
    alloc = await restarted.allocations.read(project_id)
    assert alloc is not None and alloc.draw_ids == [result.draw_id]  # the same draw, placed
    assert sorted(s.expert_id for s in alloc.seats) == sorted(s.expert_id
                                                               for s in result.seats)
    assert await restarted.registry.project_state(project_id) == "drawn"
    kinds = [e.kind for e in await restarted.audit.entries() if e.subject == project_id]
    assert kinds.count("draw.committed") == 1 and "draw.recovered" in kinds
    assert (await restarted.audit.verify()).ok


class _Held:
    """The store for the intents' drops, each drop's MULTI held until `go` is set."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis, self.go = redis, asyncio.Event()

    def pipeline(self, transaction: bool = True) -> Any:
        pipe, go = self.redis.pipeline(transaction=transaction), self.go

        class HeldPipeline:
            def __getattr__(self, name: str) -> Any:
                return getattr(pipe, name)

            async def execute(self) -> Any:
                await go.wait()
                return await pipe.execute()

        return HeldPipeline()


async def test_an_announced_draw_s_intent_is_nobody_else_s_until_it_is_dropped(
        workflow: Workflow) -> None:
    """The drop held up: the schedule does not announce the draw again, and a member's
    decline, whose replacement writes the project's next intent, waits for the drop instead
    of having it delete the new intent."""
    project_id = _projects()[0]
    held = _Held(workflow.redis)
    workflow.announced.redis = held  # type: ignore[assignment]
    await workflow.draw(project_id, "r-held")
    outbox = workflow.notifier
    assert isinstance(outbox, MemoryOutbox)
    notified = len(outbox.notices)
    assert await finish_placed(workflow, workflow.in_flight()) == 0
    assert len(outbox.notices) == notified
    assert [i.phase for i in await pending_intents(workflow.redis, b"t" * 32)] == ["placed"]

    alloc = await workflow.allocations.read(project_id)
    assert alloc is not None
    declining = alloc.seats[0]
    reply = asyncio.create_task(
        workflow.reply_to_notice(declining.notice_id, False, "ill", "r-decline"))
    await asyncio.sleep(0.5)
    assert not reply.done()  # the replacement waits for the drop
    held.go.set()
    await asyncio.wait_for(reply, timeout=30)
    await workflow.announced.settle()
    assert await pending_intents(workflow.redis, b"t" * 32) == []
    after = await workflow.allocations.read(project_id)
    assert after is not None and len(after.draw_ids) == 2  # the replacement placed
    assert len(outbox.notices) == notified + 1


async def test_the_placement_s_audit_entry_reaches_the_live_watchers(
        workflow: Workflow) -> None:
    """`draw.placed` lands by place.lua, not by `record`: the consoles' live feed has it."""
    project_id = _projects()[1]
    seen: list[tuple[str, str]] = []

    async def watching() -> None:
        async for entry in workflow.watch():
            seen.append((entry.kind, entry.subject))
            if entry.kind == "draw.placed":
                return

    watcher = asyncio.create_task(watching())
    await asyncio.sleep(0)  # registered before the draw
    await workflow.draw(project_id, "r-watched")
    await asyncio.wait_for(watcher, timeout=10)
    assert seen[-2:] == [("draw.committed", project_id), ("draw.placed", project_id)]
