"""A workstation failing after sign-in: the member moves to a spare at the same venue and keeps
what was scored; a member who has already signed keeps the sheet and the seat."""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from fault_kit import entries
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_member_moves_to_a_spare_and_keeps_the_scores(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)

    # One member signs a sheet; another signs in and saves a draft.
    done = await grid.evaluate_seat(notices[0])
    notice = notices[1]
    site_id = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    member = await booth.sign_in(expert.id_number, notice["code"])
    draft = await booth.submit(fair_scores(await booth.form(), "0.5"), signed=False)
    assert draft.accepted
    await booth.close()

    # The booth dies under the member.
    await grid.desk(site_id).MarkWorkstation(booth_pb2.MarkRequest(
        request_id=request_id(), workstation_id=checked.workstation_id, fault=True,
        detail="screen dead"), timeout=UNARY_DEADLINE_S)

    async def moved() -> str:
        for s in await _seats(grid, project.id):
            if s.session_id == member.session_id and s.workstation_id != checked.workstation_id:
                return str(s.workstation_id)
        return ""

    spare = await wait_until(moved, "the member to be moved to a spare workstation")
    assert spare.rsplit("-", 2)[0] == checked.workstation_id.rsplit("-", 2)[0]  # same venue
    (move,) = await entries(grid, "seat.moved", project.id)
    assert move.detail["to"] == spare and move.detail["session"] == member.session_id
    (seat,) = [s for s in await _seats(grid, project.id) if s.session_id == member.session_id]
    assert seat.status == "signed_in"  # still the member's seat, not a redraw
    assert await entries(grid, "seat.displaced", project.id) == []
    assert (await _sheet(grid, member.session_id))["digest"] == draft.digest  # draft kept

    # At the spare the member signs in again (no second sign-in on record) and signs.
    async def agent_moved() -> bool:
        held = grid.agents[site_id].booths.reservations.get(member.session_id)
        return held is not None and held.workstation_id == spare

    await wait_until(agent_moved, "the guest agent to hold the session on the spare")
    booth = await grid.booth(site_id, spare)
    await booth.enrol()
    again = await booth.sign_in(expert.id_number, notice["code"])
    assert again.expert_ref == member.expert_ref
    final = await booth.submit(fair_scores(await booth.form()), signed=True)
    assert final.accepted and final.digest != draft.digest
    signins = [e for e in await entries(grid, "expert.signed_in", project.id)
               if e.detail["session"] == member.session_id]
    assert len(signins) == 1

    # The member who had signed: the booth fails too, nothing moves, the sheet stands.
    await grid.desk(done.site_id).MarkWorkstation(booth_pb2.MarkRequest(
        request_id=request_id(), workstation_id=done.workstation_id, fault=True,
        detail="power"), timeout=UNARY_DEADLINE_S)
    live = grid.coordinator.workflow.links.live[done.site_id]  # type: ignore[union-attr]
    await wait_until(lambda: _state_is(live, done.workstation_id, "fault"),
                     "the coordinator to learn of the second fault")
    (kept,) = [s for s in await _seats(grid, project.id) if s.session_id == done.session_id]
    assert kept.status == "signed" and kept.workstation_id == done.workstation_id
    assert (await _sheet(grid, done.session_id))["digest"] == done.digest
    assert len(await entries(grid, "seat.moved", project.id)) == 1


async def _state_is(live: object, workstation_id: str, state: str) -> bool:
    return getattr(live, "workstations", {}).get(workstation_id) == state


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)


async def _sheet(grid: Grid, session_id: str) -> dict[str, str]:
    redis = aioredis.Redis.from_url(grid.redis_url)
    try:
        raw = await redis.hgetall(f"sheet:{session_id}")
    finally:
        await redis.aclose()
    sheet = {k.decode(): v.decode() for k, v in raw.items()}
    assert json.loads(sheet["body"])["session"] == session_id
    return sheet
