"""Expert check-in at the desk: ID number and the notice's one-time code -> the workstation.

The coordinator checks both and answers only with the workstation reserved here for that
expert; the desk never learns the project.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from evalgrid.i18n import N_, _
from tui.client_errors import ClientError
from tui.footer import translate_footer
from tui.site_client import CheckedIn

CheckIn = Callable[[str, str], Awaitable[CheckedIn]]
Describe = Callable[[CheckedIn], str]
Report = Callable[[str, bool], None]


class CheckInScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    CheckInScreen { align: center middle; }
    CheckInScreen > Vertical {
        width: 60; height: auto; border: round $accent; background: $surface; padding: 0 1;
    }
    CheckInScreen Input { margin: 0 0 0 0; }
    CheckInScreen #checkin-result { height: auto; min-height: 2; padding: 1 0 0 0; }
    CheckInScreen .ok { color: $success; text-style: bold; }
    CheckInScreen .refused { color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", N_("close"))]

    def __init__(self, check_in: CheckIn, describe: Describe, report: Report) -> None:
        super().__init__()
        translate_footer(self)

        self._check_in = check_in
        self._describe = describe
        self._report = report

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(_("[b]Check in an expert[/b]   Enter: next / check   Esc: close"))
            yield Input(placeholder=_("ID number"), id="id-number")
            yield Input(placeholder=_("one-time code from the notice"), id="code")
            yield Static("", id="checkin-result")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False if self.app.is_headless else field.cursor_blink
        self.query_one("#id-number", Input).focus()

    @on(Input.Submitted, "#id-number")
    def _next(self) -> None:
        self.query_one("#code", Input).focus()

    @on(Input.Submitted, "#code")
    async def _submit(self) -> None:
        id_number = self.query_one("#id-number", Input).value.strip()
        code = self.query_one("#code", Input).value.strip()
        result = self.query_one("#checkin-result", Static)
        if not id_number or not code:
            result.set_classes("refused")
            result.update(_("Both the ID number and the code are needed."))
            return
        result.set_classes("")
        result.update(_("checking..."))
        try:
            checked = await self._check_in(id_number, code)
        except ClientError as exc:
            result.set_classes("refused")
            result.update(_("Refused: {reason}").format(reason=exc))
            self._report(_("check-in refused: {reason}").format(reason=exc), False)
            self.query_one("#code", Input).value = ""
            self.query_one("#code", Input).focus()
            return
        text = self._describe(checked)
        result.set_classes("ok")
        result.update(f"-> {text}")
        self._report(_("checked in: {what}").format(what=text), True)

        self.query_one("#id-number", Input).value = ""
        self.query_one("#code", Input).value = ""
        self.query_one("#id-number", Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)
