"""DOMAIN "Faults": a reserved workstation that fails moves its member to a spare at the same
venue; with no spare left, the member and venue are redrawn."""

from __future__ import annotations

import dataclasses

from evalgrid_wire.v1 import booth_pb2, operator_pb2
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.domain.anchoring import move_problems
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def _mark(grid: Grid, site_id: str, workstation_id: str) -> None:
    await grid.desk(site_id).MarkWorkstation(booth_pb2.MarkRequest(
        request_id=request_id(), workstation_id=workstation_id, fault=True, detail="dead"),
        timeout=UNARY_DEADLINE_S)


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)


async def test_a_failed_workstation_moves_its_member_to_a_spare(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    seat = (await _seats(grid, project.id))[0]
    await _mark(grid, seat.site_id, seat.workstation_id)

    async def moved() -> bool:
        now = {s.session_id: s for s in await _seats(grid, project.id)}
        return now[seat.session_id].workstation_id != seat.workstation_id

    await wait_until(moved, "the member to be moved to a spare workstation")
    after = {s.session_id: s for s in await _seats(grid, project.id)}[seat.session_id]
    assert after.status == seat.status and after.site_id == seat.site_id
    spare = after.workstation_id
    venue = spare.rsplit("-", 2)[0]
    assert venue == seat.workstation_id.rsplit("-", 2)[0]  # same venue, another booth

    async def agent_moved() -> bool:
        held = grid.agents[seat.site_id].booths.reservations.get(seat.session_id)
        return held is not None and held.workstation_id == spare

    await wait_until(agent_moved, "the guest agent to hold the session on the spare")
    entries = await grid.coordinator.workflow.audit.entries()  # type: ignore[union-attr]
    (move,) = [e for e in entries if e.kind == "seat.moved"]
    assert move.detail["to"] == spare and spare in move.detail["spares"]
    # The move replays from the committed seed of the member's draw (revealed with the award),
    # and a move to another spare than the seed picks is named.
    workflow = grid.coordinator.workflow  # type: ignore[union-attr]
    archive = await workflow.sealed_archive(move.detail["draw_id"])
    assert move_problems([archive], [move]) == []
    others = [w for w in move.detail["spares"] if w != spare]
    if others:
        forged = dataclasses.replace(move, detail={**move.detail, "to": others[0]})
        assert "but the committed seed of draw" in move_problems([archive], [forged])[0]

    # The member checks in at the window start and is sent to the spare.
    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    notice = next(n for n in notices if grid.site_of_venue(n["venue_id"]) == seat.site_id
                  and n["venue_id"] == venue)
    expert = grid.experts[notice["expert_id"]]
    checked = await grid.desk(seat.site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    assert checked.workstation_id == spare


async def test_with_no_spare_the_member_and_venue_are_redrawn(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    await grid.draw(project.id)
    seat = (await _seats(grid, project.id))[0]
    board = await grid.board(seat.site_id)
    venue = seat.workstation_id.rsplit("-", 2)[0]
    for ws in board.workstations:  # every other booth of that venue is down already
        if ws.workstation_id.startswith(venue + "-") and ws.workstation_id != seat.workstation_id:
            await _mark(grid, seat.site_id, ws.workstation_id)
    before = len(grid.notices())
    await _mark(grid, seat.site_id, seat.workstation_id)

    async def redrawn() -> bool:  # displaced, and the supplementary draw's outcome recorded
        kinds = [e.kind for e in await grid.coordinator.workflow.audit.entries()  # type: ignore[union-attr]
                 if e.subject == project.id]
        if "seat.displaced" not in kinds:
            return False
        after = kinds[kinds.index("seat.displaced"):]
        return any(k in ("draw.placed", "draw.starved", "draw.refused") for k in after) and any(
            s.session_id == seat.session_id and s.status == "displaced"
            for s in await _seats(grid, project.id))

    await wait_until(redrawn, "the member to be displaced and the seat redrawn")
    entries = await grid.coordinator.workflow.audit.entries()  # type: ignore[union-attr]
    assert any(e.kind == "seat.displaced" for e in entries)
    seats = await _seats(grid, project.id)
    active = [s for s in seats if s.status != "displaced"]
    if len(active) == project.drawn_seats:  # replaced, elsewhere
        (fresh,) = grid.notices()[before:]
        assert fresh["venue_id"] != venue  # a venue with every booth down is not drawn again
        assert all(s.workstation_id.rsplit("-", 2)[0] != venue for s in active)
    else:  # the small province had no feasible replacement: said, with the reason, audited
        assert len(active) == project.drawn_seats - 1
        assert grid.notices()[before:] == []
        assert any(e.kind in ("draw.starved", "draw.refused") and e.subject == project.id
                   for e in entries)
