"""Every operator step of a day through the `evalgrid` command, against a real grid.

Each command runs as its own process with the operator's certificate from the grid's data dir,
over mutual TLS to the coordinator: projects, notice list / resend / reply (a decline is
redrawn), sign-in unlock, incident list, evaluation start and close (the signed report).
Refusals are one line naming the field and the reason, exit 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys

from grid_fixture import DAY, LOCAL, OPERATOR, Grid, focus_projects

from coordinator.report import verify_report
from evalgrid.trust import PinnedTrust


async def evalgrid(grid: Grid, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args, "--data-dir", str(grid.data.root),
        "--operator", OPERATOR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": ".:proto"})
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_day_of_operator_steps_through_the_command(grid: Grid) -> None:
    project_id = focus_projects(grid.province)[0].id
    project = grid.projects[project_id]
    await grid.register(project)

    rc, out, err = await evalgrid(grid, "projects", "--day", DAY.isoformat())
    assert rc == 0, err
    assert project_id in out and "registered" in out
    assert "+08:00" in out  # the province's time, said

    _, notices = await grid.draw(project_id)
    first, second = notices[0], notices[1]

    rc, out, err = await evalgrid(grid, "notice", "list", project_id)
    assert rc == 0, err
    assert first["notice_id"] in out and "notified" in out
    assert all(n["code"] not in out for n in notices)  # operators never see a code

    # Resend: same notice, same code, audited with who and why; a reason is required.
    rc, out, err = await evalgrid(grid, "notice", "resend", first["notice_id"], "--reason", " ")
    assert rc == 2 and "--reason" in err and "Traceback" not in err
    rc, out, err = await evalgrid(grid, "notice", "resend", first["notice_id"],
                                  "--reason", "SMS not received")
    assert rc == 0, err
    assert "resent" in out
    sent = [n for n in grid.notices() if n["notice_id"] == first["notice_id"]]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0]["start"].endswith("+08:00")  # the expert reads local time
    resent = [e async for e in _audit(grid, "notice.resent")]
    assert resent and resent[-1]["reason"] == "SMS not received"
    assert "operator" in resent[-1]["by"]

    rc, out, err = await evalgrid(grid, "notice", "resend", "ntc-nope", "--reason", "x")
    assert rc == 2 and "NOT_FOUND" in err and "notice_id" in err

    # A decline through the command: a supplementary draw at once.
    before = len(grid.notices())
    rc, out, err = await evalgrid(grid, "notice", "reply", second["notice_id"], "--decline")
    assert rc == 2 and "--reason" in err
    rc, out, err = await evalgrid(grid, "notice", "reply", second["notice_id"], "--decline",
                                  "--reason", "ill")
    assert rc == 0, err
    assert "declined" in out
    replacement = grid.notices()[before:]
    assert len(replacement) == 1

    # Unlock names the scope; nothing locked is said so.
    site_id = grid.site_of_venue(first["venue_id"])
    rc, out, err = await evalgrid(grid, "signin", "unlock", "--site", site_id,
                                  "--workstation", "W-X", "--reason", "wrong codes")
    assert rc == 0, err
    assert "nothing was locked" in out
    rc, out, err = await evalgrid(grid, "signin", "unlock", "--site", "NO-SUCH",
                                  "--workstation", "W-X", "--reason", "r")
    assert rc == 2 and "site_id" in err

    rc, out, err = await evalgrid(grid, "incident", "list")
    assert rc == 0, err
    assert "incidents (0; times +08:00)" in out

    # Start before the window: refused with the local time it opens.
    rc, out, err = await evalgrid(grid, "evaluation", "start", project_id)
    assert rc == 2 and "FAILED_PRECONDITION" in err and "+08:00" in err

    await grid.advance_to(project.window.start)
    rc, out, err = await evalgrid(grid, "evaluation", "start", project_id)
    assert rc == 0, err
    assert "evaluating" in out
    live = [n for n in grid.notices()
            if n["notice_id"] not in {second["notice_id"]}]
    seen: set[str] = set()
    for notice in live:
        if notice["notice_id"] in seen:
            continue
        seen.add(notice["notice_id"])
        await grid.evaluate_seat(notice)

    rc, out, err = await evalgrid(grid, "evaluation", "close", project_id)
    assert rc == 0, err
    report = grid.data.reports / f"{project_id}.json"
    assert "reported" in out and report.name in out.replace("\n", "")
    assert verify_report(report, PinnedTrust.from_data_dir(grid.data.root)) == []
    assert LOCAL.total_seconds() == 8 * 3600


async def _audit(grid: Grid, kind: str):  # type: ignore[no-untyped-def]
    async for entry in _entries(grid):
        if entry.kind == kind:
            yield json.loads(json.dumps(entry.detail, default=str))


async def _entries(grid: Grid):  # type: ignore[no-untyped-def]
    workflow = grid.coordinator.workflow
    assert workflow is not None
    for entry in await workflow.audit.entries():
        yield entry


async def test_the_console_steps_reach_the_coordinator(grid: Grid) -> None:
    """The operator console's step client (tui/operator_client.py) over real gRPC: each
    step's RPC, its answer as text, a refusal as a ClientError naming the field."""
    import pytest

    from tui.client_errors import ClientError
    from tui.operator_client import GrpcOperatorClient

    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    client = GrpcOperatorClient(pki_dir=grid.data.pki, coordinator=grid.target, name=OPERATOR)
    try:
        listed = await client.step("notices", {"project": project.id})
        assert notices[0]["notice_id"] in listed
        assert all(n["code"] not in listed for n in notices)
        assert await client.step("resend", {"notice": notices[0]["notice_id"],
                                            "reason": "lost"}) \
            == f"notice {notices[0]['notice_id']}: resent"
        declined = await client.step("decline", {"notice": notices[1]["notice_id"],
                                                 "reason": "ill"})
        assert "declined" in declined
        assert await client.step("incidents", {}) == "no incidents"
        site = grid.site_of_venue(notices[0]["venue_id"])
        assert await client.step("unlock", {"site": site, "workstation": "W-X",
                                            "session": "", "reason": "r"}) \
            == "nothing was locked there"
        with pytest.raises(ClientError, match="not being evaluated"):
            await client.step("close", {"project": project.id})
        with pytest.raises(ClientError, match="incident"):
            await client.step("decide", {"incident": "inc-none", "decision": "wait",
                                         "note": "n"})
    finally:
        await client.close()
