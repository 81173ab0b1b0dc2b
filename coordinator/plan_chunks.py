"""A day plan's draws placed in chunks: the same phases as a single draw, one round trip each.

Placing a plan's draws one by one (`commit_and_place`) costs about a dozen fsynced round
trips per draw. A chunk of draws moves through the very phases of coordinator/draw_intents.py
together, each phase one round trip for the whole chunk:

1. archives and intents `committed` (one MULTI), then the chunk's audit entries
   (`draw.committed`, and `draw.refused` / `draw.starved` of the draws that place nothing) in
   one batch; fault point `after_commit`;
2. seats, sessions and commands fixed: intents `booking` (one MULTI); `after_intent`;
3. the bookings of every draw in one Lua call (store/place.lua: each draw all or none);
   `after_reserve`;
4. allocations, sessions, commands, states, intents `placed` (one MULTI); `after_pipeline`;
5. notices, `draw.placed` (or `draw.booking_conflict`) in one audit batch, intents dropped.

A crash leaves every intent of the chunk in one phase, and recovery takes each forward or back
as it does a single draw's. Chunks grow from 1 draw to CHUNK_MAX, so the first draws of a plan
are placed at once and a crash early in a plan leaves little pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from evalgrid_wire.v1 import site_link_pb2

from coordinator.allocation import Allocation, SeatRecord
from coordinator.draw_intents import (
    DrawIntent,
    booking_items,
    fault_point,
    make_intent,
    stage_drop,
    stage_intent,
)
from coordinator.store.registry import PROJECT_STATE

if TYPE_CHECKING:
    from coordinator.day_plan import PlannedDraw
    from coordinator.workflow import Workflow

CHUNK_MAX = 64  # draws placed together at most (a chunk's MULTI stays a few MB)


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
            await stack.enter_async_context(workflow._lock(project_id))
        return await _place_locked(workflow, chunk, plan_id)


async def _place_locked(workflow: Workflow, chunk: Sequence[PlannedDraw], plan_id: str
                        ) -> list[str]:
    from coordinator.workflow import DRAW

    states = await workflow.redis.hmget(PROJECT_STATE, [p.project.id for p in chunk])
    outcome: dict[str, str] = {}
    records: list[tuple[str, str, dict[str, Any]]] = []
    drawn: list[PlannedDraw] = []
    for planned, state in zip(chunk, states, strict=True):
        project_id, o = planned.project.id, planned.outcome
        if state != b"registered":
            outcome[project_id] = "skipped"
        elif planned.prepared is None:
            records.append(("draw.refused", project_id, {"reason": o.reason,
                                                         "plan_id": plan_id}))
            outcome[project_id] = "refused"
        else:
            records.append(("draw.committed", project_id,
                            {**planned.prepared.commitment_record(), "plan_id": plan_id}))
            if planned.result is None:
                records.append(("draw.starved", project_id, {"reason": o.reason,
                                                             "plan_id": plan_id}))
                outcome[project_id] = "starved"
            else:
                drawn.append(planned)
    key = workflow.master_key
    seq = await workflow.audit.known_seq()
    if drawn:  # 1. committed
        pipe = workflow.redis.pipeline(transaction=True)
        for planned in drawn:
            result = planned.result
            assert result is not None
            await workflow.store_snapshot(result)  # once per day snapshot: seldom a trip
            pipe.hset(DRAW.format(result.draw_id),
                      mapping=result.archive_fields(key))  # type: ignore[arg-type]
            stage_intent(pipe, key, make_intent(planned.project.id, result.draw_id,
                                                "committed", seq, plan_id=plan_id,
                                                state_after="drawn"))
        seat_count = sum(len(p.result.seats) for p in drawn if p.result is not None)
        workflow.links.stage_next_fences(pipe, seat_count)  # the chunk's commands
        *_, top = await pipe.execute()
    await workflow._record_batch(records)
    if not drawn:
        return [outcome[p.project.id] for p in chunk]
    fault_point("after_commit")

    # 2. booking: seats, sessions and commands fixed before anything is booked
    fences = workflow.links.fences_from(top, seat_count)
    staged: list[tuple[PlannedDraw, list[SeatRecord],
                       list[tuple[str, site_link_pb2.CoordinatorCommand]], DrawIntent]] = []
    pipe = workflow.redis.pipeline(transaction=True)
    at = 0
    for planned in drawn:
        result = planned.result
        assert result is not None
        seats, commands = workflow._seats_and_commands(
            planned.project, result, fences[at:at + len(result.seats)])
        at += len(result.seats)
        intent = make_intent(planned.project.id, result.draw_id, "booking", seq,
                             seats=seats, commands=commands, state_after="drawn",
                             plan_id=plan_id, parent=result.commitment.parent or "",
                             outcome_digest=result.outcome_digest)
        stage_intent(pipe, key, intent)
        staged.append((planned, seats, commands, intent))
    await pipe.execute()
    fault_point("after_intent")

    # 3. the bookings, each draw all or none, in one call
    booked = await workflow.placements.reserve_groups(
        [booking_items(planned.project, seats) for planned, seats, _, _ in staged])
    fault_point("after_reserve")

    # 4. the placements of the booked draws; the refused ones' intents go
    pipe = workflow.redis.pipeline(transaction=True)
    placed = []
    late: list[tuple[str, str, dict[str, Any]]] = []
    for (planned, seats, commands, intent), reply in zip(staged, booked, strict=True):
        project = planned.project
        if not reply.ok:
            stage_drop(pipe, project.id)
            late.append(("draw.booking_conflict", project.id, {"detail": reply.reason}))
            outcome[project.id] = "conflict"
            continue
        alloc = Allocation(project_id=project.id, draw_ids=[intent.draw_id],
                           seats=list(seats))
        workflow._allocations[project.id] = alloc
        workflow.desk.book(project, [(s.expert_id, s.workstation_id) for s in seats])
        workflow._stage_placement(pipe, project, alloc, seats, commands, intent)
        placed.append((planned, seats, commands, intent))
        outcome[project.id] = "drawn"
    await pipe.execute()
    fault_point("after_pipeline")

    # 5. notices and the audit, then the intents go
    for planned, seats, commands, intent in placed:
        workflow._send_notices(planned.project, seats, commands)
        late.append(("draw.placed", planned.project.id,
                     workflow._placed_record(intent, seats)))
    position = {p.project.id: n for n, p in enumerate(chunk)}
    late.sort(key=lambda record: position[record[1]])  # plan order, as the draws were made
    await workflow._record_batch(late)
    if placed:
        pipe = workflow.redis.pipeline(transaction=True)
        for planned, *_ in placed:
            stage_drop(pipe, planned.project.id)
        await pipe.execute()
        workflow._schedule_wake.set()
    return [outcome[p.project.id] for p in chunk]
