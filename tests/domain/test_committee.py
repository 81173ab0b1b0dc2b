"""Committee make-up: refused at registration with reasons."""

from __future__ import annotations

from dataclasses import replace

from domain_factories import RULES, project

from coordinator.domain.committee import check_composition, quota_pool_counts
from coordinator.domain.draw.inputs import Candidate
from coordinator.domain.model import Quota


def codes(problems: list) -> list[str]:  # type: ignore[type-arg]
    return [p.code for p in problems]


def test_a_sound_committee() -> None:
    assert check_composition(project(quotas=(Quota("W.01", 4),), reps=1), RULES) == []
    big = project(quotas=(Quota("W.01", 5), Quota("G.01", 2, "economic")), large=True)
    assert check_composition(big, RULES) == []


def test_size_must_be_odd_and_large_enough() -> None:
    assert codes(check_composition(project(quotas=(Quota("W.01", 6),)), RULES)) == ["size_even"]
    assert codes(check_composition(project(quotas=(Quota("W.01", 3),)), RULES)) == ["size_small"]
    large = project(quotas=(Quota("W.01", 5),), large=True)
    assert codes(check_composition(large, RULES)) == ["size_small"]


def test_quotas_and_reps_must_add_up() -> None:
    p = replace(project(quotas=(Quota("W.01", 4),)), committee_size=5)
    assert codes(check_composition(p, RULES)) == ["quota_sum"]


def test_two_thirds_technical_and_economic() -> None:
    p = project(quotas=(Quota("W.01", 3),), reps=2)  # 3 of 5 < 2/3
    assert codes(check_composition(p, RULES)) == ["share"]
    p = project(quotas=(Quota("W.01", 5),), reps=2)  # 5 of 7 >= 2/3
    assert check_composition(p, RULES) == []


def test_malformed_quotas() -> None:
    p = replace(project(quotas=(Quota("W..01", 5),)))
    assert codes(check_composition(p, RULES)) == ["quota_code"]
    p = replace(project(quotas=(Quota("W.01", 5), Quota("G", 0))))
    assert "quota_count" in codes(check_composition(p, RULES))


def test_pool_feasibility() -> None:
    p = project(quotas=(Quota("W.01", 3), Quota("W.01.02", 2)))
    problems = check_composition(p, RULES, {0: 4, 1: 2})
    # each quota alone is fine, but W.01 has to cover both: 5 from 4
    assert codes(problems) == ["pool_short"]
    assert "quotas [0, 1] under W.01 need 5" in problems[0].detail
    problems = check_composition(p, RULES, {0: 9, 1: 1})
    assert codes(problems) == ["pool_short"]
    assert "quota 1 (W.01.02) needs 2, 1 eligible" in problems[0].detail


def test_quota_pool_counts() -> None:
    p = project(quotas=(Quota("W.01", 3), Quota("G.01", 2, "economic")))
    cands = [
        Candidate("A", "technical", ("W.01.02",), ("C1",)),
        Candidate("B", "economic", ("G.01",), ("C1",)),
        Candidate("C", "technical", ("G.01",), ("C1",)),
        Candidate("D", "technical", ("W.011",), ("C1",)),
    ]
    assert quota_pool_counts(p, cands) == {0: 1, 1: 1}
