"""Recoverable placement of a draw: an intent record, written before anything is booked.

Placing a draw cannot be written in one step: the booking sets (one Lua script), then the
allocation, sessions and agent commands (one MULTI), then notices and the audit. A coordinator
killed in between would leave bookings without an allocation, or a committed draw never placed.
So the workflow first writes an *intent* (`intent:<project>`, listed in the set `intents`),
sealed because it holds sign-in codes, and moves it through phases:

- `booking`: seats, sessions and commands are fixed; the bookings may or may not be in Redis.
- `placed`: rewritten in the MULTI that stores the allocation, so everything is stored;
  notices and `draw.placed` may be missing.
- `committed`: written by versions before first draws were committed in their placement's
  step; still taken forward when a store holds one (below).

First draws (single and a day plan's, coordinator/plan_chunks.py) write their intent straight
as `placed`: their commitment, bookings, placement and `draw.placed` are one Lua call
(store/place.lua), so `booking` is the phase of supplementary draws and of recovery
(`Workflow.place`).

It is deleted once `draw.placed` is recorded and the notices are sent: by the supplementary
draw's own MULTI, or, for first draws, off the draw's path by `AnnouncedIntents`. On start,
`recover` takes each pending intent forward, or back where forward is impossible, and audits
what it did:

- committed (earlier versions): `draw.committed` is appended if missing; the draw is re-run
  from its archive with the SAME seed and inputs (never a fresh seed: a crash must not become
  a way to redraw) and placed if its seats are still free and its window still ahead
  (`draw.recovered`), else `draw.abandoned` with the reason;
- booking: the same bookings are made again (idempotent: same holders) and the placement
  written (`draw.recovered`); if a seat was taken meanwhile, our bookings are released and the
  allocation is left as it was before the draw (`draw.rolled_back`);
- placed: notices are sent to the seats still active and `draw.placed` recorded unless the
  audit has it (`draw.recovered`): an intent still there may have had its notices sent or not.
  The schedule's pass does this step too (`finish_placed`), for a placement an outage (not a
  crash) left unannounced while the coordinator ran on.

Notices are at-least-once: a notice sent just before a crash may be sent again (same notice id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import commitment_from_json
from coordinator.domain.draw.outcome import DrawOutcome, outcome_from_json
from coordinator.domain.lifecycle import ProjectState
from coordinator.domain.model import Project
from coordinator.domain.registry_snapshot import record_anchor
from coordinator.errors import WorkflowError
from coordinator.store.bookings import BookingItem, expert_resource, ws_resource
from coordinator.store.errors import STORE_OR_SOCKET_UNAVAILABLE
from coordinator.store.intents import DrawIntent as DrawIntent
from coordinator.store.intents import drop_intent as drop_intent
from coordinator.store.intents import make_intent as make_intent
from coordinator.store.intents import pending_intent, pending_intents
from coordinator.store.intents import stage_drop as stage_drop
from coordinator.store.intents import stage_intent as stage_intent

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from coordinator.workflow import Workflow

log = logging.getLogger("evalgrid.coordinator")

FAULT_ENV = "EVALGRID_FAULT"


def booking_items(project: Project, seats: Sequence[SeatRecord]) -> list[BookingItem]:
    """The interval bookings of these seats: the workstation under the session, the expert
    under the seat's own opaque holder."""
    start, end = project.window.start_ts, project.window.end_ts
    items = []
    for seat in seats:
        items.append(BookingItem(ws_resource(seat.workstation_id), start, end, seat.session_id))
        items.append(BookingItem(expert_resource(seat.expert_id), start, end, seat.expert_hold))
    return items


DROP_RETRY_S = 1.0  # between tries of a drop the store refused (an outage)


class AnnouncedIntents:
    """Intents of first draws placed, audited and announced, dropped off the draw's path.

    place.lua audits `draw.placed` in the step that stores the placement, before the notices
    go out; the intent stays until they went, so that a crash in between has recovery send
    them (at least once). Dropping it is then the draw's last write: made here, in the
    background and batched, so a draw answers one fsynced round trip sooner. Until dropped,
    the intents count as in flight (`finish_placed` and the schedule's redraws leave them), and
    a new intent of the same project waits for its drop (`settle`): intents are per project.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.pending: set[str] = set()
        self.failing: Exception | None = None  # the last drop's outage, until one succeeds
        self._tries = 0  # drops tried so far
        self._failed_try = 0  # the number of the last try the store refused (an outage)
        self._task: asyncio.Task[None] | None = None

    def add(self, project_ids: Iterable[str]) -> None:
        self.pending.update(project_ids)
        if self.pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drop(), name="intent-drops")

    async def settle(self, project_ids: Iterable[str] | None = None) -> None:
        """Wait until these projects' (all, when None) pending drops are made; while the
        store is out, raise its error (as any call to it would) instead of waiting on. Only a
        try begun while this caller waits counts: one that failed before (the store may be
        back since) is not this caller's answer."""
        wanted = None if project_ids is None else set(project_ids)
        first = self._tries + 1  # the first try begun from now on
        while self.pending if wanted is None else self.pending & wanted:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._drop(), name="intent-drops")
            done, _ = await asyncio.wait({self._task}, timeout=DROP_RETRY_S)
            if done:
                self._task.result()  # a refusal that is no outage is the caller's, not a loop's
            elif self.failing is not None and self._failed_try >= first:
                raise self.failing

    async def _drop(self) -> None:
        while self.pending:
            ids = sorted(self.pending)  # those added meanwhile go in the next MULTI
            self._tries += 1
            this_try = self._tries
            try:
                pipe = self.redis.pipeline(transaction=True)
                for project_id in ids:
                    stage_drop(pipe, project_id)
                await pipe.execute()
            except STORE_OR_SOCKET_UNAVAILABLE as exc:
                log.warning("dropping %d announced intents: %s; trying again", len(ids), exc)
                self.failing, self._failed_try = exc, this_try
                await asyncio.sleep(DROP_RETRY_S)
                continue
            self.failing = None
            self.pending.difference_update(ids)


# --- test-only fault injection ----------------------------------------------------------------

_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """Test-only: with EVALGRID_FAULT="kill:NAME:N" in the environment, the process kills
    itself with SIGKILL the N-th time it reaches the point NAME (before_place, after_intent,
    after_reserve, after_pipeline: once per draw, or once per chunk of a day plan, where the
    chunk's intents are all in that phase; at before_place it has none). Never set it in
    production; unset, this is one lookup."""
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
        await _take(workflow, intent)
    return len(intents)


async def recover_project(workflow: Workflow, project_id: str) -> bool:
    """The project's pending intent (one an outage left while the coordinator ran on) taken
    forward or back, as a restart would; False when it has none. The caller holds the
    project's lock and knows no placement of it is in flight."""
    intent = await pending_intent(workflow.redis, workflow.master_key, project_id)
    if intent is None:
        return False
    await _take(workflow, intent)
    return True


async def _take(workflow: Workflow, intent: DrawIntent) -> None:
    project = await workflow.registry.project(intent.project_id)
    if project is None:  # cannot be: projects are never deleted; keep the intent for a person
        log.error("intent for unknown project %s kept", intent.project_id)
        return
    if intent.phase == "committed":
        await _rerun_committed(workflow, project, intent)
    elif intent.phase == "booking":
        await _forward_or_back(workflow, project, intent)
    else:
        await _finish(workflow, project, intent)


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

    archive = await workflow.draws.sealed_archive(intent.draw_id)
    if archive is None:
        await drop_intent(workflow.redis, project.id)
        await workflow.record("draw.abandoned", project.id, {
            "draw_id": intent.draw_id, "reason": "the draw's archive is missing"})
        return
    commitment = commitment_from_json(archive["commitment"])
    try:
        inputs = await workflow.draw_inputs(archive)
    except (KeyError, TypeError, ValueError) as exc:
        await drop_intent(workflow.redis, project.id)
        await workflow.record("draw.abandoned", project.id, {
            "draw_id": intent.draw_id, "reason": f"the draw's inputs cannot be read: {exc}"})
        return
    if not await _audited_since(workflow, intent, "draw.committed"):
        await workflow.record("draw.committed", project.id, {
            **archive["commitment"], "project_id": project.id, "plan_id": intent.plan_id,
            "candidates": inputs.candidate_count(), "venues": inputs.venue_count(),
            **({"seed_from": intent.seed_from} if intent.seed_from else {}),
            "recovered": True, **({} if not isinstance(archive.get("registry"), dict)
                                  else record_anchor(archive["registry"]))})
    # Re-run with the committed seed and inputs: the same draw, by construction.
    result = draw(inputs, bytes.fromhex(archive["seed"]))
    state = await workflow.registry.project_state(project.id) or ""
    reason = ""
    if not isinstance(result, DrawOutcome) or result != outcome_from_json(archive["result"]):
        reason = "the re-run does not give the archived result"
    elif state != ProjectState.REGISTERED:
        reason = f"the project is {state}, not awaiting its draw"
    elif project.window.end <= workflow.clock.now():
        reason = "the evaluation window is over"
    if reason:
        await drop_intent(workflow.redis, project.id)
        await workflow.record("draw.abandoned", project.id,
                              {"draw_id": intent.draw_id, "reason": reason})
        return
    assert isinstance(result, DrawOutcome)
    placed = PlacedDraw(draw_id=intent.draw_id, commitment=commitment, seats=result.seats,
                        outcome_digest=result.outcome_digest(),
                        archive_text=json.dumps(archive, sort_keys=True, separators=(",", ":")),
                        snapshot=inputs.snapshot)
    try:
        await workflow.place(project, Allocation(project_id=project.id), placed,
                             state_after=ProjectState.DRAWN.value, archive_stored=True)
    except WorkflowError as exc:  # a seat was taken meanwhile: _place booked nothing
        await workflow.record("draw.abandoned", project.id,
                              {"draw_id": intent.draw_id, "reason": exc.reason})
        return
    await workflow.record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "committed",
        "how": "re-run with the committed seed and inputs, then placed"})


async def _forward_or_back(workflow: Workflow, project: Project, intent: DrawIntent) -> None:
    seats = intent.seat_records()
    items = booking_items(project, seats)
    stored = await workflow.allocations.read(project.id)
    before = (Allocation.from_dict(intent.alloc_before) if intent.alloc_before is not None
              else Allocation(project_id=project.id))
    booked = await workflow.bookings.reserve_all(items)
    if not booked.ok:
        await workflow.bookings.release(items)  # exactly our holders, if any got in
        pipe = workflow.redis.pipeline(transaction=True)
        if intent.alloc_before is not None:  # the departures stand; the new seats do not
            workflow.allocations.stage_save(pipe, before)
        stage_drop(pipe, project.id)
        await pipe.execute()
        _resync(workflow, project, stored, before if intent.alloc_before is not None else None)
        await workflow.record("draw.rolled_back", project.id, {
            "draw_id": intent.draw_id, "reason": f"booking conflict: {booked.reason}"})
        return
    after = Allocation.from_dict(before.to_dict())
    after.draw_ids.append(intent.draw_id)
    after.seats.extend(seats)
    commands = intent.site_commands()
    await workflow.store_placement(project, after, seats, commands, intent)
    _resync(workflow, project, stored, after)
    await workflow.announce_placement(project, intent, seats, commands)
    await workflow.record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "booking",
        "how": "bookings made again with the same holders, placement written"})


async def _finish(workflow: Workflow, project: Project, intent: DrawIntent) -> None:
    seats, commands = intent.seat_records(), intent.site_commands()
    if await _audited_since(workflow, intent, "draw.placed"):  # audited with the placement
        # The notices may have gone before the crash: sent again to the seats still active
        # (a member who declined or was replaced meanwhile is not told again).
        stored = await workflow.allocations.read(project.id)
        active = set() if stored is None else {s.session_id for s in stored.active_seats()}
        workflow.send_notices(project, [s for s in seats if s.session_id in active],
                              [(site, c) for site, c in commands
                               if c.reserve.session_id in active])
        await workflow.record_batch([("draw.recovered", project.id, {
            "draw_id": intent.draw_id, "from": "placed",
            "how": "placement audited; notices sent (again, if they had gone)"})],
            after=lambda pipe: stage_drop(pipe, project.id))
        return
    await workflow.announce_placement(project, intent, seats, commands)
    await workflow.record("draw.recovered", project.id, {
        "draw_id": intent.draw_id, "from": "placed", "how": "notices sent, placement audited"})


def _resync(workflow: Workflow, project: Project, old: Allocation | None,
            new: Allocation | None) -> None:
    """The desk was loaded from the stored allocation; make it hold the new one instead."""
    workflow.allocations.forget(project.id)
    for seat in old.active_seats() if old else []:
        workflow.desk.unbook(project, seat.expert_id, seat.workstation_id)
    if new is not None:
        workflow.desk.book(project, [(s.expert_id, s.workstation_id)
                                     for s in new.active_seats()])
