"""The site staff console against a fake desk: board, check-in, faults, alerts, help, layout."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import DataTable, RichLog
from tui_testkit import FakeSiteClient, sample_board, screen_text, with_state

from tui.client_errors import ClientError
from tui.site_app import SiteConsole
from tui.site_board import BoardMap
from tui.site_checkin import CheckInScreen
from tui.site_client import CheckedIn
from tui.site_fault import FaultScreen
from tui.states import STATES

SIZE = (80, 24)
W = "S0001-V1-R01-W01"  # free, first row of the table


def chip_styles(app: SiteConsole) -> dict[str, str]:
    """Each chip's text on the board and the style it is drawn in."""
    rendered = app.query_one(BoardMap).render()
    return {rendered.plain[span.start:span.end].strip(): str(span.style)
            for span in rendered.spans if rendered.plain[span.start:span.end].strip()}


async def test_board_shows_every_room_with_state_colours_and_labels() -> None:
    app = SiteConsole(FakeSiteClient(), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        lines = text.splitlines()
        room_lines = [line for line in lines if line.startswith((" Room 301 ", " Room 302 "))]
        # The map: one line per room, chips with the state's mark (monochrome-readable).
        assert " Room 301   W01  W02R W03S" in room_lines
        assert " Room 302   W01E W02X W03-" in room_lines
        styles = chip_styles(app)
        assert styles["W01"].startswith(STATES["free"].style)
        assert styles["W02R"].startswith(STATES["reserved"].style)
        assert styles["W03S"].startswith(STATES["signed_in"].style)
        assert styles["W01E"].startswith(STATES["evaluating"].style)
        assert styles["W02X"].startswith(STATES["fault"].style)
        assert styles["W03-"].startswith(STATES["offline"].style)
        # The legend names every state.
        for state in STATES.values():
            assert f"{state.mark} {state.label}" in text
        # The table: room, workstation, state label, opaque session and time only.
        assert any("Room 301  W02  R reserved    ses-00000000000000a2  09:00-12:00" in line
                   for line in lines)
        assert any("Room 302  W02  X fault" in line and "no power" in line for line in lines)
        assert "SITE S0001  coordinator connected  6 ws  3 sessions  1 faulty" in text


async def test_sessions_of_the_day_show_session_time_and_seat_only() -> None:
    app = SiteConsole(FakeSiteClient(), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        assert "Time               Session               Room      Workstation" in text
        assert "03-02 09:00-12:00  ses-00000000000000a2  Room 301  S0001-V1-R01-W02" in text
        assert "P2026" not in text  # nothing of any project reaches a guest site


async def test_check_in_shows_the_workstation_and_refusals() -> None:
    client = FakeSiteClient(checkins={
        ("330102197001010011", "483920"): CheckedIn("S0001-V1-R01-W02", "S0001-V1-R01")})
    app = SiteConsole(client, "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("c")
        assert isinstance(app.screen, CheckInScreen)
        await pilot.press(*"330102197001010011", "enter", *"000000", "enter")
        await pilot.pause()
        assert "Refused: code: no reserved seat at this site" in screen_text(app)
        # The ID number stays; the code field is cleared and focused for a second try.
        await pilot.press(*"483920", "enter")
        await pilot.pause()
        text = screen_text(app)
        assert "-> workstation S0001-V1-R01-W02 in Room 301" in text
        assert client.calls == [("check_in", ("330102197001010011", "000000")),
                                ("check_in", ("330102197001010011", "483920"))]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CheckInScreen)
        assert "checked in: workstation S0001-V1-R01-W02 in Room 301" in screen_text(app)


async def test_mark_faulty_and_back_in_service_calls_the_desk_and_redraws_the_board() -> None:
    client = FakeSiteClient()
    app = SiteConsole(client, "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one("#ws", DataTable)
        assert table.cursor_row == 0  # W01 of Room 301, free
        await pilot.press("f")
        assert isinstance(app.screen, FaultScreen)
        await pilot.press(*"screen dead", "enter")
        await pilot.pause()
        await pilot.pause()
        assert client.calls[-1] == ("mark", (W, True, "screen dead"))
        assert chip_styles(app)["W01X"].startswith(STATES["fault"].style)
        text = screen_text(app)
        assert f"{W} (Room 301) marked faulty: screen dead" in text  # the alert line
        assert any("Room 301  W01  X fault" in line and "screen dead" in line
                   for line in text.splitlines())
        await pilot.press("r")
        await pilot.pause()
        await pilot.pause()
        assert client.calls[-1] == ("mark", (W, False, ""))
        assert chip_styles(app)["W01"].startswith(STATES["free"].style)
        assert f"{W} (Room 301) back in service" in screen_text(app)
        # Esc on the fault screen marks nothing.
        await pilot.press("f", "escape")
        await pilot.pause()
        assert client.calls[-1] == ("mark", (W, False, ""))


async def test_moving_the_selection_underlines_the_chip_on_the_board() -> None:
    app = SiteConsole(FakeSiteClient(), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down")
        await pilot.pause()
        assert app.query_one(BoardMap).selected == "S0001-V1-R02-W01"
        assert "underline" in chip_styles(app)["W01E"]
        assert "underline" not in chip_styles(app)["W01"]


async def test_alerts_for_link_loss_faults_and_sessions() -> None:
    client = FakeSiteClient()
    app = SiteConsole(client, "S0001", reconnect_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        board = client.board
        client.push(replace(board, coordinator_connected=False))
        await pilot.pause()
        assert "coordinator LINK LOST" in screen_text(app)
        assert "coordinator link lost: check-in and sign-in are unavailable" in \
            screen_text(app)
        client.push(with_state(board, "S0001-V1-R01-W03", "fault", "keyboard"))
        await pilot.pause()
        client.push(ClientError("connection refused", code="UNAVAILABLE"))
        await pilot.pause(0.2)
        assert "agent unreachable" in screen_text(app)
        client.push(replace(board, sessions=board.sessions[1:]))
        await pilot.pause(0.2)
        await pilot.press("3")
        await pilot.pause()
        log = "\n".join(line.text for line in app.query_one("#alert-log", RichLog).lines)
        for expected in ("coordinator link lost", "coordinator link restored",
                         "S0001-V1-R01-W03 (Room 301) marked faulty: keyboard",
                         "agent unreachable: connection refused", "agent link restored",
                         "session ses-00000000000000a2 released"):
            assert expected in log, expected


async def test_help_opens_and_closes() -> None:
    app = SiteConsole(FakeSiteClient(), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        text = screen_text(app)
        assert "Help - site console" in text
        assert "mark the selected workstation faulty" in text
        await pilot.press("escape")
        await pilot.pause()
        assert "Help - site console" not in screen_text(app)
        await pilot.press("question_mark", "q")  # q closes the help, it does not quit
        await pilot.pause()
        assert app.is_running and "Help - site console" not in screen_text(app)


async def test_the_screen_at_80x24() -> None:
    """A snapshot of the key lines: the whole console fits a standard terminal."""
    app = SiteConsole(FakeSiteClient(board=sample_board()), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert lines[0] == " SITE S0001  coordinator connected  6 ws  3 sessions  " \
            "1 faulty"
        assert lines[3] == " Room 301   W01  W02R W03S"
        assert lines[4] == " Room 302   W01E W02X W03-"
        assert lines[6].startswith(" Workstations [1]  Sessions [2]  Alerts [3]")
        assert lines[8].split() == ["Room", "WS", "State", "Session", "Time", "Note"]
        assert lines[-1].split()[:4] == ["?", "help", "c", "check"]
        await pilot.press("q")
    assert app.return_code == 0
