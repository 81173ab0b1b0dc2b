"""Both consoles against a real small grid (Redis, coordinator, agents, mutual TLS on loopback).

Entirely through the apps' keys: site staff check an expert in and mark the expert's
workstation faulty; the operator sees the fault and the no-shows in the exceptions queue and
resolves a no-show with a supplementary draw. Also: the new RPCs' role checks, and that a
change made elsewhere reaches a console within one second through the streams.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc, operator_pb2, operator_pb2_grpc
from grid_fixture import AUDITOR, OPERATOR, Grid, focus_projects, start_grid, wait_until
from textual.widgets import DataTable
from tui_testkit import screen_text

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S
from tui.operator_app import OperatorConsole
from tui.operator_client import GrpcOperatorClient
from tui.site_app import SiteConsole
from tui.site_client import GrpcSiteClient
from tui.tables import selected_key

pytestmark = pytest.mark.asyncio(loop_scope="module")
SIZE = (80, 24)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def grid() -> AsyncIterator[Grid]:
    """One grid, its earliest scored project drawn, accepted and under evaluation."""
    async with start_grid(seed=5) as g:
        await g.register_all()
        project = focus_projects(g.province)[0]
        _, notices = await g.draw(project.id)
        for notice in notices:
            assert await g.reply(notice["notice_id"], True) == "accepted"
        await g.advance_to(project.window.start)
        assert await g.start(project.id) == "evaluating"
        g.focus = project  # type: ignore[attr-defined]
        g.focus_notices = notices  # type: ignore[attr-defined]
        yield g


async def _seat_at(grid: Grid, site_id: str) -> operator_pb2.SeatInfo:
    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=grid.focus.id), timeout=UNARY_DEADLINE_S)  # type: ignore[attr-defined]
    return next(s for s in seats.seats if s.site_id == site_id and s.status == "accepted")


async def _until(check: Any, what: str, timeout: float = 5.0) -> Any:
    async def probe() -> Any:
        return check()
    return await wait_until(probe, what, timeout=timeout, interval=0.02)


async def test_new_rpcs_check_roles_and_stream(grid: Grid) -> None:
    site_a, site_b = grid.province.sites[0].id, grid.province.sites[1].id
    other = booth_pb2_grpc.DeskStub(grid.channel(grid.agent_target(site_a), "site", site_b))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        async for _ in other.WatchBoard(booth_pb2.BoardRequest()):
            pass
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await other.MarkWorkstation(booth_pb2.MarkRequest(
            request_id=request_id(), workstation_id=grid.workstations_of(site_a)[0],
            fault=True), timeout=UNARY_DEADLINE_S)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await grid.desk(site_a).MarkWorkstation(booth_pb2.MarkRequest(
            request_id=request_id(), workstation_id="NOPE", fault=True),
            timeout=UNARY_DEADLINE_S)
    assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    as_site = operator_pb2_grpc.OperatorStub(grid.channel(grid.target, "site", site_a))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        async for _ in as_site.WatchGrid(operator_pb2.WatchGridRequest()):
            pass
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An auditor may watch (read-only); the first snapshot is the whole grid.
    call = grid.operator_as("auditor", AUDITOR).WatchGrid(operator_pb2.WatchGridRequest())
    snapshot = await call.read()
    call.cancel()
    assert len(snapshot.sites) == len(grid.province.sites)
    assert snapshot.status.sites_online == len(grid.province.sites)
    assert {p.project_id for p in snapshot.projects} == {p.id for p in grid.province.projects}
    # The tenderer's representatives travel with the project: the console counts "short"
    # against the drawn seats only.
    assert {(p.project_id, p.committee_size, p.tenderer_reps) for p in snapshot.projects} == \
        {(p.id, p.committee_size, p.tenderer_reps) for p in grid.province.projects}
    focus = grid.focus  # type: ignore[attr-defined]
    [open_project] = [p for p in snapshot.open_projects if p.project_id == focus.id]
    assert open_project.state == "evaluating"
    assert len(open_project.seats) == focus.committee_size
    # Watch with a tail replays the last events first.
    watch = grid.operator.Watch(operator_pb2.WatchRequest(tail=3))
    events = [await watch.read() for _ in range(3)]
    watch.cancel()
    assert [int(e.id) for e in events] == list(range(snapshot.audit_head - 2,
                                                      snapshot.audit_head + 1))


async def test_site_staff_check_in_and_mark_a_fault_from_the_console(grid: Grid) -> None:
    notice = grid.focus_notices[0]  # type: ignore[attr-defined]
    expert = grid.experts[notice["expert_id"]]
    site = grid.site_of_venue(notice["venue_id"])
    seat = await _seat_at(grid, site)
    client = GrpcSiteClient(pki_dir=grid.data.pki, site_id=site, agent=grid.agent_target(site))
    app = SiteConsole(client, site)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: app.board is not None, "the first board")
        assert f"SITE {site}  coordinator connected" in screen_text(app)
        ws = next(w for w in app.board.workstations  # type: ignore[union-attr]
                  if w.workstation_id == seat.workstation_id)
        assert (ws.state, ws.session_id) == ("reserved", seat.session_id)

        # Check-in at the desk: ID number and the notice's code -> the drawn workstation.
        await pilot.press("c", *expert.id_number, "enter", *notice["code"], "enter")
        await _until(lambda: "-> workstation" in screen_text(app), "the check-in answer")
        assert f"-> workstation {seat.workstation_id} in " in screen_text(app)
        await pilot.press("escape")

        # Select that workstation with the arrow keys and mark it faulty.
        table = app.query_one("#ws", DataTable)
        keys = [str(k.value) for k in table.rows]
        await pilot.press(*["down"] * keys.index(seat.workstation_id))
        assert selected_key(table) == seat.workstation_id
        await pilot.press("f", *"screen dead", "enter")
        live = grid.coordinator.workflow.links.live[site]  # type: ignore[union-attr]
        await _until(lambda: live.workstations.get(seat.workstation_id) == "fault",
                     "the coordinator to learn of the fault")
        assert live.details[seat.workstation_id] == "screen dead"
        await _until(lambda: any(w.state == "fault" for w in app.board.workstations  # type: ignore[union-attr]
                                 if w.workstation_id == seat.workstation_id),
                     "the board to show the fault")
        # The alert line shows the latest alert: the member's move to a spare (a board update
        # of its own) may already have replaced it there; the alerts tab keeps both.
        await _until(lambda: any("marked faulty: screen dead" in a.text for a in app.alerts),
                     "the fault's alert")

        # A change made elsewhere (another desk) reaches the console within a second.
        spare = next(w for w in keys if w != seat.workstation_id)
        started = time.monotonic()
        await grid.desk(site).MarkWorkstation(booth_pb2.MarkRequest(
            request_id=request_id(), workstation_id=spare, fault=True, detail="no power"),
            timeout=UNARY_DEADLINE_S)
        await _until(lambda: any(w.state == "fault" for w in app.board.workstations  # type: ignore[union-attr]
                                 if w.workstation_id == spare), "the board", timeout=1.0)
        assert time.monotonic() - started < 1.0
        await grid.desk(site).MarkWorkstation(booth_pb2.MarkRequest(
            request_id=request_id(), workstation_id=spare, fault=False),
            timeout=UNARY_DEADLINE_S)
        await pilot.press("q")


async def test_the_operator_resolves_a_no_show_with_a_supplementary_draw(grid: Grid) -> None:
    focus = grid.focus  # type: ignore[attr-defined]
    faulty_site = grid.site_of_venue(grid.focus_notices[0]["venue_id"])  # type: ignore[attr-defined]
    client = GrpcOperatorClient(pki_dir=grid.data.pki, coordinator=grid.target, name=OPERATOR)
    app = OperatorConsole(client, OPERATOR)
    async with app.run_test(size=SIZE) as pilot:
        await _until(lambda: app.view is not None, "the first grid view")
        sites = len(grid.province.sites)
        assert f"sites {sites}/{sites}" in screen_text(app)
        # The fault marked at the site was handled by the rules (its member moved to a spare
        # at the same venue): nothing there needs a draw. Everyone is awaited for 15 minutes,
        # then not signed in means a no-show.
        entries = await grid.coordinator.workflow.audit.entries()  # type: ignore[union-attr]
        assert any(e.kind == "seat.moved" for e in entries)
        faults = [i for i in app.issues if i.open and i.kind == "fault"]
        assert faults and all(i.site_id == faulty_site for i in faults)
        assert all(not i.session_id and not i.action for i in faults)  # a booth to repair
        awaited = [i for i in app.issues if i.kind == "awaited"]
        assert len(awaited) == focus.committee_size and not any(i.open for i in awaited)
        assert not [i for i in app.issues if i.kind == "no_show"]
        await grid.advance_to(focus.window.start + timedelta(minutes=16))
        await _until(lambda: any(i.kind == "no_show" for i in app.issues), "the grace to end")
        no_shows = [i for i in app.issues if i.kind == "no_show"]
        assert len(no_shows) == focus.committee_size
        assert all(i.action == "no_show" and i.project_id == focus.id for i in no_shows)

        await pilot.press("4")
        table = app.query_one("#exceptions-table", DataTable)
        target = no_shows[0]
        await _until(lambda: target.key in [str(k.value) for k in table.rows],
                     "the queue to list the no-show")
        await pilot.pause(0.3)  # let the snapshot burst settle before steering the cursor
        keys = [str(k.value) for k in table.rows]
        steps = keys.index(target.key) - keys.index(str(selected_key(table)))
        await pilot.press(*["down" if steps > 0 else "up"] * abs(steps))
        assert selected_key(table) == target.key
        before = len(grid.notices())
        await pilot.press("d", "enter")
        await _until(lambda: "no_show-redrawn" in app.last_alert, "the draw's outcome",
                     timeout=15)
        assert app.last_alert == f"{focus.id}: no_show-redrawn (session {target.session_id})"
        # The queue and the feed follow through the streams.
        await _until(lambda: any(i.kind == "no-show" and i.session_id == target.session_id
                                 and i.detail == "redrawn" for i in app.issues),
                     "the queue to show the resolved no-show")
        await _until(lambda: any(e.kind == "seat.no_show" for e in app.events),
                     "the audit feed")
        await pilot.press("5")
        assert re.search(rf"\d\d:\d\d:\d\d  no-show +{focus.id}  ", screen_text(app))

    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=focus.id), timeout=UNARY_DEADLINE_S)
    by_session = {s.session_id: s for s in seats.seats}
    assert by_session[target.session_id].status == "no_show"
    fresh = grid.notices()[before:]
    assert len(fresh) == 1  # the replacement was drawn and notified
    assert len([s for s in seats.seats if s.status not in
                ("no_show", "declined", "left", "recused")]) == focus.committee_size
