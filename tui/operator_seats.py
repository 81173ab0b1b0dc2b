"""The seats of one project, as an operator may see them: opaque sessions and states.

From here the operator files a leave before opening (or a no-show once evaluating) for a
seat that is not in the exceptions queue; the screen returns the chosen seat.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from evalgrid.i18n import N_, _
from tui.footer import translate_footer
from tui.operator_client import ProjectRow, SeatRow
from tui.operator_model import WAITING
from tui.states import hhmm, window_text
from tui.tables import selected_key


class ProjectSeatsScreen(ModalScreen[SeatRow | None]):
    DEFAULT_CSS = """
    ProjectSeatsScreen { align: center middle; }
    ProjectSeatsScreen > Vertical {
        width: 78; height: 20; border: round $accent; background: $surface; padding: 0 1;
    }
    ProjectSeatsScreen DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", N_("close")),
        Binding("d", "draw", N_("supplementary draw")),
    ]

    def __init__(self, project: ProjectRow, seats: list[SeatRow], *,
                 can_draw: bool = True) -> None:
        super().__init__()
        translate_footer(self)
        self.project = project
        self.seats = seats
        self.can_draw = can_draw  # an auditor sees the seats, and draws nothing

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
