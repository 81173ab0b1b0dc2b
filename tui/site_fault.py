"""Marking a workstation faulty: which one, and a short reason the operators will see."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from evalgrid.i18n import N_, _
from tui.footer import translate_footer


class FaultScreen(ModalScreen[str | None]):
    """Returns the reason (possibly empty) on Enter, None on Esc."""

    DEFAULT_CSS = """
    FaultScreen { align: center middle; }
    FaultScreen > Vertical {
        width: 60; height: auto; border: round $error; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", N_("cancel"))]

    def __init__(self, workstation: str, session_note: str = "") -> None:
        super().__init__()
        translate_footer(self)

        self._workstation = workstation
        self._session_note = session_note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(_("[b]Mark {workstation} faulty[/b]  (Enter: mark, Esc: cancel)")
                         .format(workstation=self._workstation))
            if self._session_note:
                yield Static(self._session_note)
            yield Input(placeholder=_("what is wrong (e.g. screen dead)"), id="fault-detail")


    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = False if self.app.is_headless else field.cursor_blink
        field.focus()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
