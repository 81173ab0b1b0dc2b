"""A project's story through the real grid: every transition, in order, with its stimulus.

One project is drawn, a member declines (and is replaced), the window opens, every member signs
in and signs, the operator closes: Operator.ProjectStory then tells exactly that, and each
transition is one the lifecycle table allows (validate_state ran after each: conftest sets
EVALGRID_VALIDATE_LIFECYCLE=1).
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import AUDITOR, OPERATOR, Grid, focus_projects
from rich.console import Console

from coordinator.domain.lifecycle import PROJECT_TABLE, SEAT_TABLE
from evalgrid import operator_client as op


async def test_the_story_tells_the_life_of_a_project(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register_all()
    _, notices = await grid.draw(project.id)
    declined = notices[0]
    before = len(grid.notices())
    assert (await grid.reply(declined["notice_id"], False, "abroad")).endswith("-redrawn")
    active = notices[1:] + grid.notices()[before:]
    await grid.advance_to(project.window.start)
    assert await grid.start(project.id) == "evaluating"
    done = [await grid.evaluate_seat(notice) for notice in active]
    assert (await grid.close(project.id)).state == "reported"

    reply = await grid.operator.ProjectStory(
        operator_pb2.ProjectStoryRequest(project_id=project.id), timeout=30)
    assert reply.state == "reported"
    steps = [(s.seat or "project", s.event, s.before, s.after) for s in reply.steps]
    sessions = [d.session_id for d in done]
    assert steps[0] == ("project", "draw placed", "registered", "drawn")
    assert steps[1][1:] == ("departed (declined)", "notified", "declined")
    assert steps[2] == ("project", "window opened", "drawn", "evaluating")
    for session in sessions:
        mine = [s[1:] for s in steps if s[0] == session]
        assert mine == [("signed in", "notified", "signed_in"),
                        ("sheet signed", "signed_in", "signed")], session
    assert steps[-1] == ("project", "report closed", "evaluating", "reported")
    assert len(steps) == 4 + 2 * len(sessions)
    # Every step has a stimulus, an allowed transition and instructions that were carried out.
    allowed = {(b.value, a.value) for (b, _), (a, _) in PROJECT_TABLE.items()} | {
        (b.value, a.value) for (b, _, _), (a, _) in SEAT_TABLE.items()}
    for step in reply.steps:
        assert step.stimulus_id and step.instructions
        assert (step.before, step.after) in allowed
    assert reply.steps[0].at.ToDatetime() <= reply.steps[-1].at.ToDatetime()
    # A request's transition carries its request id (a 32-hex uuid); a first draw its draw.
    assert re.fullmatch(r"[0-9a-f]{32}", reply.steps[1].stimulus_id)  # the decline
    assert re.fullmatch(r"[0-9a-f]{32}", reply.steps[-1].stimulus_id)  # the close
    assert reply.steps[0].stimulus_id.startswith("draw-")

    # The newest transitions only; an auditor reads it too; bad input is named.
    last = await grid.operator_as("auditor", AUDITOR).ProjectStory(
        operator_pb2.ProjectStoryRequest(project_id=project.id, last=2), timeout=30)
    assert [s.event for s in last.steps] == ["sheet signed", "report closed"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grid.operator.ProjectStory(
            operator_pb2.ProjectStoryRequest(project_id="P-nope"), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grid.operator.ProjectStory(
            operator_pb2.ProjectStoryRequest(project_id=project.id, last=100_000), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "last" in (caught.value.details() or "")

    # What `evalgrid projects story P` prints: 80 wide, in the province's time.
    link = op.OperatorLink(grid.data.pki, OPERATOR, grid.target,
                           timezone(timedelta(hours=8)))
    console = Console(width=80, record=True, force_terminal=False)
    console.print(await op.project_story(link, project.id))
    printed = console.export_text()
    assert f"story of {project.id}, now reported" in printed and "+08:00" in printed
    assert "report closed: evaluating -> reported" in printed
    assert "window opened: drawn -> evaluating" in printed
    assert "did release, send command, audit, supplementary draw" in printed
    assert all(len(line) <= 80 for line in printed.splitlines())
    start = project.window.start.astimezone(timezone(timedelta(hours=8)))
    assert f"{start:%m-%d %H:%M}" in printed  # the window opened at its local start
