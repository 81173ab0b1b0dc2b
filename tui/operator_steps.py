"""The operator's other steps of a day, from the console: close an evaluation, lift a sign-in
lockout, list notices, resend one or record a decline, list incidents and decide one.

Each key opens `OperatorStepScreen`: the step's fields (prefilled from the selected row where
there is one), Enter runs it through `OperatorClient.step`, and the coordinator's answer (or
its refusal, naming the field and the reason) is shown in the same box; Esc closes it. The
coordinator authorizes and audits every step; lists show opaque ids, never a name or a code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from evalgrid.i18n import N_, _
from tui.client_errors import ClientError
from tui.footer import translate_footer


@dataclass(frozen=True)
class Step:
    title: str
    fields: tuple[str, ...]  # the inputs, in order
    required: tuple[str, ...]  # those that may not be empty
    writes: bool = True


#: The steps by name (the name is what `OperatorClient.step` is given).
STEPS: Mapping[str, Step] = {
    "close": Step(N_("Close the evaluation: aggregate, signed report, seeds revealed"),
                  ("project",), ("project",)),
    "unlock": Step(N_("Lift a sign-in lockout (audited)"),
                   ("site", "workstation", "session", "reason"), ("site", "reason")),
    "notices": Step(N_("Notices of a project (no codes, no names)"), ("project",),
                    ("project",), writes=False),
    "resend": Step(N_("Send a notice again (same code; audited)"), ("notice", "reason"),
                   ("notice", "reason")),
    "decline": Step(N_("Record a decline: the seat is redrawn at once"), ("notice", "reason"),
                    ("notice", "reason")),
    "incidents": Step(N_("Incidents (open and of the last day)"), (), (), writes=False),
    "decide": Step(N_("Decide an incident: wait | postpone | reevaluate"),
                   ("incident", "decision", "note"), ("incident", "decision", "note")),
}
# The field names, as the placeholders show them.
FIELD_WORDS = (N_("project"), N_("site"), N_("workstation"), N_("session"), N_("reason"),
               N_("notice"), N_("incident"), N_("decision"), N_("note"))

Run = Callable[[str, Mapping[str, str]], Awaitable[str]]


class OperatorStepScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    OperatorStepScreen { align: center middle; }
    OperatorStepScreen > Vertical {
        width: 76; height: auto; max-height: 22; border: round $accent; background: $surface;
        padding: 0 1;
    }
    OperatorStepScreen #step-title { text-style: bold; }
    OperatorStepScreen Input { height: 3; }
    OperatorStepScreen #step-result { height: auto; max-height: 10; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_step", N_("close"))]

    def __init__(self, name: str, run: Run, values: Mapping[str, str] | None = None) -> None:
        super().__init__()
        translate_footer(self)
        self.step_name = name
        self.step = STEPS[name]
        self.run = run
        self.values = dict(values or {})
        self.result = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(_(self.step.title), id="step-title")
            for field in self.step.fields:
                yield Input(value=self.values.get(field, ""), placeholder=_(field),
                            id=f"step-{field}", select_on_focus=False)
            yield Static(_("Enter: run   Esc: close"), id="step-keys")
            yield Static(id="step-result")

    def on_mount(self) -> None:
        inputs = list(self.query(Input))
        for field in inputs:
            field.cursor_blink = False if self.app.is_headless else field.cursor_blink
        empty = [i for i in inputs if not i.value]
        if inputs:
            (empty or inputs)[0].focus()
        else:
            self._run()  # nothing to ask: a list

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        at = inputs.index(event.input)
        if at + 1 < len(inputs) and not inputs[at + 1].value:
            inputs[at + 1].focus()  # Enter moves on until the form is filled
            return
        self._run()

    def _fields(self) -> dict[str, str]:
        return {field: self.query_one(f"#step-{field}", Input).value.strip()
                for field in self.step.fields}

    @work(exclusive=True, group="step")
    async def _run(self) -> None:
        fields = self._fields()
        missing = [f for f in self.step.required if not fields.get(f)]
        if missing:
            self._show(_("{field}: required").format(field=_(missing[0])), "bold red")
            return
        self._show("...", "italic")
        try:
            answer = await self.run(self.step_name, fields)
        except ClientError as exc:
            self._show(_("refused: {reason}").format(reason=exc), "bold red")

            return
        self._show(answer, "green" if self.step.writes else "")

    def _show(self, text: str, style: str) -> None:
        self.result = text
        self.query_one("#step-result", Static).update(Text(text, style=style))

    def action_dismiss_step(self) -> None:
        self.dismiss(None)
