"""The province's service view on the operator console: periods, refusals, half-days."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from tui_testkit import FakeOperatorClient, sample_service, screen_text

from tui.client_errors import ClientError
from tui.operator_app import OperatorConsole
from tui.operator_service import HalfDay, ServiceScreen, half_day_text, period_dates


async def test_p_steps_through_the_periods_in_local_days() -> None:
    client = FakeOperatorClient()
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ServiceScreen)
        for _ in range(4):
            await pilot.press("p")
            await pilot.pause()
            await pilot.pause()
        asked = [c[1] for c in client.calls if c[0] == "service_stats"]
        today = date(2026, 3, 2)  # 09:20 in the province (01:20 UTC)
        assert asked == [(today, today), (date(2026, 2, 24), today),
                         (date(2026, 3, 1), today), (date(2026, 1, 1), today), (today, today)]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ServiceScreen)


async def test_an_auditor_sees_it_and_a_refusal_is_one_line() -> None:
    client = FakeOperatorClient(step_refusal=ClientError("to_day: a period of at most 366 days",
                                                        code="INVALID_ARGUMENT"))
    app = OperatorConsole(client, "aud-bob", role="auditor")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        await pilot.pause()
        text = screen_text(app)
        assert "to_day: a period of at most 366 days" in text
        assert "Traceback" not in text


def test_periods_and_half_day_lines() -> None:
    assert period_dates("quarter", date(2026, 11, 20)) == (date(2026, 10, 1),
                                                           date(2026, 11, 20))
    with pytest.raises(ValueError, match="period"):
        period_dates("year", date(2026, 1, 1))
    site = sample_service(date(2026, 3, 2), date(2026, 3, 2)).sites[0]
    assert half_day_text(site).endswith("03-02 AM 3/4  03-02 PM 1/4")
    many = replace(site, half_days=tuple(HalfDay(date(2026, 3, d), h, 2)
                                         for d in range(1, 31) for h in ("AM", "PM")))
    line = half_day_text(many)
    assert len(line) <= 2 * 76 and line.endswith("more")
