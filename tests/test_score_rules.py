"""One rule for a score, wherever it is checked: the booth, the agent offline, the coordinator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from evalgrid_wire.v1 import common_pb2
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.model import Criterion
from coordinator.domain.scoring import validate_score
from evalgrid.score_rules import cell_problem, parse_score, sheet_problems
from site_agent.offline_mode import SheetRefused, _check_sheet

TOP = Decimal("40")
FORM = common_pb2.SheetForm(
    bids=[common_pb2.BidInfo(code="K7F2"), common_pb2.BidInfo(code="M3QX")],
    criteria=[common_pb2.CriterionInfo(id="T1", name="Technical plan", max_score="40"),
              common_pb2.CriterionInfo(id="T2", name="Service", max_score="10")])


def _coordinator(text: str) -> str | None:
    value = parse_score(text)  # the coordinator parses with the same function
    return "not a decimal" if value is None else validate_score(Criterion("T1", "T", TOP), value)


def _agent(text: str) -> str | None:
    sheet = common_pb2.ScoreSheet(scores=[common_pb2.CriterionScore(
        bid_code="K7F2", criterion_id="T1", score=text)])
    try:
        _check_sheet(FORM, sheet)
    except SheetRefused as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("text, reason", [
    ("2.555", "score has more than 2 decimal places"),
    ("40.01", "score above the maximum 40"),
    ("-0.01", "score below 0"),
    ("NaN", "not a decimal number: 'NaN'"),
    ("Infinity", "not a decimal number: 'Infinity'"),
    ("12,5", "not a decimal number: '12,5'"),
    ("", "not a decimal number: ''"),
    ("2.50", None), ("40", None), ("0", None), (" 7.5 ", None),
])
def test_each_side_gives_the_same_answer(text: str, reason: str | None) -> None:
    assert cell_problem(text, TOP) == reason
    assert (_coordinator(text) is None) == (reason is None)
    agent = _agent(text)
    assert (agent is None) == (reason is None)
    if reason is not None:
        assert agent == f"sheet.scores[K7F2][T1]: {reason}"


@given(st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{0,4})?", fullmatch=True)))
def test_the_booth_accepts_exactly_what_the_coordinator_and_agent_accept(text: str) -> None:
    booth = cell_problem(text, TOP) is None
    assert booth == (_coordinator(text) is None) == (_agent(text) is None)


def test_a_signed_sheet_must_be_complete_and_a_draft_need_not() -> None:
    maxima = {"T1": TOP, "T2": Decimal(10)}
    one = [("K7F2", "T1", "3")]
    assert sheet_problems(["K7F2", "M3QX"], maxima, one, signed=False) == []
    assert sheet_problems(["K7F2", "M3QX"], maxima, one, signed=True) == [
        ("scores[K7F2][T2]", "missing score"), ("scores[M3QX][T1]", "missing score"),
        ("scores[M3QX][T2]", "missing score")]
    assert sheet_problems(["K7F2"], maxima, [("ZZZZ", "T9", "1")], signed=False) == [
        ("scores[ZZZZ][T9]", "unknown bid"), ("scores[ZZZZ][T9]", "unknown criterion")]


def test_the_coordinators_sheet_check_is_the_shared_rule() -> None:
    """`scoring.validate_sheet` answers with `sheet_problems`: same cells, same reasons."""
    from types import SimpleNamespace
    from typing import cast

    from coordinator.domain.model import Bid, Project
    from coordinator.domain.scoring import ExpertSheet, validate_sheet

    T1, T2 = Criterion("T1", "T", TOP), Criterion("T2", "S", Decimal(10))
    # validate_sheet reads the bids and the criteria of a project, nothing else.
    project = cast(Project, SimpleNamespace(
        bids=[Bid("A", Decimal(90)), Bid("B", Decimal(100)), Bid("X", Decimal(50), valid=False)],
        scoring=SimpleNamespace(criteria=(T1, T2))))
    cells = {("A", "T1"): Decimal("2.555"), ("B", "T1"): Decimal(1), ("X", "T2"): Decimal(1),
             ("Z", "T1"): Decimal(1)}
    shared = sheet_problems(["A", "B"], {c.id: c.max_score for c in (T1, T2)},
                            [(b, c, v) for (b, c), v in cells.items()], signed=True,
                            tolerated=["X"])
    assert validate_sheet(project, ExpertSheet("E1", cells, signed=True)) == shared
    assert ("scores[X][T1]", "missing score") not in shared  # failed qualification: tolerated
    assert ("scores[A][T1]", "score has more than 2 decimal places") in shared
    assert ("scores[Z][T1]", "unknown bid") in shared
    # Text and Decimal scores are one rule: the cell as typed, the value as parsed.
    assert sheet_problems(["A"], {"T1": TOP}, [("A", "T1", "40.01")], signed=False) == \
        sheet_problems(["A"], {"T1": TOP}, [("A", "T1", Decimal("40.01"))], signed=False)
