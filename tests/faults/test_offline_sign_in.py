"""Offline mode: with the coordinator unreachable, a member checks in, signs in and signs a
sheet at the guest site; the agent journals it and, once the coordinator is back, forwards
each exactly once."""

from __future__ import annotations

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from fault_kit import entries, start_coordinator, stop_coordinator, workflow
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_sign_in_and_sheet_offline_are_forwarded_once(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    notice = notices[0]
    site_id = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    agent = grid.agents[site_id]
    here = sum(1 for n in notices if grid.site_of_venue(n["venue_id"]) == site_id)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)

    async def passes_arrived() -> bool:
        return len(agent.offline.passes) == here

    await wait_until(passes_arrived, "the seat passes sent at evaluation start")
    for held in list(agent.booths.reservations.values()):  # booth certificates, made ahead
        await grid.booth(site_id, held.workstation_id)

    now = await stop_coordinator(grid)
    await wait_until(lambda: _offline(grid, site_id), "the agent to see the coordinator gone")

    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await booth.sign_in(expert.id_number,
                            "".join("1" if c == "0" else "0" for c in notice["code"]))
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "identity or code does not match" in (wrong.value.details() or "")

    signed_in = await booth.sign_in(expert.id_number, notice["code"])
    assert signed_in.offline and signed_in.expert_ref and signed_in.expert_name == expert.name
    form = await booth.form()  # from the pass: the coordinator is still away
    assert form.session_id == signed_in.session_id and form.criteria and form.bids
    queued = await booth.submit(fair_scores(form), signed=True)
    assert queued.accepted and queued.queued and not queued.digest
    journal = agent.offline.journal
    assert [r["kind"] for r in journal.pending()] == ["signin", "sheet"]

    await start_coordinator(grid, now)
    await wait_until(lambda: _forwarded(grid, site_id), "the journal to be forwarded")

    signins = [e for e in await entries(grid, "expert.signed_in", project.id)
               if e.detail["session"] == signed_in.session_id]
    assert len(signins) == 1 and signins[0].detail["offline"] is True
    sheets = [e for e in await entries(grid, "sheet.signed", project.id)
              if e.detail["expert_ref"] == signed_in.expert_ref]
    assert len(sheets) == 1
    done = [r for r in journal.records if r["kind"] == "done"]
    assert [r["outcome"] for r in done[-2:]] == ["accepted", "accepted"]
    assert done[-1]["digest"] == sheets[0].detail["digest"]
    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)
    (seat,) = [s for s in seats.seats if s.session_id == signed_in.session_id]
    assert seat.status == "signed"

    # Another reconnection forwards nothing again: still one sign-in, one signed sheet.
    workflow(grid).links.drop(site_id)
    await wait_until(lambda: _online(grid, site_id), "the agent to reconnect")
    assert await agent.offline.forward_pending() == 0
    assert len([e for e in await entries(grid, "sheet.signed", project.id)
                if e.detail["expert_ref"] == signed_in.expert_ref]) == 1
    assert len([e for e in await entries(grid, "expert.signed_in", project.id)
                if e.detail["session"] == signed_in.session_id]) == 1


async def _offline(grid: Grid, site_id: str) -> bool:
    return not grid.agents[site_id].connected.is_set()


async def _online(grid: Grid, site_id: str) -> bool:
    return grid.agents[site_id].connected.is_set()


async def _forwarded(grid: Grid, site_id: str) -> bool:
    agent = grid.agents[site_id]
    return agent.connected.is_set() and not agent.offline.journal.pending()
