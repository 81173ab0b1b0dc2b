"""A guest site lost at or during the window: an incident with the rules' deadline, not a
redraw. Repaired in time, the evaluation resumes; past 4 hours during evaluation a new
committee re-evaluates, decided by an operator (audited), with nothing signed lost."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
import redis.asyncio as aioredis
from evalgrid_wire.v1 import operator_pb2
from fault_kit import entries, kill_agent, move_leases, start_agent, workflow
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.domain.liveness import Link
from coordinator.domain.model import Project
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S, to_timestamp


async def _started(grid: Grid) -> tuple[Project, list[dict[str, str]]]:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    return project, notices


async def _lose(grid: Grid, site_id: str) -> None:
    """The site's agent dies and stays silent past the grace period: declared lost."""
    await kill_agent(grid, site_id)
    policy = workflow(grid).links.liveness.policy
    await move_leases(grid, policy.lost_after + timedelta(seconds=1), silent={site_id})
    assert workflow(grid).links.link(site_id) is Link.LOST


async def _incidents(grid: Grid) -> list[operator_pb2.Incident]:
    reply = await grid.operator.ListIncidents(operator_pb2.ListIncidentsRequest(
        include_closed=True), timeout=UNARY_DEADLINE_S)
    return list(reply.incidents)


async def _decide(grid: Grid, incident_id: str, decision: str, rid: str = "",
                  window: tuple[object, object] | None = None
                  ) -> operator_pb2.DecideIncidentReply:
    request = operator_pb2.DecideIncidentRequest(
        request_id=rid or request_id(), incident_id=incident_id, decision=decision,
        note="recorded for the tenderer")
    if window is not None:
        request.new_window_start.CopyFrom(to_timestamp(window[0]))  # type: ignore[arg-type]
        request.new_window_end.CopyFrom(to_timestamp(window[1]))  # type: ignore[arg-type]
    reply: operator_pb2.DecideIncidentReply = await grid.operator.DecideIncident(
        request, timeout=60)
    return reply


async def test_lost_before_evaluation_then_repaired_in_time_resumes(grid: Grid) -> None:
    project, notices = await _started(grid)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    await _lose(grid, site_id)

    (incident,) = await _incidents(grid)
    assert (incident.project_id, incident.site_id, incident.phase, incident.state) == (
        project.id, site_id, "before_evaluation", "awaiting_repair")
    assert incident.deadline.ToDatetime().replace(tzinfo=project.window.start.tzinfo) == \
        project.window.start + timedelta(hours=2)
    assert list(incident.allowed) == []
    assert await entries(grid, "seat.displaced", project.id) == []  # not redrawn in the window
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await _decide(grid, incident.incident_id, "postpone")
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 hours from the window start" in (early.value.details() or "")

    await grid.advance_to(project.window.start + timedelta(minutes=119))  # 1:59
    await start_agent(grid, grid.agents[site_id])  # repaired: the agent is back

    async def resumed() -> bool:
        return [i.state for i in await _incidents(grid)] == ["resumed"]

    await wait_until(resumed, "the incident to resume on the site's return")
    (event,) = await entries(grid, "fault.resumed", project.id)
    assert event.detail["incident"] == incident.incident_id


async def test_lost_during_evaluation_past_four_hours_gets_a_new_committee(grid: Grid) -> None:
    project, notices = await _started(grid)
    signed = await grid.evaluate_seat(notices[0])  # evaluation under way, a sheet signed
    site_id = next((grid.site_of_venue(n["venue_id"]) for n in notices[1:]
                    if grid.site_of_venue(n["venue_id"]) != signed.site_id),
                   grid.site_of_venue(notices[1]["venue_id"]))
    await _lose(grid, site_id)
    (incident,) = await _incidents(grid)
    assert (incident.phase, incident.state) == ("during_evaluation", "awaiting_repair")
    failed = incident.failed_at.ToDatetime().replace(tzinfo=project.window.start.tzinfo)
    assert incident.deadline.ToDatetime().replace(tzinfo=failed.tzinfo) == \
        failed + timedelta(hours=4)

    await grid.advance_to(failed + timedelta(hours=4, minutes=1))  # 4:01, still down

    async def due() -> bool:
        return bool(await entries(grid, "fault.decision_due", project.id))

    await wait_until(due, "the 4-hour deadline to pass")
    (incident,) = await _incidents(grid)
    assert incident.state == "decision_due" and list(incident.allowed) == ["reevaluate"]
    with pytest.raises(grpc.aio.AioRpcError) as wait:
        await _decide(grid, incident.incident_id, "wait")
    assert wait.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as no_window:
        await _decide(grid, incident.incident_id, "reevaluate")
    assert no_window.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "new_window_start" in (no_window.value.details() or "")

    old = {s.session_id: s for s in await _seats(grid, project.id)}
    workflow = grid.coordinator.workflow
    assert workflow is not None
    old_experts = {s.expert_id for s in
                   (await workflow.allocation(project.id, "test")).active_seats()}
    start = project.window.start + timedelta(days=1)
    rid = request_id()
    reply = await _decide(grid, incident.incident_id, "reevaluate", rid,
                          (start, start + (project.window.end - project.window.start)))
    assert reply.incident.state == "reevaluated"
    assert reply.outcome.startswith("reevaluated; new committee")
    # A resend of the decision: the same answer, and no second committee.
    assert await _decide(grid, incident.incident_id, "reevaluate", rid,
                         (start, start + timedelta(hours=1))) == reply

    (sealed,) = await entries(grid, "materials.sealed", project.id)
    assert sealed.detail["signed"] == 1 and sealed.detail["committee_dissolved"] == len(old)
    (decided,) = await entries(grid, "fault.decided", project.id)
    assert decided.detail["decision"] == "reevaluate"
    if "not drawn" not in reply.outcome:  # a new committee, none of the old members
        fresh = await _seats(grid, project.id)
        assert fresh and not {s.session_id for s in fresh} & set(old)
        # the cool-off with the tenderer keeps every old member off the new committee
        new_experts = {s.expert_id for s in
                       (await workflow.allocation(project.id, "test")).active_seats()}
        assert new_experts and not new_experts & old_experts
        assert len(await entries(grid, "draw.placed", project.id)) == 2
    # Nothing signed is lost: the old signed sheet is still stored, as signed.
    redis = aioredis.Redis.from_url(grid.redis_url)
    try:
        kept = await redis.hgetall(f"sheet:{signed.session_id}")
    finally:
        await redis.aclose()
    assert kept[b"signed"] == b"1" and kept[b"digest"].decode() == signed.digest


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)


async def test_not_repaired_in_two_hours_the_tenderer_waits_then_postpones(grid: Grid) -> None:
    project, notices = await _started(grid)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    await _lose(grid, site_id)
    await grid.advance_to(project.window.start + timedelta(minutes=121))  # 2:01, still down

    async def due() -> bool:
        return [i.state for i in await _incidents(grid)] == ["decision_due"]

    await wait_until(due, "the 2-hour deadline to pass")
    (incident,) = await _incidents(grid)
    assert list(incident.allowed) == ["wait", "postpone"]
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await _decide(grid, incident.incident_id, "reevaluate")
    assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    waiting = await _decide(grid, incident.incident_id, "wait")
    assert waiting.incident.state == "waiting" and waiting.outcome == "waiting"
    assert [s.status for s in await _seats(grid, project.id)]  # the committee stands

    start = project.window.start + timedelta(days=2)
    reply = await _decide(grid, incident.incident_id, "postpone", window=(
        start, start + (project.window.end - project.window.start)))
    assert reply.incident.state == "postponed" and reply.outcome.startswith("postponed; ")
    decisions = [e.detail["decision"] for e in await entries(grid, "fault.decided", project.id)]
    assert decisions == ["wait", "postpone"]
    (sealed,) = await entries(grid, "materials.sealed", project.id)
    assert sealed.detail["signed"] == 0
    listed = await grid.operator.ListProjects(operator_pb2.ListProjectsRequest(),
                                              timeout=UNARY_DEADLINE_S)
    (moved,) = [p for p in listed.projects if p.project_id == project.id]
    assert moved.window_start.ToDatetime().replace(tzinfo=start.tzinfo) == start
    if "not drawn" not in reply.outcome:
        assert moved.state == "drawn"
