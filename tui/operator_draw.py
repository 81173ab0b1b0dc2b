"""Confirming a supplementary draw: which seat, under which reason, with a note for the record.

The draw itself is the coordinator's (`ReplaceMember`): the seat is released and a replacement
drawn under the same rules, chained to the first draw; this screen only makes sure the operator
meant it. Enter confirms, Esc cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from evalgrid.i18n import N_, _, pad
from tui.footer import translate_footer

WHY = {
    "no_show": N_("no-show: the member has not signed in and the window is open"),
    "leave": N_("leave before opening: the member cannot sit (or the seat cannot be used)"),
}


@dataclass(frozen=True)
class DrawRequest:
    project_id: str
    session_id: str
    site_id: str
    workstation_id: str
    reason: str  # no_show | leave
    note: str
    caveat: str = ""  # shown before confirming, e.g. why a fault is redrawn as a no-show


class SupplementaryDrawScreen(ModalScreen[DrawRequest | None]):
    DEFAULT_CSS = """
    SupplementaryDrawScreen { align: center middle; }
    SupplementaryDrawScreen > Vertical {
        width: 72; height: auto; border: round $warning; background: $surface; padding: 0 1;
    }
    SupplementaryDrawScreen #draw-title { text-style: bold; }
    SupplementaryDrawScreen #draw-caveat { color: $warning; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", N_("cancel"))]

    def __init__(self, request: DrawRequest) -> None:
        super().__init__()
        translate_footer(self)
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        with Vertical():
            yield Static(_("Supplementary draw"), id="draw-title")
            yield Static("\n".join(pad(_(label), 9) + value for label, value in (
                (N_("project"), r.project_id), (N_("session"), r.session_id),
                (N_("seat"), f"{r.site_id} / {r.workstation_id}"),
                (N_("reason"), _(WHY.get(r.reason, r.reason))))))
            if r.caveat:
                yield Static(r.caveat, id="draw-caveat")
            yield Input(value=r.note, placeholder=_("note for the audit trail"), id="draw-note",
                        select_on_focus=False)
            yield Static(_("Enter: release the seat and draw a replacement   Esc: cancel"))


    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = False if self.app.is_headless else field.cursor_blink
        field.focus()

    @on(Input.Submitted)
    def _confirm(self, event: Input.Submitted) -> None:
        r = self.request
        self.dismiss(DrawRequest(r.project_id, r.session_id, r.site_id, r.workstation_id,
                                 r.reason, event.value.strip() or r.note, r.caveat))

    def action_cancel(self) -> None:
        self.dismiss(None)
