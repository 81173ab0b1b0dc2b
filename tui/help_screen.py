"""The `?` screen: every key of the console, so nobody needs a mouse or a manual."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from evalgrid.i18n import N_, _


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 76; height: auto; max-height: 22; border: round $accent;
        background: $surface; padding: 0 1;
    }
    HelpScreen #help-title { text-style: bold; }
    HelpScreen #help-foot { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", N_("close"), show=False),
    ]

    def __init__(self, title: str, keys: Sequence[tuple[str, str]], note: str = "") -> None:
        super().__init__()
        self._title = title
        self._keys = keys
        self._note = note

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self._keys:
            table.add_row(_(key), _(what))
        with Vertical():
            yield Static(_("Help - {title}").format(title=_(self._title)), id="help-title")
            yield Static(table, id="help-keys")
            if self._note:
                yield Static(_(self._note), id="help-note")
            yield Static(_("Esc, ? or q closes this help"), id="help-foot")


    def action_close(self) -> None:
        self.dismiss(None)
