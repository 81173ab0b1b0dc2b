"""The operator console (`evalgrid tui operator`): the province at a glance, projects, the
exceptions queue with the supplementary draw, the audit feed, and search.

Two workers follow the coordinator's server streams (`Operator.WatchGrid`, `Operator.Watch`);
each update arrives as a message and the tables redraw from it: nothing polls here. (The
coordinator sends a grid snapshot after every change, and re-checks every 5 s because a seat
becomes a no-show by the clock alone; an unchanged snapshot is not resent.) The console
shows opaque sessions and seat states, never who an expert is.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    RichLog,
    Static,
    TabbedContent,
    TabPane,
)

from evalgrid.i18n import N_, _, first_of
from tui.audit_lines import alarming, audit_line
from tui.client_errors import ClientError
from tui.footer import translate_footer
from tui.help_screen import HelpScreen
from tui.operator_client import AuditEvent, GridView, OperatorClient, SeatRow
from tui.operator_draw import DrawRequest, SupplementaryDrawScreen
from tui.operator_model import (
    Issue,
    city_use,
    exceptions_queue,
    matches,
    project_lines,
)
from tui.operator_seats import ProjectSeatsScreen
from tui.operator_steps import OperatorStepScreen
from tui.states import PROVINCE_TZ, window_text
from tui.tables import refill, selected_key

AUDIT_TAIL = 200
AUDIT_KEEP = 2000
LEVEL_STYLE = {"error": "bold white on red", "warning": "bold yellow", "ok": "green",
               "info": ""}
STATE_STYLE = {"registered": "", "drawn": "yellow", "evaluating": "bold blue",
               "reported": "green"}
TABS = ("province", "sites", "projects", "exceptions", "audit")
HELP = [
    ("1 .. 5", N_("province / sites / projects / exceptions / audit feed")),
    (N_("Up / Down"), N_("select a row")),
    ("Enter", N_("on a project: its seats (then d for a leave or no-show)")),
    ("d", N_("supplementary draw for the selected exception (or project seat)")),
    ("c", N_("close the selected project's evaluation (signed report)")),
    ("n / r / x", N_("notices of the project / resend one / record a decline")),
    ("i / e", N_("incidents / decide one (wait, postpone, reevaluate)")),
    ("u", N_("lift a sign-in lockout (site, workstation or session, reason)")),
    ("s", N_("service by site and city (in it, p changes the period)")),
    ("/", N_("search project or site (filters every list); Enter keeps it")),
    ("Esc", N_("clear the search")),
    ("?", N_("this help")),
    ("q", N_("quit")),
]
# Keys that change the grid: an auditor's console neither shows nor accepts them.
OPERATOR_ONLY = {"draw", "step"}
HELP_ACTIONS = {"d": "draw", "c": "step", "n / r / x": "step", "i / e": "step", "u": "step"}
HELP_NOTE = N_("Exceptions: * needs a supplementary draw, o open, blank = history. A no-show "
               "is a seat not signed in after its window opened; faults come from the guest "
               "site's staff. The coordinator redraws under the same rules, chained to the "
               "first draw, and audits it.")
# Words for codes the coordinator sends (exception kinds, project and seat states): English
# shows the code itself, as before; the catalogue gives the trading centre's word.
CODE_WORDS = (N_("no_show"), N_("no-show"), N_("decline"), N_("leave"), N_("recusal"),
              N_("displaced"), N_("site_offline"), N_("awaited"), N_("late"), N_("incident"),
              N_("registered"), N_("drawn"), N_("reported"), N_("OPERATOR"), N_("AUDITOR"),
              N_("operator"), N_("auditor"), N_("notified"), N_("accepted"), N_("signed_in"),
              N_("signed"), N_("declined"), N_("left"), N_("recused"), N_("lost"),
              N_("redrawn"), N_("awaiting repair"), N_("decision due"), N_("waiting"),
              N_("closed"), N_("postponed"), N_("reevaluated"), N_("resumed"))



class GridUpdated(Message):
    def __init__(self, view: GridView) -> None:
        super().__init__()
        self.view = view


class AuditArrived(Message):
    def __init__(self, event: AuditEvent) -> None:
        super().__init__()
        self.event = event


class LinkDown(Message):
    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail


class OperatorConsole(App[None]):
    TITLE = "evalgrid operator console"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; }
    #alert { height: 1; padding: 0 1; }
    #search { display: none; height: 3; }
    #search.active { display: block; }
    #summary { height: auto; padding: 0 1; }
    #issue { height: 3; padding: 0 1; border-top: solid $accent; }
    .row-detail { height: 3; padding: 0 1; border-top: solid $accent; }
    TabbedContent { height: 1fr; }
    DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", N_("help")),
        Binding("slash", "search", N_("search")),
        Binding("d", "draw", N_("suppl. draw")),
        Binding("s", "service", N_("service"), show=False),  # in the help: the footer is full
        Binding("escape", "clear_search", N_("clear"), show=False),
        *(Binding(key, f"step('{name}')", name, show=False) for key, name in (
            ("c", "close"), ("n", "notices"), ("r", "resend"), ("x", "decline"),
            ("i", "incidents"), ("e", "decide"), ("u", "unlock"))),
        *(Binding(str(i + 1), f"tab('{tab}')", tab, show=False) for i, tab in enumerate(TABS)),
        Binding("q", "quit", N_("quit")),
    ]

    def __init__(self, client: OperatorClient, operator: str, *, banner: str = "",
                 reconnect_s: float = 1.0, role: str = "operator") -> None:
        super().__init__()
        translate_footer(self)
        self.client = client
        self.operator = operator
        self.role = role  # operator | auditor: an auditor watches, never acts
        self.banner = banner
        self.view: GridView | None = None
        self.issues: list[Issue] = []
        self.events: deque[AuditEvent] = deque(maxlen=AUDIT_KEEP)
        self.query_text = ""
        self.linked = False
        self.last_alert = ""
        self._reconnect_s = reconnect_s
        self._link_alerted = False
        self._drawing: set[str] = set()

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="alert")
        yield Input(placeholder=_("search: project id or name, site id, city, session"),
                    id="search")
        with TabbedContent(initial="province"):
            with TabPane(_("Province [1]"), id="province"):
                yield Static(id="summary")
                yield DataTable(id="cities", cursor_type="row", zebra_stripes=True)
            with TabPane(_("Sites [2]"), id="sites"):
                yield DataTable(id="sites-table", cursor_type="row", zebra_stripes=True)
                yield Static(id="site-detail", classes="row-detail")
            with TabPane(_("Projects [3]"), id="projects"):
                yield DataTable(id="projects-table", cursor_type="row", zebra_stripes=True)
                yield Static(id="project-detail", classes="row-detail")
            with TabPane(_("Exceptions [4]"), id="exceptions"):
                yield DataTable(id="exceptions-table", cursor_type="row", zebra_stripes=True)
                yield Static(id="issue")
            with TabPane(_("Audit [5]"), id="audit"):
                yield RichLog(id="audit-log", markup=False, max_lines=AUDIT_KEEP)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#cities", DataTable).add_columns(
            _("City"), _("Sites"), _("Online"), _("WS"), _("In use"), _("Use"), _("Fault"),
            _("Offline"))
        self.query_one("#sites-table", DataTable).add_columns(
            _("Site"), _("City"), _("Link"), _("WS"), _("Free"), _("Resv"), _("In"), _("Eval"),
            _("Fault"), _("Off"), _("Name"))
        self.query_one("#projects-table", DataTable).add_columns(
            _("Project"), _("State"), _("Window"), _("Host"), _("Seats"), _("Draws"), _("Open"),
            _("Name"))
        self.query_one("#exceptions-table", DataTable).add_columns(
            "", _("Kind"), _("Project"), _("Site"), _("Detail"), _("Session / WS"))
        search = self.query_one("#search", Input)
        search.cursor_blink = False if self.is_headless else search.cursor_blink
        self.query_one("#cities", DataTable).focus()
        self._show_status()
        self._follow_grid()
        self._follow_audit()

    # --- the streams -----------------------------------------------------------------------

    @work(exclusive=True, group="grid")
    async def _follow_grid(self) -> None:
        while True:
            try:
                async for view in self.client.watch_grid():
                    self.post_message(GridUpdated(view))
            except ClientError as exc:
                self.post_message(LinkDown(str(exc)))
            await asyncio.sleep(self._reconnect_s)

    @work(exclusive=True, group="audit")
    async def _follow_audit(self) -> None:
        while True:
            last = self.events[-1].seq if self.events else 0
            try:
                stream = self.client.watch_audit(after=last) if last else \
                    self.client.watch_audit(tail=AUDIT_TAIL)
                async for event in stream:
                    self.post_message(AuditArrived(event))
            except ClientError:
                pass  # the grid stream reports the link; this one just comes back with it
            await asyncio.sleep(self._reconnect_s)

    @on(GridUpdated)
    def _grid_updated(self, message: GridUpdated) -> None:
        if self._link_alerted:
            self.alert("ok", _("coordinator link restored"))
        self.linked = True
        self._link_alerted = False
        self.view = message.view
        self.issues = exceptions_queue(message.view)
        self._show_grid()

    @on(AuditArrived)
    def _audit_arrived(self, message: AuditArrived) -> None:
        event = message.event
        if self.events and event.seq and event.seq <= self.events[-1].seq:
            return  # replayed after a reconnect
        self.events.append(event)
        if self._event_matches(event):
            self.query_one("#audit-log", RichLog).write(self._event_line(event))

    @on(LinkDown)
    def _link_down(self, message: LinkDown) -> None:
        if not self._link_alerted:
            self.alert("error", _("coordinator unreachable: {reason}").format(
                reason=message.detail))
            self._link_alerted = True
        self.linked = False
        self._show_status()

    # --- drawing ---------------------------------------------------------------------------

    def _show_status(self) -> None:
        text = Text(f"{_(self.role.upper())} {self.operator}  ", style="bold")
        if self.banner:
            text.append(f"{self.banner}  ", style="bold magenta")
        if not self.linked:
            text.append(f" {_('coordinator unreachable')} " if self._link_alerted
                        else _("connecting..."),
                        style=LEVEL_STYLE["error"] if self._link_alerted else "italic")
        view = self.view
        if view is not None:
            if self.linked:
                text.append(view.now.astimezone(PROVINCE_TZ).strftime("%m-%d %H:%M"))
            online = sum(s.online for s in view.sites)
            text.append("  " + _("sites {online}/{total}").format(
                online=online, total=len(view.sites)),
                        style="" if online == len(view.sites) else "bold yellow")
            waiting = sum(1 for i in self.issues if i.open and i.action)
            text.append("  " + _("draw needed {n}").format(n=waiting),
                        style="bold red" if waiting else "")
            if view.seed_waits:
                text.append("  " + _("seed wait {day}").format(day=view.seed_waits[0].day[5:]),
                            style="bold yellow")
        if self.query_text:
            text.append(f"  /{self.query_text}", style="bold cyan")
        self.query_one("#status", Static).update(text)

    def _show_grid(self) -> None:
        view = self.view
        if view is None:
            return
        q = self.query_text
        cities = city_use(view)
        ws_total = sum(c.workstations for c in cities)
        in_use = sum(c.in_use for c in cities)
        states = Counter(p.state for p in view.projects)
        open_issues = [i for i in self.issues if i.open]
        summary = Text()
        online = sum(s.online for s in view.sites)
        offline = len(view.sites) - online
        summary.append(_("Sites {n} ({online} online").format(n=len(view.sites), online=online))
        summary.append(_(", {n} OFFLINE").format(n=offline) if offline else "",
                       style="bold white on red" if offline else "")
        summary.append(_(").  Workstations {n}: {in_use} in use, {fault} fault, "
                         "{offline} offline.").format(
            n=ws_total, in_use=in_use, fault=sum(c.fault for c in cities),
            offline=sum(c.offline for c in cities)) + "\n")
        summary.append(_("Experts {experts}.  Projects {n}: ").format(
            experts=view.experts, n=len(view.projects))
                       + _(", ").join(f"{states.get(s, 0)} {_(s)}" for s in
                                      ("registered", "drawn", "evaluating", "reported"))
                       + _(".") + "\n")
        summary.append(_("Exceptions open {n} ({draws} need a draw).  "
                         "Audit head #{head}.").format(
            n=len(open_issues), draws=sum(1 for i in open_issues if i.action),
            head=view.audit_head))
        self.query_one("#summary", Static).update(summary)
        refill(self.query_one("#cities", DataTable), [
            (c.city, (c.city, c.sites, c.online, c.workstations, c.in_use,
                      f"{100 * c.in_use // c.workstations if c.workstations else 0}%",
                      Text(str(c.fault), style="bold red" if c.fault else ""),
                      Text(str(c.offline), style="yellow" if c.offline else "")))
            for c in cities if matches(q, c.city)])
        refill(self.query_one("#sites-table", DataTable), [
            (s.site_id, (s.site_id, s.city,
                         Text(_("online"), style="green") if s.online else
                         Text(_("OFFLINE"), style="bold white on red"),
                         s.workstations, *(s.states.get(k, 0) for k in (
                             "free", "reserved", "signed_in", "evaluating")),
                         Text(str(s.states.get("fault", 0)),
                              style="bold red" if s.states.get("fault") else ""),
                         s.states.get("offline", 0), s.name))
            for s in view.sites if matches(q, s.site_id, s.name, s.city)])
        refill(self.query_one("#projects-table", DataTable), [
            (line.project.project_id, (
                line.project.project_id,
                Text(_(line.project.state), style=STATE_STYLE.get(line.project.state, "")),
                window_text(line.project.start, line.project.end), line.project.host_site_id,
                f"{line.seated}/{line.project.drawn_seats}" if line.draws else "-",
                line.draws or "-",
                Text(str(line.issues), style="bold red") if line.issues else "",
                line.project.name))
            for line in project_lines(view, self.issues)
            if matches(q, line.project.project_id, line.project.name,
                       line.project.host_site_id)])
        refill(self.query_one("#exceptions-table", DataTable), [
            (i.key, (Text("*" if i.action else "o", style="bold red" if i.action else "yellow")
                     if i.open else "",
                     Text(_(i.kind), style="bold" if i.open else "dim"), i.project_id or "-",
                     first_of(i.sites) or i.site_id, i.detail,
                     i.session_id or i.workstation_id))
            for i in self.issues
            if matches(q, i.project_id, i.site_id, i.session_id, i.workstation_id, i.kind,
                       *i.sites)])
        self._show_issue()
        self._show_project()
        self._show_site()
        self._show_status()

    def _selected_issue(self) -> Issue | None:
        key = selected_key(self.query_one("#exceptions-table", DataTable))
        return next((i for i in self.issues if i.key == key), None)

    @on(DataTable.RowHighlighted, "#exceptions-table")
    def _show_issue(self) -> None:
        """The whole of the selected exception, which the table cuts at 80 columns."""
        issue = self._selected_issue()
        text = Text()
        if issue is not None:
            text.append(f"{_(issue.kind)} ", style="bold")
            if issue.project_id:
                text.append(f"{issue.project_id} ")
            if issue.kind == "seed wait":
                text.append(_("{detail}; the day's draws wait for it (`evalgrid seed reveal`)"
                              ).format(detail=issue.detail))
            else:
                text.append(_("{session} at {site}/{workstation}: {detail}").format(
                    session=issue.session_id, site=", ".join(issue.sites) or issue.site_id,
                    workstation=issue.workstation_id, detail=issue.detail))
            if issue.action and self.role == "operator":
                text.append("  " + _("d: supplementary draw ({reason})").format(
                    reason=_(issue.action)), style="bold red")
            elif issue.action:
                text.append("  " + _("needs a supplementary draw ({reason})").format(
                    reason=_(issue.action)), style="bold red")
        self.query_one("#issue", Static).update(text)

    @on(DataTable.RowHighlighted, "#projects-table")
    def _show_project(self) -> None:
        """The selected project's whole name and committee, which the table cuts at 80."""
        key = selected_key(self.query_one("#projects-table", DataTable))
        project = next((p for p in self.view.projects if p.project_id == key),
                       None) if self.view else None
        text = Text()
        if project is not None:
            text.append(f"{project.project_id} ", style="bold")
            text.append(f"{project.name}\n"
                        + _("committee {n}").format(n=project.committee_size))
            if project.tenderer_reps:
                text.append(_(": {drawn} drawn + {reps} tenderer representative(s), not on "
                              "the grid").format(drawn=project.drawn_seats,
                                                 reps=project.tenderer_reps))
        self.query_one("#project-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#sites-table")
    def _show_site(self) -> None:
        key = selected_key(self.query_one("#sites-table", DataTable))
        site = next((s for s in self.view.sites if s.site_id == key),
                    None) if self.view else None
        text = Text()
        if site is not None:
            text.append(f"{site.site_id} ", style="bold")
            text.append(f"{site.name} ({site.city})\n")
            text.append(_("link {link}").format(
                link=_(site.link or ("online" if site.online else "offline"))) + "; "
                        + ", ".join(f"{f.workstation_id} {_(f.state)}" for f in site.flagged))
        self.query_one("#site-detail", Static).update(text)

    def _event_matches(self, event: AuditEvent) -> bool:
        return matches(self.query_text, event.subject, event.kind, event.detail)

    @staticmethod
    def _event_line(event: AuditEvent) -> Text:
        return Text(audit_line(event), style="bold red" if alarming(event.kind) else "")

    def _refresh_audit(self) -> None:
        log = self.query_one("#audit-log", RichLog)
        log.clear()
        shown = [e for e in self.events if self._event_matches(e)][-500:]
        for event in shown:
            log.write(self._event_line(event))

    def alert(self, level: str, text: str) -> None:
        self.last_alert = text
        self.query_one("#alert", Static).update(Text(text, style=LEVEL_STYLE.get(level, "")))
        self._show_status()

    # --- search ----------------------------------------------------------------------------

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.add_class("active")
        search.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self._show_grid()
        self._refresh_audit()
        self._show_status()

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.query_one("#search", Input).remove_class("active")
        self._focus_tab()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        search.remove_class("active")
        if search.value:
            search.value = ""  # Input.Changed redraws everything
        self._focus_tab()

    # --- actions ---------------------------------------------------------------------------

    def _focus_tab(self) -> None:
        tab = self.query_one(TabbedContent).active or "province"
        target = {"province": "#cities", "sites": "#sites-table", "projects": "#projects-table",
                  "exceptions": "#exceptions-table", "audit": "#audit-log"}[tab]
        self.query_one(target).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """An auditor's console has no key that changes the grid (hidden, and refused)."""
        return not (self.role != "operator" and action in OPERATOR_ONLY)

    def action_draw(self) -> None:
        tab = self.query_one(TabbedContent).active
        if tab == "projects":
            self._open_seats()
            return
        if tab != "exceptions":
            self.action_tab("exceptions")
            self.alert("info", _("select an exception marked * and press d"))
            return
        issue = self._selected_issue()
        if issue is None:
            return
        if not issue.action:
            self.alert("warning", _("{kind}: no supplementary draw applies to this row").format(
                kind=_(issue.kind)))
            return
        caveat = "" if issue.kind == "no_show" else _(
            "The coordinator cannot yet move a member to a spare workstation: this releases "
            "the seat and redraws venue, workstation and expert, recorded as a {reason}."
        ).format(reason=_(issue.action))
        self._confirm_draw(DrawRequest(issue.project_id, issue.session_id, issue.site_id,
                                       issue.workstation_id, issue.action,
                                       f"{_(issue.kind)}: {issue.detail}", caveat))

    @on(DataTable.RowSelected, "#projects-table")
    def _project_selected(self) -> None:
        self._open_seats()

    def _open_seats(self) -> None:
        key = selected_key(self.query_one("#projects-table", DataTable))
        view = self.view
        project = next((p for p in view.projects if p.project_id == key), None) if view else None
        if project is None or view is None:
            return
        seats = [s for s in view.seats if s.project_id == project.project_id]
        if not seats:
            self.alert("info", _("{project} is {state}: seats are shown while a project is "
                                 "drawn or under evaluation").format(
                project=project.project_id, state=_(project.state)))
            return

        def chosen(seat: SeatRow | None) -> None:
            if seat is not None:
                reason = "leave" if project.state == "drawn" else "no_show"
                self._confirm_draw(DrawRequest(project.project_id, seat.session_id,
                                               seat.site_id, seat.workstation_id, reason,
                                               f"{reason} filed by the operator"))

        self.push_screen(ProjectSeatsScreen(project, seats,
                                            can_draw=self.role == "operator",
                                            story=self.client.project_story), chosen)

    def _confirm_draw(self, request: DrawRequest) -> None:
        if self.role != "operator":
            return  # the seats screen offers no draw to an auditor; nothing else gets here
        if request.session_id in self._drawing:
            self.alert("info", _("a draw for {session} is already under way").format(
                session=request.session_id))
            return

        def confirmed(result: DrawRequest | None) -> None:
            if result is not None:
                self._drawing.add(result.session_id)
                self._replace(result)

        self.push_screen(SupplementaryDrawScreen(request), confirmed)

    @work(group="actions")
    async def _replace(self, request: DrawRequest) -> None:
        self.alert("info", _("drawing a replacement for {session}...").format(
            session=request.session_id))
        try:
            outcome = await self.client.replace_member(
                request.project_id, request.session_id, request.reason, request.note)
        except ClientError as exc:
            self.alert("error", _("{project}: draw refused: {reason}").format(
                project=request.project_id, reason=exc))
            return
        finally:
            self._drawing.discard(request.session_id)
        ok = outcome.endswith("redrawn")
        self.alert("ok" if ok else "warning",
                   _("{project}: {outcome} (session {session})").format(
                       project=request.project_id, outcome=_(outcome),
                       session=request.session_id))

    def action_step(self, name: str) -> None:
        """Another step of the day (tui/operator_steps.py), prefilled from the selection."""
        self.push_screen(OperatorStepScreen(name, self.client.step, self._step_values()))

    def _step_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        tab = self.query_one(TabbedContent).active
        if tab == "projects":
            values["project"] = selected_key(self.query_one("#projects-table", DataTable)) or ""
        issue = self._selected_issue() if tab == "exceptions" else None
        if issue is not None:
            values.update(project=issue.project_id, site=issue.site_id,
                          workstation=issue.workstation_id, session=issue.session_id)
            if issue.kind.startswith("incident"):
                values["incident"] = issue.key.split(":", 1)[-1]
        return {k: v for k, v in values.items() if v}

    def action_service(self) -> None:
        """The province's service figures (tui/operator_service.py), from today."""
        from tui.operator_service import ServiceScreen

        now = self.view.now if self.view is not None else datetime.now(PROVINCE_TZ)
        self.push_screen(ServiceScreen(self.client, now.astimezone(PROVINCE_TZ).date()))

    def action_help(self) -> None:
        keys = [(k, what) for k, what in HELP
                if self.role == "operator" or HELP_ACTIONS.get(k) not in OPERATOR_ONLY]
        if self.role != "operator":
            keys = [(k, N_("on a project: its seats (read only)") if k == "Enter" else what)
                    for k, what in keys]
        note = HELP_NOTE if self.role == "operator" else N_(
            "Auditor's view: everything the operator sees, read only; no key changes the grid.")
        self.push_screen(HelpScreen(_("{role} console").format(role=_(self.role)), keys, note))


    async def action_quit(self) -> None:
        self.exit()

    async def on_unmount(self) -> None:
        await self.client.close()

