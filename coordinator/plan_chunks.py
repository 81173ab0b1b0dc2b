"""First draws placed in chunks: a day plan's, and a single draw's as a chunk of one.

Placing draws one by one costs about a dozen fsynced round trips per draw. Here a chunk of
draws is committed, booked, stored and audited in one Lua call (store/place.lua), one round
trip for the whole chunk:

- first the chunk's commitments: the draws' archives (and a single draw's seed label) and
  the chunk's audit entries (`draw.committed`, and `draw.refused` / `draw.starved` of the
  draws that place nothing), signed ahead on the chain's head; they land ahead of every
  placement or nothing is written (another writer moved the head: built again and retried);
- then each draw booked all or none together with its placement (allocation, sessions,
  commands, state, intent `placed`; the commands take their fences as they are queued) and
  its `draw.placed`: no state lies between committed, booked, stored and audited.
Fault points `before_place` and `after_pipeline` (a SIGKILL there in the crash tests). Then
the notices; then, off the draw's path, the intents dropped (`AnnouncedIntents`). Only a draw
the store refused (`draw.booking_conflict`) or a chain another writer moved between two of
the chunk's entries (`draw.placed` appended after it) costs a trip more.

A crash leaves each draw of the chunk either not committed at all (nothing of it stored: the
next plan or draw draws it again with the same seed, from the day's seed round and its label)
or `placed` (recovery sends the notices, again where they had gone, and audits). Chunks grow
from 1 draw to CHUNK_MAX, so a plan's first draws are placed at once and an early crash leaves
little pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from evalgrid_wire.v1 import site_link_pb2

from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain.lifecycle import ProjectState
from coordinator.domain.model import Project
from coordinator.draw_intents import (
    DrawIntent,
    booking_items,
    fault_point,
    make_intent,
)
from coordinator.errors import WorkflowError
from coordinator.store.audit_log import AuditConflictError
from coordinator.store.bookings import BookingItem
from coordinator.store.placements import ChainMoved, Writes

if TYPE_CHECKING:
    from coordinator.day_plan import PlannedDraw
    from coordinator.drawing import CommittedDraw, PlacedDraw, PreparedDraw
    from coordinator.workflow import Workflow

FirstDraw = tuple[Project, "PreparedDraw | CommittedDraw", "PlacedDraw"]

CHUNK_MAX = 64  # draws placed together at most (a chunk's step stays a few MB)
MOVED_ATTEMPTS = 8  # placements tried while another writer keeps moving the audit chain


def chunk_sizes() -> Iterator[int]:
    """1, 2, 4, ... CHUNK_MAX, then CHUNK_MAX for ever."""
    size = 1
    while True:
        yield size
        size = min(size * 2, CHUNK_MAX)


async def place_chunk(workflow: Workflow, chunk: Sequence[PlannedDraw], plan_id: str
                      ) -> list[str]:
    """Commit and place a chunk of the plan's draws; per draw, in order: "drawn", "refused",
    "starved", "conflict" (Redis disagreed with the picture: nothing booked) or "skipped"
    (no longer awaiting a draw)."""
    async with contextlib.AsyncExitStack() as stack:
        for project_id in sorted({p.project.id for p in chunk}):
            await stack.enter_async_context(workflow.project_lock(project_id))
        return await _place_locked(workflow, chunk, plan_id)


async def _place_locked(workflow: Workflow, chunk: Sequence[PlannedDraw], plan_id: str
                        ) -> list[str]:
    states = await workflow.registry.project_states_of([p.project.id for p in chunk])
    outcome: dict[str, str] = {}
    records: list[tuple[str, str, dict[str, Any]]] = []
    drawn: list[FirstDraw] = []
    for planned, state in zip(chunk, states, strict=True):
        project_id, o = planned.project.id, planned.outcome
        if state != ProjectState.REGISTERED:
            outcome[project_id] = "skipped"
        elif planned.prepared is None:
            records.append(("draw.refused", project_id, {"reason": o.reason,
                                                         "plan_id": plan_id}))
            outcome[project_id] = "refused"
        elif planned.result is None:
            records.append(("draw.committed", project_id,
                            {**planned.prepared.commitment_record(), "plan_id": plan_id}))
            records.append(("draw.starved", project_id, {"reason": o.reason,
                                                         "plan_id": plan_id}))
            outcome[project_id] = "starved"
        else:
            drawn.append((planned.project, planned.prepared, planned.result))
    outcome |= await place_first_draws(workflow, drawn, plan_id, records)
    return [outcome[p.project.id] for p in chunk]


#: The caller's own writes, staged on a phase's MULTI.
Staged = Callable[[Any], None]


async def place_first_draws(workflow: Workflow, drawn: Sequence[FirstDraw], plan_id: str = "",
                            records: Sequence[tuple[str, str, dict[str, Any]]] = (), *,
                            seed_from: dict[str, str] | None = None,
                            with_commit: Staged | None = None,
                            with_placed: Staged | None = None) -> dict[str, str]:
    """Commit and place first draws (callers hold their projects' locks and checked that
    they await their draw); `records` are audited in the commit batch, before the draws'.
    Per project: "drawn", or "conflict" (Redis disagreed with the picture: nothing booked,
    audited as `draw.booking_conflict`). `with_commit` stages the caller's writes in phase
    1's MULTI, `with_placed` (a single draw's only) with the draw's placement in phase 2,
    made when it is placed (a single draw's seed label taken, its reply kept: no trip of
    their own)."""
    ids = {project.id for project, _, _ in drawn}
    if with_placed is not None and len(drawn) > 1:
        raise ValueError("with_placed is staged with a single draw's placement")
    workflow.placing(ids)  # the schedule's `finish_placed` leaves them to us
    try:
        return await _place_first_draws(workflow, drawn, plan_id, records, seed_from,
                                        with_commit, with_placed)
    finally:
        workflow.placing(ids, done=True)


async def _place_first_draws(workflow: Workflow, drawn: Sequence[FirstDraw], plan_id: str,
                             records: Sequence[tuple[str, str, dict[str, Any]]],
                             seed_from: dict[str, str] | None, with_commit: Staged | None,
                             with_placed: Staged | None) -> dict[str, str]:
    key = workflow.master_key
    seq = await workflow.audit.known_seq()
    batch = list(records)
    for project, prepared, result in drawn:
        await workflow.store_snapshot(result)  # once per day snapshot: seldom a trip
        record = prepared.commitment_record()
        if plan_id:
            record["plan_id"] = plan_id
        if seed_from:  # a single draw's seed round (the plan's draws name their plan)
            record["seed_from"] = seed_from
        batch.append(("draw.committed", project.id, record))

    def commit(pipe: Any) -> None:  # the commitments' writes, ahead of every placement
        if with_commit is not None:
            with_commit(pipe)
        for _, _, result in drawn:
            workflow.draws.stage_archive(pipe, result.draw_id, result.archive_fields(key))

    if not drawn:
        await workflow.record_batch(batch, before=with_commit)
        return {}

    # Each draw booked and stored together, or neither, after the chunk's commitments
    staged: list[tuple[Project, Allocation, list[SeatRecord],
                       list[tuple[str, site_link_pb2.CoordinatorCommand]], DrawIntent]] = []
    draws: list[tuple[list[BookingItem], Writes]] = []
    for project, _, result in drawn:
        seats, commands = workflow.seats_and_commands(project, result)
        intent = make_intent(project.id, result.draw_id, "booking", seq, seats=seats,
                             commands=commands, state_after="drawn", plan_id=plan_id,
                             parent=result.commitment.parent or "",
                             outcome_digest=result.outcome_digest)
        alloc = Allocation(project_id=project.id, draw_ids=[result.draw_id], seats=list(seats))
        writes = Writes()
        workflow.stage_placement(writes, project, alloc, seats, commands, intent)  # `placed`
        if with_placed is not None:  # a single draw: the chunk is placed when this draw is
            with_placed(writes)
        staged.append((project, alloc, seats, commands, intent))
        draws.append((booking_items(project, seats), writes))
    prefix = Writes()
    commit(prefix)
    # ... with its `draw.placed`, signed here on the chain's head and appended in that step
    placed = [("draw.placed", project.id, workflow.placed_record(intent, seats))
              for project, _, seats, _, intent in staged]
    fault_point("before_place")
    for attempt in range(MOVED_ATTEMPTS):
        try:
            async with workflow.chained(batch + placed) as chained:
                booked = await workflow.placements.place(draws, chained=chained,
                                                         prefix=prefix,
                                                         prefix_entries=len(batch))
            break
        except ChainMoved:  # another writer appended meanwhile: nothing written; build again
            if attempt + 1 == MOVED_ATTEMPTS:
                raise AuditConflictError(
                    f"the audit chain's head kept moving under {len(drawn)} draw(s)' "
                    "commitments; nothing of them was stored") from None
    fault_point("after_pipeline")

    # 3. notices; the audit of what the store refused (or of a chain another writer moved)
    outcome: dict[str, str] = {}
    # A stale fence (another coordinator leads) refused the whole step, the commitments too:
    # they are written and audited here with the refusal, as for a draw whose seat was taken.
    stale = any(reply.stale_token is not None for reply in booked)
    late: list[tuple[str, str, dict[str, Any]]] = list(batch) if stale else []
    for (project, alloc, seats, commands, _), entry, reply in zip(
            staged, placed, booked, strict=True):
        if not reply.ok:
            late.append(("draw.booking_conflict", project.id, {"detail": reply.reason}))
            outcome[project.id] = "conflict"
            continue
        workflow.allocations.keep(alloc)
        workflow.desk.book(project, [(s.expert_id, s.workstation_id) for s in seats])
        workflow.send_notices(project, seats, commands)
        if not reply.audited:
            late.append(entry)
        outcome[project.id] = "drawn"
    if late:  # a refused draw wrote nothing of its placement (no intent either)
        await workflow.record_batch(late, before=commit if stale else None)
    # The placed draws' intents go off the draw's path, now that their notices went.
    workflow.announced.add(p for p, o in outcome.items() if o == "drawn")
    for project_id, placed_now in outcome.items():
        if placed_now == "drawn":
            await workflow.validate_lifecycle(project_id)
    if "drawn" in outcome.values():
        workflow.wake_schedule()
    return outcome


async def commit_and_place(workflow: Workflow, project: Project, prepared: PreparedDraw,
                           result: PlacedDraw, *, plan_id: str = "",
                           seed_from: dict[str, str] | None = None,
                           with_commit: Staged | None = None,
                           with_placed: Staged | None = None) -> None:
    """A first draw committed (archive, `draw.committed`) and placed in one step (a chunk of
    one): a crash leaves it either not committed (drawn again with the same seed) or placed.
    Raises WorkflowError (committed, nothing booked) when Redis refuses a booking."""
    outcome = await place_first_draws(workflow, [(project, prepared, result)], plan_id,
                                      seed_from=seed_from, with_commit=with_commit,
                                      with_placed=with_placed)
    if outcome[project.id] != "drawn":
        raise WorkflowError("project_id", "booking conflict: the store disagreed with the "
                            "picture (audited as draw.booking_conflict)", code="precondition")
