"""The seats of one project, as an operator may see them: opaque sessions and states.

From here the operator files a leave before opening (or a no-show once evaluating) for a
seat that is not in the exceptions queue; the screen returns the chosen seat. Below the seats,
the project's story: its newest transitions (Operator.ProjectStory), in local time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from evalgrid.i18n import N_, _, fit, pad
from tui.client_errors import ClientError
from tui.footer import translate_footer
from tui.operator_client import ProjectRow, SeatRow, StoryLine
from tui.operator_model import WAITING
from tui.states import PROVINCE_TZ, hhmm, window_text
from tui.tables import selected_key


class ProjectSeatsScreen(ModalScreen[SeatRow | None]):
    DEFAULT_CSS = """
    ProjectSeatsScreen { align: center middle; }
    ProjectSeatsScreen > Vertical {
        width: 78; height: 20; border: round $accent; background: $surface; padding: 0 1;
    }
    ProjectSeatsScreen DataTable { height: 1fr; }
    ProjectSeatsScreen #story { height: 7; color: $text-muted; }
    """
    STORY_LINES = 6  # the newest transitions shown under the seats
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", N_("close")),
        Binding("d", "draw", N_("supplementary draw")),
    ]

    def __init__(self, project: ProjectRow, seats: list[SeatRow], *,
                 can_draw: bool = True,
                 story: Callable[[str, int], Awaitable[list[StoryLine]]] | None = None
                 ) -> None:
        super().__init__()
        translate_footer(self)
        self.project = project
        self.seats = seats
        self.can_draw = can_draw  # an auditor sees the seats, and draws nothing
        self.story = story

    def compose(self) -> ComposeResult:
        p = self.project
        with Vertical():
            yield Static(f"[b]{p.project_id}[/b] {_(p.state)}  "
                         f"{window_text(p.start, p.end)}  "
                         + _("committee {n}").format(n=p.committee_size)
                         + (_(" = {drawn}+{reps} rep.").format(drawn=p.drawn_seats,
                                                               reps=p.tenderer_reps)
                            if p.tenderer_reps else "") + "\n"
                         f"{p.name}")
            yield DataTable(id="seats", cursor_type="row", zebra_stripes=True)
            yield Static(_("story: loading") if self.story else "", id="story")
            yield Static(_("d: supplementary draw for the selected seat   Esc: close")
                         if self.can_draw else _("read only   Esc: close"), id="seats-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(_("Session"), _("Status"), _("Site"), _("Workstation"), _("In at"),
                          _("Draw"))
        for s in self.seats:
            table.add_row(s.session_id, _(s.status), s.site_id, s.workstation_id,
                          hhmm(s.signed_in_at), s.draw_id[-8:], key=s.session_id)
        table.focus()
        if self.story is not None:
            self.run_worker(self._load_story(self.story), exclusive=True)

    async def _load_story(self, story: Callable[[str, int], Awaitable[list[StoryLine]]]
                          ) -> None:
        pane = self.query_one("#story", Static)
        try:
            lines = await story(self.project.project_id, self.STORY_LINES)
        except ClientError as exc:
            pane.update(_("story: not available ({reason})").format(reason=exc)[:74])
            return
        pane.update(story_text(lines, self.STORY_LINES))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.can_draw or action != "draw"

    def action_draw(self) -> None:
        key = selected_key(self.query_one(DataTable))
        seat = next((s for s in self.seats if s.session_id == key), None)
        if seat is None:
            return
        if seat.status not in WAITING or self.project.state not in ("drawn", "evaluating"):
            self.query_one("#seats-hint", Static).update(
                "[red]" + _("no supplementary draw for a seat that is {status} in a project "
                            "that is {state}").format(status=_(seat.status),
                                                      state=_(self.project.state))
                + "[/red]")

            return
        self.dismiss(seat)

    def action_close(self) -> None:
        self.dismiss(None)


# The coordinator's event names (coordinator/domain/lifecycle.py), for the catalogue.
STORY_EVENTS = (N_("draw placed"), N_("window opened"), N_("report closed"),
                N_("materials sealed"), N_("notice accepted"), N_("departed"), N_("signed in"),
                N_("sheet signed"), N_("sheet returned"), N_("project"))


def _event(name: str) -> str:
    """`departed (no_show)`: the event's name translated, its reason as the state's."""
    head, _sep, reason = name.partition(" (")
    return _(head) + (f" ({_(reason.rstrip(')'))})" if reason else "")


def story_text(lines: list[StoryLine], shown: int) -> str:
    """The story pane: a title, then one transition a line (local time, 74 columns)."""
    title = _("story: the last {n} transitions (local time)").format(
        n=min(len(lines), shown)) if lines else _("story: no transitions yet")
    rows = [f"{x.at.astimezone(PROVINCE_TZ):%m-%d %H:%M} {pad(x.seat or _('project'), 20)} "
            f"{pad(_event(x.event), 19)} {_(x.before)}→{_(x.after)}" for x in lines[-shown:]]
    rows = [fit(row, 74) for row in rows]
    return "\n".join([title, *rows])
