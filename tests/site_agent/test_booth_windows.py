"""Which reservation a booth signs in to: the one whose window contains now, not the earliest
still held (a morning project left open must not keep the afternoon's member out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from site_agent.booths import Booth, SiteBooths

DAY = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _booths(now: datetime) -> SiteBooths:
    booths = SiteBooths("S1", {"W1": Booth("W1", "R1", "V1")}, now=lambda: now)
    booths.reserve("morning", "W1", DAY, DAY + timedelta(hours=3), 1)
    booths.reserve("afternoon", "W1", DAY + timedelta(hours=5), DAY + timedelta(hours=8), 2)
    return booths


def test_the_window_containing_now_wins() -> None:
    assert _booths(DAY + timedelta(hours=1)).current_reservation("W1").session_id == "morning"
    afternoon = _booths(DAY + timedelta(hours=6))
    assert afternoon.current_reservation("W1").session_id == "afternoon"
    assert afternoon.board()[0].session_id == "afternoon"


def test_between_windows_the_next_one() -> None:
    assert _booths(DAY + timedelta(hours=4)).current_reservation("W1").session_id == \
        "afternoon"


def test_a_clock_out_of_step_follows_the_evaluations_started() -> None:
    """The demo's day runs on a simulated clock: the agent's clock is elsewhere, so the
    latest reservation whose evaluation has started (its pass arrived) is the one."""
    booths = _booths(DAY - timedelta(days=300))
    assert booths.current_reservation("W1").session_id == "morning"
    booths.started |= {"morning", "afternoon"}
    assert booths.current_reservation("W1").session_id == "afternoon"
    booths.release("afternoon", 3)
    assert booths.current_reservation("W1").session_id == "morning"
    assert "afternoon" not in booths.started
