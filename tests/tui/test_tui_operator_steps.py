"""The operator's other steps from the console (tui/operator_steps.py), against a fake
coordinator: each key opens its form prefilled from the selection, Enter runs it, the answer
or the refusal shows in the box, a missing field is named, and the box fits 80x24."""

from __future__ import annotations

from textual.widgets import Input
from tui_testkit import FakeOperatorClient, screen_text

from tui.client_errors import ClientError
from tui.operator_app import OperatorConsole
from tui.operator_steps import OperatorStepScreen

SIZE = (80, 24)
P1 = "P20260302-0001"


async def test_close_runs_on_the_selected_project_and_shows_the_answer() -> None:
    client = FakeOperatorClient(step_answer=f"{P1}: reported; report /r/{P1}.json")
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, OperatorStepScreen)
        assert app.screen.query_one("#step-project", Input).value == P1
        await pilot.press("enter")
        await pilot.pause()
        assert ("step", ("close", {"project": P1})) in client.calls
        text = screen_text(app)
        assert "Close the evaluation" in text
        assert f"{P1}: reported" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, OperatorStepScreen)


async def test_a_missing_field_is_named_and_nothing_is_sent() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("u")
        await pilot.pause()
        await pilot.press(*"S0001", "enter", *"W01", "enter", "enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, OperatorStepScreen)
        assert app.screen.result == "reason: required"
        assert not [c for c in client.calls if c[0] == "step"]
        app.screen.query_one("#step-reason", Input).value = "wrong codes, ID checked"
        app.screen.query_one("#step-reason", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert ("step", ("unlock", {"site": "S0001", "workstation": "W01", "session": "",
                                    "reason": "wrong codes, ID checked"})) in client.calls


async def test_a_refusal_is_shown_with_the_coordinators_reason() -> None:
    client = FakeOperatorClient(step_refusal=ClientError(
        "notice_id: unknown notice", code="NOT_FOUND"))
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        await pilot.press(*"ntc-x", "enter", *"lost SMS", "enter")
        await pilot.pause()
        assert isinstance(app.screen, OperatorStepScreen)
        assert app.screen.result == "refused: notice_id: unknown notice"
        assert "refused: notice_id: unknown notice" in screen_text(app)


async def test_lists_run_at_once_and_fit_the_box() -> None:
    client = FakeOperatorClient(step_answer="inc-1  P1  S0003  decision_due  may: wait")
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        await pilot.pause()
        assert ("step", ("incidents", {})) in client.calls
        assert "inc-1  P1  S0003  decision_due  may: wait" in screen_text(app)
