"""The committee at work, through the real grid: clarification through the coordinator only,
the leader's review and a returned sheet, a recusal and a no-show redrawn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, operator_pb2, site_link_pb2
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.booth_terminal import BoothTerminal, Score

REFS: dict[int, str] = {}  # id(booth) -> the signed-in member's opaque reference


async def _sign_in(grid: Grid, notice: dict[str, str]) -> BoothTerminal:
    expert = grid.experts[notice["expert_id"]]
    site_id = grid.site_of_venue(notice["venue_id"])
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    REFS[id(booth)] = (await booth.sign_in(expert.id_number, notice["code"])).expert_ref
    return booth


async def test_committee_clarifies_reviews_returns_and_replaces(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)

    # A no-show: one member never comes; the operator redraws the seat from the console.
    absent, present = notices[-1], notices[:-1]
    booths = [await _sign_in(grid, n) for n in present]
    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)
    waiting = [s for s in seats.seats if s.status == "accepted"]
    assert len(waiting) == 1 and all(absent["expert_id"] not in str(s) for s in seats.seats)
    before = len(grid.notices())
    replaced = await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
        request_id=request_id(), project_id=project.id, session_id=waiting[0].session_id,
        reason="no_show"), timeout=60)
    assert replaced.outcome == "no_show-redrawn"
    (late,) = grid.notices()[before:]
    assert late["expert_id"] not in {n["expert_id"] for n in notices}
    await grid.reply(late["notice_id"], True)
    booths.append(await _sign_in(grid, late))

    # A recusal on seeing the bidders: that seat is redrawn too.
    recuser = booths.pop(1)
    before = len(grid.notices())
    assert (await recuser.declare_recusal("former employee of a bidder")).outcome == \
        "recused-redrawn"
    (replacement,) = grid.notices()[before:]
    await grid.reply(replacement["notice_id"], True)
    booths.append(await _sign_in(grid, replacement))

    # Clarification: the host relays to the bidder without learning who asked.
    leader, member = booths[0], booths[1]
    form = await member.form()
    code = form.bids[0].code
    asked = await member.ask(code, "Please confirm the delivery period of item 3.")
    host = grid.site_link(project.host_site_id)
    relayed = await host.HostClarifications(site_link_pb2.ResultRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)
    (item,) = relayed.items
    bidder_id = item.bidder_id
    assert bidder_id in {b.bidder_id for b in project.bids}
    raw = relayed.SerializeToString()
    for secret in (member.session_id, member.workstation_id, member.site_id,
                   *(n["expert_id"] for n in notices)):
        assert secret.encode() not in raw
    await host.AnswerClarification(site_link_pb2.AnswerRequest(
        request_id=request_id(), project_id=project.id, question_id=item.question_id,
        answer="Within 30 days of signature."), timeout=UNARY_DEADLINE_S)
    seen = await leader.clarifications()
    assert [(c.bid_code, c.answer) for c in seen.items] == \
        [(code, "Within 30 days of signature.")]
    assert asked.question_id == seen.items[0].question_id
    assert bidder_id.encode() not in seen.SerializeToString()
    other = grid.site_link(next(s.id for s in grid.province.sites
                                if s.id != project.host_site_id))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await other.HostClarifications(site_link_pb2.ResultRequest(project_id=project.id),
                                       timeout=UNARY_DEADLINE_S)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Everyone scores and signs; one member is far off the others on one item.
    assert (await leader.form()).leader and not (await member.form()).leader
    for booth in booths:
        scores = fair_scores(await booth.form())
        if booth is member:
            scores[0] = Score(scores[0].bid_code, scores[0].criterion_id, "0")
        assert (await booth.submit(scores, signed=True)).accepted

    review = await leader.review()
    assert review.leader and not review.pending
    flagged = {w.expert_ref for w in review.warnings if w.kind == "deviation"}
    target = REFS[id(member)]
    assert target in flagged
    assert not (await member.review()).warnings  # only the leader sees warnings
    with pytest.raises(grpc.aio.AioRpcError) as not_leader:
        await member.return_sheet(target, "please check")
    assert not_leader.value.code() == grpc.StatusCode.PERMISSION_DENIED

    assert (await leader.return_sheet(target, "score 0 on an item others rate 80%")).outcome \
        == "returned"
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await grid.close(project.id)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "others rate" in (await member.form()).returned_reason
    assert not (await leader.form()).returned_reason
    assert (await member.submit(fair_scores(await member.form()), signed=True)).accepted
    assert not (await member.form()).returned_reason

    closed = await grid.close(project.id)
    assert closed.state == "reported"
    report = json.loads(Path(closed.detail).read_text())["report"]
    assert [r["expert_ref"] for r in report["returned_sheets"]] == [target]
    assert report["leader"] == REFS[id(leader)]
    assert len(report["sheets"]) == len(booths)
    cells = {(s["expert_ref"], r["bid_code"], r["criterion_id"]): r["score"]
             for s in report["sheets"] for r in s["scores"]}
    assert all(v != "0" for (ref, _, _), v in cells.items() if ref == target)


async def test_the_schedule_unseals_at_the_window_start(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    await grid.draw(project.id)

    async def state() -> str:
        listed = await grid.operator.ListProjects(operator_pb2.ListProjectsRequest(),
                                                  timeout=UNARY_DEADLINE_S)
        return next(p.state for p in listed.projects if p.project_id == project.id)

    assert await state() == "drawn"
    await grid.advance_to(project.window.start)  # nobody calls StartEvaluation

    async def starts() -> list[Any]:
        entries = await grid.coordinator.workflow.audit.entries()  # type: ignore[union-attr]
        return [e for e in entries if e.kind == "evaluation.started" and e.subject == project.id]

    async def started() -> bool:  # the state is stored a moment before its audit entry
        return await state() == "evaluating" and bool(await starts())

    await wait_until(started, "the scheduled start")
    assert [e.detail["by"] for e in await starts()] == ["schedule"]


async def test_a_restarted_agent_gets_its_reservations_back(grid: Grid) -> None:
    from site_agent.agent import SiteAgent

    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    old = grid.agents[site_id]

    async def holds_all(agent: SiteAgent) -> bool:
        wanted = {n["notice_id"] for n in notices if grid.site_of_venue(n["venue_id"]) == site_id}
        return len(agent.booths.reservations) == len(wanted)

    await wait_until(lambda: holds_all(old), "the first agent to hold its reservations")
    sessions = set(old.booths.reservations)
    await old.stop()  # the site's server restarts: everything in memory is gone

    fresh = SiteAgent(old.config, old.inventory)
    await fresh.start()
    grid.agents[site_id] = fresh
    try:
        await wait_until(lambda: holds_all(fresh), "the restarted agent to hold them again")
        assert set(fresh.booths.reservations) == sessions
    finally:
        await fresh.stop()
        grid.agents.pop(site_id)
