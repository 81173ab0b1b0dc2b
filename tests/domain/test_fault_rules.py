"""The 2-hour and 4-hour rules of DOMAIN "Faults", at every boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.domain.fault_rules import (
    Decision,
    FaultRuleError,
    Incident,
    IncidentState,
    Phase,
    Response,
    allowed,
    decide,
    open_incident,
    phase_of,
    repaired,
    response_to,
    review,
)

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in UTC+8
M = timedelta(minutes=1)
H = timedelta(hours=1)


def before_evaluation(failed_at: datetime = START - 30 * M,
                      now: datetime | None = None) -> Incident:
    return open_incident("inc-1", "P1", "S1", "site lost", window_start=START,
                         failed_at=failed_at, evaluation_begun=False, now=now or failed_at)


def during_evaluation(failed_at: datetime = START + H,
                      now: datetime | None = None) -> Incident:
    return open_incident("inc-2", "P1", "S1", "site lost", window_start=START,
                         failed_at=failed_at, evaluation_begun=True, now=now or failed_at)


def test_phases() -> None:
    assert phase_of(START, START - M, evaluation_begun=False) is Phase.BEFORE_WINDOW
    assert phase_of(START, START, evaluation_begun=False) is Phase.BEFORE_EVALUATION
    assert phase_of(START, START + 3 * H, evaluation_begun=False) is Phase.BEFORE_EVALUATION
    assert phase_of(START, START + M, evaluation_begun=True) is Phase.DURING_EVALUATION
    assert response_to(Phase.BEFORE_WINDOW) is Response.REDRAW
    assert response_to(Phase.BEFORE_EVALUATION) is Response.AWAIT_REPAIR
    assert response_to(Phase.DURING_EVALUATION) is Response.AWAIT_REPAIR


def test_deadlines() -> None:
    # before evaluation the 2 hours run from the window start, whenever the failure was
    assert before_evaluation(START - 5 * H).deadline == START + 2 * H
    assert before_evaluation(START + 90 * M).deadline == START + 2 * H
    assert before_evaluation().phase is Phase.BEFORE_EVALUATION  # not redrawn: waits
    # during evaluation the 4 hours run from the failure
    assert during_evaluation(START + 3 * H).deadline == START + 7 * H


@pytest.mark.parametrize(("elapsed", "state"), [
    (119 * M, IncidentState.AWAITING_REPAIR),   # 1:59
    (120 * M, IncidentState.AWAITING_REPAIR),   # 2:00: still within
    (121 * M, IncidentState.DECISION_DUE),      # 2:01
])
def test_two_hours_from_the_start(elapsed: timedelta, state: IncidentState) -> None:
    assert review(before_evaluation(), START + elapsed).state is state


@pytest.mark.parametrize("elapsed", [119 * M, 120 * M, 121 * M, 10 * H])
def test_a_repair_before_evaluation_resumes_until_someone_postpones(elapsed: timedelta) -> None:
    incident = review(before_evaluation(), START + elapsed)
    back = repaired(incident, START + elapsed)
    assert back.state is IncidentState.RESUMED and back.repaired_at == START + elapsed


@pytest.mark.parametrize(("elapsed", "options"), [
    (119 * M, ()),
    (120 * M, ()),
    (121 * M, (Decision.WAIT, Decision.POSTPONE)),
])
def test_the_tenderer_decides_only_after_two_hours(elapsed: timedelta,
                                                   options: tuple[Decision, ...]) -> None:
    assert allowed(before_evaluation(), START + elapsed) == options


def test_a_decision_before_the_limit_is_refused_with_the_time_left() -> None:
    with pytest.raises(FaultRuleError, match=r"^decision: .*2 hours from the window start.*"
                                             r"0:01 left"):
        decide(before_evaluation(), "postpone", now=START + 119 * M, by="op")
    with pytest.raises(FaultRuleError, match="0:00 left"):
        decide(before_evaluation(), "wait", now=START + 120 * M, by="op")


def test_wait_then_postpone() -> None:
    waiting = decide(before_evaluation(), "wait", now=START + 121 * M, by="op-a",
                     note="tenderer waits")
    assert waiting.state is IncidentState.WAITING and waiting.open
    assert allowed(waiting, START + 3 * H) == (Decision.WAIT, Decision.POSTPONE)
    postponed = decide(waiting, "postpone", now=START + 3 * H, by="op-b")
    assert postponed.state is IncidentState.POSTPONED and not postponed.open
    assert [d.decision for d in postponed.decisions] == [Decision.WAIT, Decision.POSTPONE]
    with pytest.raises(FaultRuleError, match=r"^incident_id: .*already postponed"):
        decide(postponed, "wait", now=START + 4 * H, by="op")
    assert repaired(postponed, START + 5 * H) == postponed  # too late to matter


def test_a_repair_after_waiting_resumes() -> None:
    waiting = decide(before_evaluation(), "wait", now=START + 121 * M, by="op")
    assert repaired(waiting, START + 150 * M).state is IncidentState.RESUMED


@pytest.mark.parametrize(("elapsed", "state"), [
    (239 * M, IncidentState.RESUMED),       # 3:59
    (240 * M, IncidentState.RESUMED),       # 4:00: within
    (241 * M, IncidentState.DECISION_DUE),  # 4:01: a new committee must re-evaluate
])
def test_four_hours_from_the_failure(elapsed: timedelta, state: IncidentState) -> None:
    failed = START + H
    assert repaired(during_evaluation(failed), failed + elapsed).state is state


@pytest.mark.parametrize(("elapsed", "options"), [
    (239 * M, ()), (240 * M, ()), (241 * M, (Decision.REEVALUATE,)),
])
def test_re_evaluation_only_after_four_hours(elapsed: timedelta,
                                             options: tuple[Decision, ...]) -> None:
    failed = START + H
    assert allowed(during_evaluation(failed), failed + elapsed) == options


def test_during_evaluation_neither_wait_nor_postpone() -> None:
    failed = START + H
    with pytest.raises(FaultRuleError, match=r"^decision: wait is not open .*during evaluation"
                                             r".*allowed: reevaluate"):
        decide(during_evaluation(failed), "wait", now=failed + 5 * H, by="op")
    done = decide(during_evaluation(failed), "reevaluate", now=failed + 5 * H, by="op")
    assert done.state is IncidentState.REEVALUATED


def test_a_late_repair_during_evaluation_still_needs_the_new_committee() -> None:
    failed = START + H
    late = repaired(during_evaluation(failed), failed + 5 * H)
    assert late.state is IncidentState.DECISION_DUE and late.repaired_at == failed + 5 * H
    assert decide(late, "reevaluate", now=failed + 5 * H, by="op").state is \
        IncidentState.REEVALUATED


def test_unknown_decision_is_named() -> None:
    with pytest.raises(FaultRuleError, match=r"^decision: unknown 'cancel'"):
        decide(before_evaluation(), "cancel", now=START + 3 * H, by="op")


def test_opened_late_is_due_at_once() -> None:
    assert before_evaluation(START + 3 * H).state is IncidentState.DECISION_DUE


def test_round_trip() -> None:
    incident = decide(before_evaluation(), "wait", now=START + 3 * H, by="op", note="n")
    assert Incident.from_dict(incident.to_dict()) == incident
    back = repaired(during_evaluation(), START + 2 * H)
    assert Incident.from_dict(back.to_dict()) == back


def test_the_sites_concerned() -> None:
    """A site's incident concerns that site; an overdue evaluation's (no site failed) the
    sites it names; a record stored before `sites` existed reads as its site's."""
    assert before_evaluation().sites == ("S1",)
    overdue = open_incident("inc-3", "P1", "", "evaluation window ended", window_start=START,
                            failed_at=START + 3 * H, evaluation_begun=True,
                            now=START + 3 * H, sites=("S2", "S4"))
    assert overdue.site_id == "" and overdue.sites == ("S2", "S4")
    assert Incident.from_dict(overdue.to_dict()) == overdue
    stored = {k: v for k, v in before_evaluation().to_dict().items() if k != "sites"}
    assert Incident.from_dict(stored).sites == ("S1",)
    stored = {k: v for k, v in overdue.to_dict().items() if k != "sites"}
    assert Incident.from_dict(stored).sites == ()
