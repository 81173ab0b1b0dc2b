"""A Redis outage under a running grid (redis-server SIGKILLed, then started again): the agent's
stream to the coordinator stays up, the coordinator answers UNAVAILABLE, the booth is told
"accepted, will be forwarded", and the journal reaches the coordinator once Redis is back,
with no reconnection to trigger it. Meanwhile the operator cannot redraw the member as a
no-show (the site reports them signed in)."""

from __future__ import annotations

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from fault_kit import entries
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from coordinator.checker import check_grid
from coordinator.store.embedded_redis import EmbeddedRedis
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_journal_forwarded_after_redis_restart(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    notice = notices[0]
    site_id = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    agent = grid.agents[site_id]
    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    held = agent.booths.current_reservation(checked.workstation_id)
    assert held is not None
    session_id = held.session_id

    async def pass_arrived() -> bool:
        return session_id in agent.offline.passes

    await wait_until(pass_arrived, "the seat pass sent at evaluation start")
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()

    assert grid.redis_server is not None
    grid.redis_server.kill()  # SIGKILL: the stream between agent and coordinator stays up
    signed_in = await booth.sign_in(expert.id_number, notice["code"])
    assert signed_in.offline  # the coordinator answered UNAVAILABLE: the pass decided
    form = await booth.form()
    queued = await booth.submit(fair_scores(form), signed=True)
    assert queued.accepted and queued.queued
    assert [r["kind"] for r in agent.offline.journal.pending()] == ["signin", "sheet"]

    # While the forwarding is held back, the operator may not redraw the member as a no-show.
    async with agent.offline._forwarding:
        grid.redis_server = EmbeddedRedis(grid.redis_server.directory).start()

        async def answering() -> bool:
            try:
                await grid.operator.Status(operator_pb2.StatusRequest(),
                                           timeout=UNARY_DEADLINE_S)
            except grpc.aio.AioRpcError:
                return False
            return True

        await wait_until(answering, "the coordinator to answer again")
        await wait_until(lambda: _reported_signed_in(grid, site_id, checked.workstation_id),
                         "the site's status to show the booth signed in")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
                request_id=request_id(), project_id=project.id, session_id=session_id,
                reason="no_show"), timeout=UNARY_DEADLINE_S)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "being forwarded" in (refused.value.details() or "")

    async def forwarded() -> bool:
        return not agent.offline.journal.pending()

    await wait_until(forwarded, "the journal forwarded without a reconnection")
    signins = [e for e in await entries(grid, "expert.signed_in", project.id)
               if e.detail["session"] == session_id]
    assert len(signins) == 1 and signins[0].detail["offline"] is True
    sheets = [e for e in await entries(grid, "sheet.signed", project.id)
              if e.detail["expert_ref"] == signed_in.expert_ref]
    assert len(sheets) == 1
    (after,) = [s for s in await _seats(grid, project.id) if s.session_id == session_id]
    assert after.status == "signed"
    result = await check_grid(grid.data.root, grid.redis_url)
    assert result.audit_intact and result.double_bookings == 0, result.details


async def _reported_signed_in(grid: Grid, site_id: str, workstation_id: str) -> bool:
    live = grid.coordinator.workflow.links.live[site_id]
    return live.workstations.get(workstation_id) in ("signed_in", "evaluating")


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)
