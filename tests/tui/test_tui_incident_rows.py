"""Fault incidents in the operator's exceptions queue: the rule's clock, then the decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tui_testkit import START, sample_grid

from tui.operator_client import IncidentRow
from tui.operator_model import Issue, exceptions_queue

P1 = "P20260302-0001"


def incident(state: str, **kw: object) -> IncidentRow:
    base = IncidentRow(incident_id="inc-1", project_id=P1, site_id="S0003",
                       phase="during_evaluation", state=state, cause="guest site lost",
                       failed_at=START + timedelta(minutes=10),
                       deadline=START + timedelta(hours=4, minutes=10))
    return replace(base, **kw)  # type: ignore[arg-type]


def rows(view_incidents: tuple[IncidentRow, ...], now_after: timedelta) -> list[Issue]:
    view = replace(sample_grid(), incidents=view_incidents, now=START + now_after)
    return [i for i in exceptions_queue(view) if i.kind == "incident"]


def test_awaiting_repair_shows_the_deadline_and_time_left() -> None:
    (row,) = rows((incident("awaiting_repair"),), timedelta(minutes=40))
    assert row.open and row.site_id == "S0003" and row.project_id == P1
    assert "repair by 13:10" in row.detail and "3:30 left" in row.detail
    assert "4 h from the failure" in row.detail


def test_decision_due_names_who_decides_and_the_options() -> None:
    during = incident("decision_due", allowed=("reevaluate",))
    before = incident("decision_due", incident_id="inc-2", phase="before_evaluation",
                      allowed=("wait", "postpone"))
    a, b = sorted(rows((during, before), timedelta(hours=5)), key=lambda r: r.key)
    assert "a new committee re-evaluates (reevaluate)" in a.detail
    assert "the tenderer decides (wait / postpone)" in b.detail
    assert a.open and b.open


def test_closed_incidents_are_history() -> None:
    (row,) = rows((incident("resumed"),), timedelta(hours=1))
    assert not row.open and row.detail.endswith("resumed")
