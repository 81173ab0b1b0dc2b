"""The site staff console (`evalgrid tui site`): the live board, sessions, check-in, faults.

It follows the agent's `Desk.WatchBoard` stream in a worker; each board arrives as a message
and the widgets redraw from it, so a change at any booth shows within a fraction of a second
and nothing polls. At a guest site it shows opaque sessions and times only, never a project.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, RichLog, Static, TabbedContent, TabPane

from evalgrid.i18n import N_, _
from tui.client_errors import ClientError
from tui.footer import translate_footer
from tui.help_screen import HelpScreen
from tui.site_alerts import Alert, board_alerts
from tui.site_board import BoardMap
from tui.site_checkin import CheckInScreen
from tui.site_client import Board, CheckedIn, SiteClient, Workstation
from tui.site_fault import FaultScreen
from tui.states import PROVINCE_TZ, hhmm, look, short_workstation, window_text
from tui.tables import refill, selected_key

LEVEL_STYLE = {"error": "bold white on red", "warning": "bold yellow", "ok": "green",
               "info": ""}
HELP = [
    ("c", N_("check in an expert: ID number + code -> workstation")),
    ("f", N_("mark the selected workstation faulty (with a reason)")),
    ("r", N_("put the selected workstation back in service")),
    (N_("Up / Down"), N_("select a workstation in the table")),
    ("1 / 2 / 3", N_("board / sessions of the day / alerts")),
    ("?", N_("this help")),
    ("q", N_("quit")),
]
HELP_NOTE = N_("Colours: green free, yellow reserved (R), blue signed in (S), magenta "
               "evaluating (E), red fault (X), grey offline (-). Sessions are opaque: the "
               "site is not told which project a workstation serves.")


class BoardUpdated(Message):
    def __init__(self, board: Board) -> None:
        super().__init__()
        self.board = board


class AgentLink(Message):
    def __init__(self, ok: bool, detail: str = "") -> None:
        super().__init__()
        self.ok = ok
        self.detail = detail


class SiteConsole(App[None]):
    TITLE = "evalgrid site console"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #alert { height: 1; padding: 0 1; }
    BoardMap { border-top: solid $accent; }
    TabbedContent { height: 1fr; }
    DataTable { height: 1fr; }
    """
    # The footer's words are translated when the app is built (see __init__).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", N_("help")),
        Binding("c", "check_in", N_("check in")),
        Binding("f", "fault", N_("faulty")),
        Binding("r", "in_service", N_("in service")),
        Binding("1", "tab('board')", N_("board"), show=False),
        Binding("2", "tab('sessions')", N_("sessions"), show=False),
        Binding("3", "tab('alerts')", N_("alerts"), show=False),
        Binding("q", "quit", N_("quit")),
    ]

    def __init__(self, client: SiteClient, site_id: str, *, reconnect_s: float = 1.0) -> None:
        super().__init__()
        translate_footer(self)
        self.client = client
        self.site_id = site_id
        self.board: Board | None = None
        self.agent_ok = False
        self.alerts: list[Alert] = []
        self._reconnect_s = reconnect_s
        self._link_alerted = False

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="alert")
        yield BoardMap()
        with TabbedContent(initial="board"):
            with TabPane(_("Workstations [1]"), id="board"):
                yield DataTable(id="ws", cursor_type="row", zebra_stripes=True)
            with TabPane(_("Sessions [2]"), id="sessions"):
                yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
            with TabPane(_("Alerts [3]"), id="alerts"):
                yield RichLog(id="alert-log", wrap=True, markup=False, max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ws", DataTable).add_columns(
            _("Room"), _("WS"), _("State"), _("Session"), _("Time"), _("Note"))
        self.query_one("#sessions-table", DataTable).add_columns(
            _("Time"), _("Session"), _("Room"), _("Workstation"))
        self.query_one("#ws", DataTable).focus()
        self._show_status()
        self._follow_board()

    # --- the board stream ------------------------------------------------------------------

    @work(exclusive=True, group="board")
    async def _follow_board(self) -> None:
        """Follow the agent's board; reconnect after a drop (the link may come back)."""
        while True:
            try:
                async for board in self.client.watch_board():
                    self.post_message(BoardUpdated(board))
            except ClientError as exc:
                self.post_message(AgentLink(False, str(exc)))
            await asyncio.sleep(self._reconnect_s)

    @on(BoardUpdated)
    def _board_updated(self, message: BoardUpdated) -> None:
        if not self.agent_ok:
            if self._link_alerted:
                self.alert(Alert("ok", _("agent link restored")))
            self.agent_ok = True
            self._link_alerted = False
        for alert in board_alerts(self.board, message.board):
            self.alert(alert)
        self.board = message.board
        self._show_board()

    @on(AgentLink)
    def _agent_link(self, message: AgentLink) -> None:
        if not self._link_alerted:  # once per outage, not once per reconnect attempt
            self.alert(Alert("error", _("agent unreachable: {reason}").format(
                reason=message.detail)))
            self._link_alerted = True
        self.agent_ok = False
        self._show_status()

    # --- drawing ---------------------------------------------------------------------------

    def _show_status(self) -> None:
        text = Text(_("SITE {site}").format(site=self.site_id) + "  ", style="bold")
        board = self.board
        if not self.agent_ok:
            text.append(f" {_('agent unreachable')} ", style=LEVEL_STYLE["error"])
        elif board is not None and not board.coordinator_connected:
            text.append(f" {_('coordinator LINK LOST')} ", style=LEVEL_STYLE["error"])
        else:
            text.append(_("coordinator") + " ", style="")
            text.append(_("connected"), style="bold green")
        if board is not None:
            counts: dict[str, int] = {}
            for ws in board.workstations:
                counts[ws.state] = counts.get(ws.state, 0) + 1
            text.append("  " + _("{n} ws  {sessions} sessions").format(
                n=len(board.workstations), sessions=len(board.sessions)))
            if counts.get("fault"):
                text.append("  " + _("{n} faulty").format(n=counts["fault"]), style="bold red")
        self.query_one("#status", Static).update(text)

    def _show_board(self) -> None:
        board = self.board
        if board is None:
            return
        self.query_one(BoardMap).board = board
        rows = []
        for ws in sorted(board.workstations, key=lambda w: (w.room_id, w.workstation_id)):
            state = look(ws.state)
            rows.append((ws.workstation_id, (
                ws.room_name or ws.room_id, short_workstation(ws.workstation_id, ws.room_id),
                Text(f"{state.mark} {state.label}", style=state.style), ws.session_id,
                f"{hhmm(ws.start)}-{hhmm(ws.end)}" if ws.start else "", ws.detail)))
        table = self.query_one("#ws", DataTable)
        refill(table, rows)
        self.query_one(BoardMap).selected = selected_key(table) or ""
        rooms = {ws.room_id: ws.room_name or ws.room_id for ws in board.workstations}
        refill(self.query_one("#sessions-table", DataTable), [
            (s.session_id, (window_text(s.start, s.end), s.session_id,
                            rooms.get(s.room_id, s.room_id), s.workstation_id))
            for s in board.sessions])
        self._show_status()

    @on(DataTable.RowHighlighted, "#ws")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(BoardMap).selected = str(event.row_key.value or "")

    def alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        stamp = datetime.now(PROVINCE_TZ).strftime("%H:%M:%S")
        self.query_one("#alert-log", RichLog).write(
            Text(f"{stamp} {alert.text}", style=LEVEL_STYLE.get(alert.level, "")))
        self.query_one("#alert", Static).update(
            Text(alert.text, style=LEVEL_STYLE.get(alert.level, "")))
        self._show_status()

    # --- actions ---------------------------------------------------------------------------

    def _selected(self) -> Workstation | None:
        key = selected_key(self.query_one("#ws", DataTable))
        if self.board is None or key is None:
            return None
        return next((w for w in self.board.workstations if w.workstation_id == key), None)

    def _describe(self, checked: CheckedIn) -> str:
        ws = next((w for w in (self.board.workstations if self.board else ())
                   if w.workstation_id == checked.workstation_id), None)
        room = (ws.room_name if ws else "") or checked.room_id
        return _("workstation {workstation} in {room}").format(
            workstation=checked.workstation_id, room=room)

    def action_check_in(self) -> None:
        self.push_screen(CheckInScreen(self.client.check_in, self._describe,
                                       lambda text, ok: self.alert(
                                           Alert("ok" if ok else "warning", text))))

    def action_fault(self) -> None:
        ws = self._selected()
        if ws is None:
            self.alert(Alert("warning", _("select a workstation first")))
            return
        note = _("session {session} is reserved on it").format(
            session=ws.session_id) if ws.session_id else ""

        def marked(detail: str | None) -> None:
            if detail is not None:
                self._mark(ws.workstation_id, True, detail)

        self.push_screen(FaultScreen(ws.workstation_id, note), marked)

    def action_in_service(self) -> None:
        ws = self._selected()
        if ws is None:
            self.alert(Alert("warning", _("select a workstation first")))
            return
        if ws.state != "fault":
            self.alert(Alert("info", _("{workstation} is not marked faulty").format(
                workstation=ws.workstation_id)))
            return
        self._mark(ws.workstation_id, False, "")

    @work(group="actions")
    async def _mark(self, workstation_id: str, fault: bool, detail: str) -> None:
        try:
            state = await self.client.mark(workstation_id, fault, detail)
        except ClientError as exc:
            self.alert(Alert("error", _("{workstation}: not changed: {reason}").format(
                workstation=workstation_id, reason=exc)))
            return
        what = _("marked faulty") if fault else _("back in service")
        self.notify(f"{workstation_id} {what} ({look(state).label})")

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"board": "#ws", "sessions": "#sessions-table", "alerts": "#alert-log"}[tab]
        self.query_one(target).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(N_("site console"), HELP, HELP_NOTE))


    async def action_quit(self) -> None:
        self.exit()

    async def on_unmount(self) -> None:
        await self.client.close()

