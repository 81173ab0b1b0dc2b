"""Recoverable placement of a draw: an intent record, written before anything is booked.

Placing a draw cannot be written in one step: the booking sets (one Lua script), then the
allocation, sessions and agent commands (one MULTI), then notices and the audit. A coordinator
killed in between would leave bookings without an allocation, or a committed draw never placed.
So the workflow first writes an *intent* (`intent:<project>`, listed in the set `intents`),
sealed because it holds sign-in codes, and moves it through phases:

- `committed` (day plan): the draw's archive (seed, inputs, result) is stored; `draw.committed`
  is about to be audited or has been; nothing is booked.
- `booking`: seats, sessions and commands are fixed; the bookings may or may not be in Redis.
- `placed`: rewritten in the MULTI that stores the allocation, so everything is stored;
  notices and `draw.placed` may be missing.

First draws (single and a day plan's, coordinator/plan_chunks.py) go from `committed`
straight to `placed`: their bookings and placement are one Lua call (store/place.lua), so
`booking` is the phase of supplementary draws and of recovery (`Workflow._place`).

It is deleted once `draw.placed` is recorded. On start, `recover` takes each pending intent
forward, or back where forward is impossible, and audits what it did:

- committed: `draw.committed` is appended if missing; the draw is re-run from its archive with
  the SAME seed and inputs (never a fresh seed: a crash must not become a way to redraw) and
  placed if its seats are still free and its window still ahead (`draw.recovered`), else
  `draw.abandoned` with the reason;
- booking: the same bookings are made again (idempotent: same holders) and the placement
  written (`draw.recovered`); if a seat was taken meanwhile, our bookings are released and the
  allocation is left as it was before the draw (`draw.rolled_back`);
- placed: notices are sent and `draw.placed` recorded unless the audit has it (`draw.recovered`).
  The schedule's pass does this step too (`finish_placed`), for a placement an outage (not a
  crash) left unannounced while the coordinator ran on.

Notices are at-least-once: a notice sent just before a crash may be sent again (same notice id).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from evalgrid_wire.v1 import site_link_pb2

from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain.draw import (
    DrawOutcome,
    commitment_from_json,
    draw,
    outcome_from_json,
)
from coordinator.domain.lifecycle import ProjectState
from coordinator.domain.model import Project
from coordinator.domain.registry_snapshot import record_anchor
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.errors import WorkflowError
from coordinator.store.bookings import BookingItem, expert_resource, ws_resource
from coordinator.store.layout import ALLOC, DRAW, INTENT, INTENTS, PROJECT_STATE
from coordinator.store.values import text

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

log = logging.getLogger("evalgrid.coordinator")

PURPOSE = "intent"
FAULT_ENV = "EVALGRID_FAULT"


@dataclass
class DrawIntent:
    project_id: str
    draw_id: str
    phase: str  # committed | booking | placed
    audit_seq: int  # the audit head when the intent was written: later entries are searched
    state_after: str = ""  # the project state the placement sets (DRAWN for a first draw)
    plan_id: str = ""
    seed_from: dict[str, str] | None = None  # the day's seed round the draw's seed derives from
    parent: str = ""
    outcome_digest: str = ""
    alloc_before: dict[str, Any] | None = None  # the allocation the draw extends, departures in
    seats: list[dict[str, Any]] = field(default_factory=list)  # SeatRecord fields
    commands: list[list[str]] = field(default_factory=list)  # [site id, command hex]

    def seat_records(self) -> list[SeatRecord]:
        return [SeatRecord(**s) for s in self.seats]

    def site_commands(self) -> list[tuple[str, site_link_pb2.CoordinatorCommand]]:
        return [(site, site_link_pb2.CoordinatorCommand.FromString(bytes.fromhex(raw)))
                for site, raw in self.commands]


_SEAT_FIELDS = tuple(f.name for f in dataclass_fields(SeatRecord))  # looked up once, not per seat
_INTENT_FIELDS = tuple(f.name for f in dataclass_fields(DrawIntent))


def make_intent(project_id: str, draw_id: str, phase: str, audit_seq: int, *,
                seats: Sequence[SeatRecord] = (),
                commands: Sequence[tuple[str, site_link_pb2.CoordinatorCommand]] = (),
                **extra: Any) -> DrawIntent:
    return DrawIntent(project_id, draw_id, phase, audit_seq,
                      seats=[{name: getattr(s, name) for name in _SEAT_FIELDS}
                             for s in seats],  # flat: asdict's deep copies cost a plan
                      commands=[[site, c.SerializeToString().hex()] for site, c in commands],
                      **extra)


def stage_intent(pipe: Any, master_key: bytes, intent: DrawIntent) -> None:
    """Write (or move to its next phase) an intent inside the caller's MULTI."""
    # Shallow: asdict would deep-copy every seat of the intent, three times per draw.
    fields_ = {name: getattr(intent, name) for name in _INTENT_FIELDS}
    box = seal_json(master_key, intent.project_id, PURPOSE, fields_)
    pipe.set(INTENT.format(intent.project_id), box.to_json())
    pipe.sadd(INTENTS, intent.project_id)


def stage_drop(pipe: Any, project_id: str) -> None:
    pipe.delete(INTENT.format(project_id))
    pipe.srem(INTENTS, project_id)


async def drop_intent(redis: aioredis.Redis, project_id: str) -> None:
    pipe = redis.pipeline(transaction=True)
    stage_drop(pipe, project_id)
    await pipe.execute()


async def pending_intents(redis: aioredis.Redis, master_key: bytes) -> list[DrawIntent]:
    found = []
    for raw_id in sorted(await redis.smembers(INTENTS)):
        project_id = text(raw_id)
        raw = await redis.get(INTENT.format(project_id))
        if raw is None:  # listed, never written (cannot happen with one MULTI): forget it
            await redis.srem(INTENTS, project_id)
            continue
        data = unseal_json(master_key, SealedBox.from_json(text(raw)), project_id=project_id,
                           purpose=PURPOSE)
        found.append(DrawIntent(**data))
    return found


def booking_items(project: Project, seats: Sequence[SeatRecord]) -> list[BookingItem]:
    """The interval bookings of these seats: the workstation under the session, the expert
    under the seat's own opaque holder."""
    start, end = project.window.start_ts, project.window.end_ts
    items = []
    for seat in seats:
        items.append(BookingItem(ws_resource(seat.workstation_id), start, end, seat.session_id))
        items.append(BookingItem(expert_resource(seat.expert_id), start, end, seat.expert_hold))
    return items


# --- test-only fault injection ----------------------------------------------------------------

_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """Test-only: with EVALGRID_FAULT="kill:NAME:N" in the environment, the process kills
    itself with SIGKILL the N-th time it reaches the point NAME (after_commit, after_intent,
    after_reserve, after_pipeline: once per draw, or once per chunk of a day plan, where the
    chunk's intents are all in that phase). Never set it in production; unset, this is one
    lookup."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "kill" or not parts[2].isdigit():
        log.error("%s=%r ignored: expected kill:POINT:N", FAULT_ENV, spec)
        return
    if parts[1] != name:
        return
    _hits[name] += 1
    if _hits[name] == int(parts[2]):
        log.warning("fault injection: SIGKILL at %s #%s", name, parts[2])
        os.kill(os.getpid(), signal.SIGKILL)


# --- recovery ---------------------------------------------------------------------------------


async def recover(workflow: Workflow) -> int:
    """Take every pending intent forward (or back); returns how many there were."""
    intents = await pending_intents(workflow.redis, workflow.master_key)
    for intent in intents:
        project = await workflow.registry.project(intent.project_id)
        if project is None:  # cannot be: projects are never deleted; keep the intent for a person
            log.error("intent for unknown project %s kept", intent.project_id)
            continue
        if intent.phase == "committed":
            await _rerun_committed(workflow, project, intent)
        elif intent.phase == "booking":
            await _forward_or_back(workflow, project, intent)
        else:
            await _finish(workflow, project, intent)
    return len(intents)


async def finish_placed(workflow: Workflow, in_flight: set[str]) -> int:
    """Placements stored but never announced (the store went away before the notices and
    `draw.placed`), not being placed now: announced, as a restart would; returns how many."""
    done = 0
    for intent in await pending_intents(workflow.redis, workflow.master_key):
        if intent.phase != "placed" or intent.project_id in in_flight:
            continue
        project = await workflow.registry.project(intent.project_id)
        if project is not None:
            await _finish(workflow, project, intent)
            done += 1
    return done


async def _audited_since(workflow: Workflow, intent: DrawIntent, kind: str) -> bool:
    return any(e.kind == kind and e.subject == intent.project_id
               and e.detail.get("draw_id") == intent.draw_id
               for e in await workflow.audit.entries(after_seq=intent.audit_seq))


async def _rerun_committed(workflow: Workflow, project: Project, intent: DrawIntent) -> None:
    from coordinator.drawing import PlacedDraw

    raw = await workflow.redis.hget(DRAW.format(intent.draw_id), "sealed")
    archive = unseal_json(workflow.master_key, SealedBox.from_json(text(raw)),
                          project_id=intent.draw_id, purpose="draw") if raw else None
    if archive is None:
        await drop_intent(workflow.redis, project.id)
        await workflow._record("draw.abandoned", project.id, {
            "draw_id": intent.draw_id, "reason": "the draw's archive is missing"})
        return
    commitment = commitment_from_json(archive["commitment"])
    try:
        inputs = await workflow.draw_inputs(archive)
    except (KeyError, TypeError, ValueError) as exc:
        await drop_intent(workflow.redis, project.id)
        await workflow._record("draw.abandoned", project.id, {
            "draw_id": intent.draw_id, "reason": f"the draw's inputs cannot be read: {exc}"})
        return
    if not await _audited_since(workflow, intent, "draw.committed"):
        await workflow._record("draw.committed", project.id, {
            **archive["commitment"], "project_id": project.id, "plan_id": intent.plan_id,
            "candidates": inputs.candidate_count(), "venues": inputs.venue_count(),
            **({"seed_from": intent.seed_from} if intent.seed_from else {}),
            "recovered": True, **({} if not isinstance(archive.get("registry"), dict)
                                  else record_anchor(archive["registry"]))})
    # Re-run with the committed seed and inputs: the same draw, by construction.
    result = draw(inputs, bytes.fromhex(archive["seed"]))
    state = text(await workflow.redis.hget(PROJECT_STATE, project.id) or b"")
    reason = ""
    if not isinstance(result, DrawOutcome) or result != outcome_from_json(archive["result"]):
        reason = "the re-run does not give the archived result"
    elif state != ProjectState.REGISTERED:
        reason = f"the project is {state}, not awaiting its draw"
    elif project.window.end <= workflow.clock.now():
        reason = "the evaluation window is over"
    if reason:
        await drop_intent(workflow.redis, project.id)
        await workflow._record("draw.abandoned", project.id,
                               {"draw_id": intent.draw_id, "reason": reason})
        return
    assert isinstance(result, DrawOutcome)
    placed = PlacedDraw(draw_id=intent.draw_id, commitment=commitment, seats=result.seats,
                        outcome_digest=result.outcome_digest(),
                        archive_text=json.dumps(archive, sort_keys=True, separators=(",", ":")),
                        snapshot=inputs.snapshot)
    try:
        await workflow._place(project, Allocation(project_id=project.id), placed,
                              state_after=ProjectState.DRAWN.value, archive_stored=True)
    except WorkflowError as exc:  # a seat was taken meanwhile: _place booked nothing
        await workflow._record("draw.abandoned", project.id,
                               {"draw_id": intent.draw_id, "reason": exc.reason})
        return
    await workflow._record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "committed",
        "how": "re-run with the committed seed and inputs, then placed"})


async def _forward_or_back(workflow: Workflow, project: Project, intent: DrawIntent) -> None:
    seats = intent.seat_records()
    items = booking_items(project, seats)
    stored = await workflow._read_allocation(project.id)
    before = (Allocation.from_dict(intent.alloc_before) if intent.alloc_before is not None
              else Allocation(project_id=project.id))
    booked = await workflow.bookings.reserve_all(items)
    if not booked.ok:
        await workflow.bookings.release(items)  # exactly our holders, if any got in
        pipe = workflow.redis.pipeline(transaction=True)
        if intent.alloc_before is not None:  # the departures stand; the new seats do not
            pipe.set(ALLOC.format(project.id), workflow._seal_alloc(before))
        stage_drop(pipe, project.id)
        await pipe.execute()
        _resync(workflow, project, stored, before if intent.alloc_before is not None else None)
        await workflow._record("draw.rolled_back", project.id, {
            "draw_id": intent.draw_id, "reason": f"booking conflict: {booked.reason}"})
        return
    after = Allocation.from_dict(before.to_dict())
    after.draw_ids.append(intent.draw_id)
    after.seats.extend(seats)
    commands = intent.site_commands()
    await workflow._store_placement(project, after, seats, commands, intent)
    _resync(workflow, project, stored, after)
    await workflow._announce_placement(project, intent, seats, commands)
    await workflow._record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "booking",
        "how": "bookings made again with the same holders, placement written"})


async def _finish(workflow: Workflow, project: Project, intent: DrawIntent) -> None:
    seats = intent.seat_records()
    if await _audited_since(workflow, intent, "draw.placed"):
        await drop_intent(workflow.redis, project.id)
        return
    await workflow._announce_placement(project, intent, seats, intent.site_commands())
    await workflow._record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "placed", "how": "notices sent, placement audited"})


def _resync(workflow: Workflow, project: Project, old: Allocation | None,
            new: Allocation | None) -> None:
    """The desk was loaded from the stored allocation; make it hold the new one instead."""
    workflow._allocations.pop(project.id, None)
    for seat in old.active_seats() if old else []:
        workflow.desk.unbook(project, seat.expert_id, seat.workstation_id)
    if new is not None:
        workflow.desk.book(project, [(s.expert_id, s.workstation_id)
                                     for s in new.active_seats()])
