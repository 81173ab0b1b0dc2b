"""The operator console against a fake coordinator: status, projects, exceptions and the
supplementary draw, the audit feed, search, seats, help and the 80x24 layout."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from textual.widgets import DataTable, RichLog
from tui_testkit import START, FakeOperatorClient, sample_grid, screen_text

from tui.client_errors import ClientError
from tui.operator_app import OperatorConsole
from tui.operator_client import AuditEvent
from tui.operator_draw import SupplementaryDrawScreen
from tui.operator_seats import ProjectSeatsScreen

SIZE = (80, 24)
P1, P2 = "P20260302-0001", "P20260302-0002"


def rows(app: OperatorConsole, table_id: str) -> list[list[str]]:
    table = app.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def audit_lines(app: OperatorConsole) -> list[str]:
    return [line.text for line in app.query_one("#audit-log", RichLog).lines]


async def test_province_at_a_glance() -> None:
    app = OperatorConsole(FakeOperatorClient(), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "OPERATOR op-alice  03-02 09:20  sites 2/3  draw needed 2" in text
        assert "Sites 3 (2 online, 1 OFFLINE).  Workstations 9: 3 in use, 1 fault, 2 offline." \
            in text
        assert "Projects 3: 1 registered, 1 drawn, 1 evaluating, 0 reported." in text
        assert rows(app, "cities") == [
            ["Hangzhou", "1", "1", "4", "2", "50%", "1", "0"],
            ["Ningbo", "1", "1", "3", "1", "33%", "0", "0"],
            ["Wenzhou", "1", "0", "2", "0", "0%", "0", "2"],
        ]
        await pilot.press("2")
        await pilot.pause()
        sites = rows(app, "sites-table")
        assert sites[2][:3] == ["S0003", "Wenzhou", "OFFLINE"]
        assert sites[0][8] == "1"  # one workstation at fault in S0001


async def test_projects_and_their_draw_state() -> None:
    app = OperatorConsole(FakeOperatorClient(), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        assert [r[:7] for r in rows(app, "projects-table")] == [
            [P1, "evaluating", "03-02 09:00-12:00", "S0003", "5/5", "2", "1"],
            [P2, "drawn", "03-02 14:00-17:00", "S0002", "2/5", "1", "1"],
            ["P20260302-0003", "registered", "03-02 15:00-18:00", "S0001", "-", "-", ""],
        ]
        # A change streamed from the coordinator shows at once.
        client: FakeOperatorClient = app.client  # type: ignore[assignment]
        view = client.grid
        client.push(replace(view, projects=tuple(
            replace(p, state="reported") if p.project_id == P1 else p
            for p in view.projects), seats=tuple(s for s in view.seats if s.project_id != P1)))
        await pilot.pause()
        assert rows(app, "projects-table")[0][:2] == [P1, "reported"]


async def test_exceptions_queue_and_the_supplementary_draw() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("4")
        await pilot.pause()
        queue = rows(app, "exceptions-table")
        assert [r[:4] + r[5:] for r in queue] == [
            ["*", "no_show", P1, "S0002", "ses-0000000000000002"],
            ["*", "fault", P2, "S0001", "ses-0000000000000007"],
            ["", "decline", P1, "S0001", "ses-0000000000000004"],
            ["", "late", P1, "S0002", "ses-0000000000000003"],
        ]
        # The detail comes before the long session id: nothing of it is cut at 80 columns.
        assert "not signed in since 09:00" in screen_text(app).splitlines()[5]
        assert "no_show P20260302-0001 ses-0000000000000002 at S0002/S0002-V1-R01-W01" in \
            screen_text(app)
        # d on the no-show: confirm, and ReplaceMember gets the session and reason no_show.
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, SupplementaryDrawScreen)
        assert "reason   no-show: the member has not signed in" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert client.calls[-1] == ("replace_member", (
            P1, "ses-0000000000000002", "no_show", "no_show: not signed in since 09:00"))
        assert f"{P1}: no_show-redrawn (session ses-0000000000000002)" in screen_text(app)
        # The fault before opening resolves as a leave; Esc on the confirmation draws nothing.
        await pilot.press("down", "d", "escape")
        await pilot.pause()
        assert len([c for c in client.calls if c[0] == "replace_member"]) == 1
        await pilot.press("d")
        await pilot.pause()
        await pilot.press(*" (power cut)", "enter")
        await pilot.pause()
        await pilot.pause()
        assert client.calls[-1] == ("replace_member", (
            P2, "ses-0000000000000007", "leave",
            "fault: workstation fault: no power (power cut)"))
        # A history row has no draw.
        await pilot.press("down", "d")
        await pilot.pause()
        assert "decline: no supplementary draw applies to this row" in screen_text(app)


async def test_a_refused_draw_is_shown() -> None:
    client = FakeOperatorClient()

    async def refuse(*args: object) -> str:
        raise ClientError("reason: a no_show applies while the project is evaluating",
                          code="FAILED_PRECONDITION")

    client.replace_member = refuse  # type: ignore[method-assign]
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("4", "d", "enter")
        await pilot.pause()
        await pilot.pause()
        assert f"{P1}: draw refused: reason: a no_show applies" in screen_text(app)


async def test_the_project_seats_allow_a_leave_before_opening() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("3", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ProjectSeatsScreen)
        assert "ses-0000000000000008" in screen_text(app)
        await pilot.press("down", "d")
        await pilot.pause()
        assert isinstance(app.screen, SupplementaryDrawScreen)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert client.calls[-1] == ("replace_member", (
            P2, "ses-0000000000000008", "leave", "leave filed by the operator"))


async def test_the_audit_feed_shows_streamed_events() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert ("watch_audit", (0, 200)) in client.calls  # the recent tail first
        await pilot.press("5")
        await pilot.pause()
        assert audit_lines(app)[-1] == \
            "09:00:00  expert signed in     P20260302-0001  member exp-1"
        client.push(AuditEvent(43, "seat.no_show", P1, START + timedelta(minutes=21),
                               '{"reason":"not signed in","session":"ses-0000000000000002"}'))
        client.push(AuditEvent(42, "expert.signed_in", P1, START, "{}"))  # a replay: dropped
        await pilot.pause()
        lines = audit_lines(app)
        assert lines[-1].startswith("09:21:00  no-show              P20260302-0001  "
                                    "not signed in; seat ses-00000")
        assert len(lines) == 4 and all(len(line) <= 80 for line in lines)
        assert "09:21:00  no-show              P20260302-0001  not signed in" in screen_text(app)
        assert "{" not in screen_text(app)  # no raw JSON


async def test_search_filters_by_project_or_site() -> None:
    app = OperatorConsole(FakeOperatorClient(), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("3", "slash", *"-0002", "enter")
        await pilot.pause()
        assert [r[0] for r in rows(app, "projects-table")] == [P2]
        assert "draw needed 2  /-0002" in screen_text(app)
        await pilot.press("4")
        await pilot.pause()
        assert [r[2] for r in rows(app, "exceptions-table")] == [P2]
        await pilot.press("5")
        await pilot.pause()
        assert audit_lines(app) == []
        await pilot.press("escape", "slash", *"wenz", "enter")
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        assert [r[0] for r in rows(app, "sites-table")] == ["S0003"]
        await pilot.press("slash")
        await pilot.press(*["backspace"] * 4, *"s0001", "enter")
        await pilot.pause()
        assert [r[0] for r in rows(app, "sites-table")] == ["S0001"]
        await pilot.press("5")
        await pilot.pause()
        assert audit_lines(app) == []  # no event about S0001
        await pilot.press("escape")
        await pilot.pause()
        assert len(audit_lines(app)) == 3
        assert "  /" not in screen_text(app).splitlines()[0]


async def test_link_loss_and_recovery_are_shown() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice", reconnect_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        client.push(ClientError("failed to connect to all addresses", code="UNAVAILABLE"))
        await pilot.pause(0.02)
        assert "coordinator unreachable" in screen_text(app)
        client.push(sample_grid())
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "coordinator link restored" in text
        assert "OPERATOR op-alice  03-02 09:20" in text


async def test_help_opens_and_closes() -> None:
    app = OperatorConsole(FakeOperatorClient(), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Help - operator console" in screen_text(app)
        assert "supplementary draw for the selected exception" in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Help - operator console" not in screen_text(app)


async def test_the_screen_at_80x24() -> None:
    app = OperatorConsole(FakeOperatorClient(), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert lines[0] == " OPERATOR op-alice  03-02 09:20  sites 2/3  draw needed 2"
        assert lines[2] == " Province [1]  Sites [2]  Projects [3]  Exceptions [4]  Audit [5]"
        assert lines[7].split() == ["City", "Sites", "Online", "WS", "In", "use", "Use",
                                    "Fault", "Offline"]
        assert lines[-1] == " ? help  / search  d suppl. draw  q quit"
        await pilot.press("4")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert lines[4].split() == ["Kind", "Project", "Site", "Detail", "Session", "/", "WS"]
        assert lines[5].startswith(" *  no_show  P20260302-0001  S0002  not signed in since 09:00")
