"""An evaluation whose window ends with sheets unsigned is not left `evaluating` with nobody
told: the schedule opens an overdue-evaluation incident (a state awaiting an operator, with the
rules' deadline), once; and a schedule pass that meets a Redis outage does not end the loop."""

from __future__ import annotations

from datetime import timedelta

from evalgrid_wire.v1 import operator_pb2
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.workflow import Workflow


async def _incidents(grid: Grid, project_id: str) -> list[operator_pb2.Incident]:
    listed = await grid.operator.ListIncidents(operator_pb2.ListIncidentsRequest(), timeout=30)
    return [i for i in listed.incidents if i.project_id == project_id]


async def test_a_window_ending_with_unsigned_sheets_opens_an_incident(grid: Grid) -> None:
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    for notice in notices:
        assert await grid.reply(notice["notice_id"], True) == "accepted"
    await grid.advance_to(focus.window.start)
    assert await grid.start(focus.id) == "evaluating"
    await grid.evaluate_seat(notices[0])  # one signs; the others never come
    absent = sorted({grid.site_of_venue(n["venue_id"]) for n in notices[1:]})

    await grid.advance_to(focus.window.end - timedelta(minutes=1))
    assert await _incidents(grid, focus.id) == []  # the window is still open

    await grid.advance_to(focus.window.end + timedelta(minutes=1))
    found = await wait_until(lambda: _incidents(grid, focus.id), "an overdue incident")
    assert len(found) == 1
    assert found[0].state == "awaiting_repair"
    assert found[0].cause == f"evaluation window ended: {len(notices) - 1} sheet(s) unsigned"
    # No one site failed (site_id ""): the incident names the sites of the unsigned sheets.
    assert found[0].site_id == "" and list(found[0].sites) == absent
    assert found[0].deadline.ToDatetime().replace(tzinfo=focus.window.end.tzinfo) == \
        focus.window.end + timedelta(hours=4)

    await grid.advance_to(focus.window.end + timedelta(minutes=2))  # another pass: still one
    await wait_until(lambda: _incidents(grid, focus.id), "the incident")
    assert len(await _incidents(grid, focus.id)) == 1
    listed = await grid.operator.ListProjects(operator_pb2.ListProjectsRequest(), timeout=30)
    assert {p.project_id: p.state for p in listed.projects}[focus.id] == "evaluating"

    # The close that follows the late sheets ends it (called as EvaluationDesk.close does).
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    await grid.advance_to(focus.window.end + timedelta(hours=5))  # even past its deadline

    async def due() -> bool:
        return [i.state for i in await _incidents(grid, focus.id)] == ["decision_due"]

    await wait_until(due, "the incident's deadline to pass")
    async with workflow.project_lock(focus.id):  # as EvaluationDesk.close holds it
        await workflow.registry.set_project_state(focus.id, "reported")
    await workflow.faults.evaluation_reported(focus.id)
    assert await _incidents(grid, focus.id) == []
    closed = await grid.operator.ListIncidents(operator_pb2.ListIncidentsRequest(
        include_closed=True), timeout=30)
    assert [i.state for i in closed.incidents if i.project_id == focus.id] == ["resumed"]


async def test_the_schedule_outlives_a_failed_pass(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    real = workflow._schedule_pass
    failures: list[int] = []

    async def flaky() -> list[float]:
        if not failures:
            failures.append(1)
            raise ConnectionError("Redis went away")
        return await real()

    workflow._schedule_pass = flaky  # type: ignore[method-assign]
    workflow.wake_schedule()  # wake the loop: the first pass fails
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(focus.window.start)

    async def started() -> bool:
        listed = await grid.operator.ListProjects(operator_pb2.ListProjectsRequest(),
                                                  timeout=30)
        return bool({p.project_id: p.state for p in listed.projects}[focus.id] == "evaluating")

    await wait_until(started, "the scheduled start after a failed pass")
    assert failures
    schedule = grid.coordinator._schedule
    assert schedule is not None and not schedule.done()
