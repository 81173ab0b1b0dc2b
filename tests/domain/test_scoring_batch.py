"""The vectorised scoring path gives exactly what scoring.evaluate gives, project by project."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.batch.executor import make_executor
from coordinator.batch.scoring_jobs import aggregate, evaluate_many
from coordinator.domain.model import (
    Bid,
    Category,
    Criterion,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Window,
)
from coordinator.domain.scoring import Evaluation, ExpertSheet, SheetError, evaluate
from coordinator.domain.scoring_batch import Refused, aggregate_range, block_from_sheets

D = Decimal
WINDOW = Window(datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 5, tzinfo=UTC))
METHODS: list[ScoringMethodName] = ["comprehensive", "works", "lowest_price"]


def project(pid: str, bids: Sequence[Bid], criteria: Sequence[Criterion], *,
            method: ScoringMethodName, members: int, weight: str = "30",
            deduction: str = "1", threshold: str = "0.30",
            category: Category = "works") -> Project:
    return Project(
        id=pid, name=pid, host_site_id="S", city="C", tenderer_id="T", category=category,
        committee_size=members, quotas=(Quota("W", members),), window=WINDOW,
        scoring=ScoringMethod(method, D(weight), tuple(criteria), D(deduction), D(threshold)),
        bids=tuple(bids))


@st.composite
def cases(draw: st.DrawFn, pid: str) -> tuple[Project, list[ExpertSheet], bytes]:
    """Small committees, few distinct scores and prices (so ties and half-cents happen)."""
    n_bids = draw(st.integers(2, 6))
    price_pool = draw(st.lists(st.integers(1, 3000), min_size=1, max_size=3))
    bids = [Bid(f"B{i}", D(draw(st.sampled_from(price_pool))) / 100,
                draw(st.booleans() | st.just(True)))
            for i in range(n_bids)]
    criteria = [Criterion(f"C{j}", f"c{j}", D(draw(st.sampled_from(["10", "7.5", "40", "1"]))),
                          objective=draw(st.booleans()))
                for j in range(draw(st.integers(0, 3)))]
    members = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    spread = draw(st.sampled_from([1, 3, 100]))  # how many distinct scores an item may get
    # Bids that failed qualification are often not scored at all (as the booths send them).
    unscored = draw(st.booleans())
    sheets = []
    for e in range(members):
        scores = {}
        for b in bids:
            if unscored and not b.valid:
                continue
            for c in criteria:
                top = int(c.max_score * 100)
                scores[(b.bidder_id, c.id)] = D(draw(st.integers(0, spread - 1)) * top
                                                // max(spread - 1, 1)) / 100
        sheets.append(ExpertSheet(f"E{e}", scores, signed=True))
    if criteria and draw(st.integers(0, 9)) == 0:  # now and then a sheet scoring refuses
        sheets[0].scores[(bids[0].bidder_id, criteria[0].id)] = criteria[0].max_score + D(1)
    p = project(pid, bids, criteria, method=draw(st.sampled_from(METHODS)), members=members,
                weight=draw(st.sampled_from(["30", "10.5", "0.03", "99.99"])),
                deduction=draw(st.sampled_from(["1", "0.5", "2.25"])),
                threshold=draw(st.sampled_from(["0.30", "0.333", "0.1"])))
    return p, sheets, draw(st.binary(min_size=1, max_size=8))


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[Project, list[ExpertSheet], bytes]]:
    return [draw(cases(f"P{i}")) for i in range(draw(st.integers(1, 6)))]


def reference(case: tuple[Project, list[ExpertSheet], bytes]) -> Evaluation | Exception:
    p, sheets, seed = case
    try:
        return evaluate(p, sheets, seed, code_salt=b"salt")
    except ValueError as exc:
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.integers(1, 3))
def test_identical_to_scoring_evaluate(batch: list[tuple[Project, list[ExpertSheet], bytes]],
                                       chunk: int) -> None:
    got = evaluate_many([c[0] for c in batch], [c[1] for c in batch], [c[2] for c in batch],
                        chunk=chunk, code_salts=[b"salt"] * len(batch))
    for case, result in zip(batch, got, strict=True):
        expected = reference(case)
        if isinstance(expected, Exception):
            assert isinstance(result, Refused)
            assert type(result.error) is type(expected)
            assert str(result.error) == str(expected)
        else:
            assert result == expected
            # equal as values and as the report prints them
            assert isinstance(result, Evaluation)
            assert [str(b.total) for b in result.bids] == [str(b.total) for b in expected.bids]


def _level(n_bids: int = 4) -> tuple[Project, list[ExpertSheet]]:
    """Every bid level on total, price and technical: the lottery decides."""
    crit = Criterion("C1", "c", D(10))
    bids = [Bid(f"B{i}", D("100.00")) for i in range(n_bids)]
    sheets = [ExpertSheet(f"E{e}", {(b.bidder_id, "C1"): D("7.5") for b in bids}, True)
              for e in range(5)]
    return project("P-level", bids, [crit], method="comprehensive", members=5), sheets


def test_a_bid_that_failed_qualification_needs_no_scores() -> None:
    crit = Criterion("C1", "c", D(10))
    bids = [Bid("B0", D("100")), Bid("B1", D("90")), Bid("B2", D("95")),
            Bid("B3", D("80"), valid=False)]
    sheets = [ExpertSheet(f"E{e}", {(b.bidder_id, "C1"): D(7 + e % 2) for b in bids if b.valid},
                          True) for e in range(5)]
    p = project("P-unq", bids, [crit], method="comprehensive", members=5)
    expected = evaluate(p, sheets, b"seed")
    (got,) = evaluate_many([p], [sheets], [b"seed"])
    assert got == expected
    assert [b.bidder_id for b in expected.bids if not b.valid] == ["B3"]


def test_a_full_tie_goes_to_the_same_lottery() -> None:
    p, sheets = _level()
    (got,) = evaluate_many([p], [sheets], [b"seed-1"])
    assert got == evaluate(p, sheets, b"seed-1")
    assert isinstance(got, Evaluation)
    assert got.ties and got.ties[0].resolved_by == "lottery"


def test_a_value_on_a_half_hundredth_takes_the_exact_path() -> None:
    # price score of B1 = 0.01 / 0.48 x 0.24 = 0.005 exactly; scoring.py computes 0.01 / 0.48
    # to 50 digits first and lands just below, so it reports 0.00 where exact half up says 0.01
    bids = [Bid("B0", D("0.01")), Bid("B1", D("0.48")), Bid("B2", D("0.50"))]
    p = project("P-half", bids, [], method="comprehensive", members=5, weight="0.24")
    block = block_from_sheets([p], [[]], [b"s"])
    result = aggregate_range(block, (0, 1))
    assert int(result.price_score[0, 1]) == 1 and result.exact == [0]
    expected = evaluate(p, [], b"s")
    assert expected.bids[1].price_score == D("0.00")
    (got,) = evaluate_many([p], [[]], [b"s"])
    assert got == expected


def test_a_bad_score_refuses_that_project_only() -> None:
    crit = [Criterion("C1", "c", D(10))]
    bids = [Bid(f"B{i}", D(100 + i)) for i in range(3)]
    good = [ExpertSheet(f"E{e}", {(b.bidder_id, "C1"): D("8") for b in bids}, True)
            for e in range(5)]
    bad = [ExpertSheet(s.expert_ref, dict(s.scores), True) for s in good]
    bad[2].scores[("B1", "C1")] = D("10.01")  # type: ignore[index]
    projects = [project(f"P{i}", bids, crit, method="works", members=5) for i in range(2)]
    ok, refused = evaluate_many(projects, [good, bad], [b"a", b"b"])
    assert ok == evaluate(projects[0], good, b"a")
    assert isinstance(refused, Refused) and isinstance(refused.error, SheetError)
    assert "scores[B1][C1]" in str(refused.error)

    # the array path checks the range itself, naming member, bid and criterion
    block = block_from_sheets(projects[:1] * 2, [good, good], [b"a", b"b"])
    block.scores[1, 2, 1, 0] = 1001
    result = aggregate_range(block, (0, 2))
    assert list(result.errors) == [1]
    assert "E2: scores[B1][C1]: score above the maximum 10" in result.errors[1]
    assert not result.failed.any() and result.exact == []


def test_executors_agree() -> None:
    rng = np.random.default_rng(5)
    crit = [Criterion(f"C{j}", "c", D(20)) for j in range(4)]
    projects, sheets = [], []
    for i in range(60):
        bids = [Bid(f"B{b}", D(int(rng.integers(1000, 99999))) / 100) for b in range(5)]
        projects.append(project(f"P{i:02d}", bids, crit, method=METHODS[i % 3], members=7))
        sheets.append([ExpertSheet(f"E{e}", {(b.bidder_id, c.id): D(int(rng.integers(0, 2001)))
                                             / 100 for b in bids for c in crit}, True)
                       for e in range(7)])
    block = block_from_sheets(projects, sheets, [f"s{i}".encode() for i in range(60)])
    local = aggregate(block, make_executor("local"), chunk=7)
    executor = make_executor("local:2")
    try:
        pooled = aggregate(block, executor, chunk=7)
    finally:
        executor.close()
    for name in ("total", "technical", "price_score", "criteria", "order", "benchmark",
                 "deviations"):
        assert np.array_equal(getattr(local, name), getattr(pooled, name)), name
    assert (local.ties, local.exact, local.errors) == (pooled.ties, pooled.exact, pooled.errors)
    expected = [evaluate(p, s, f"s{i}".encode()) for i, (p, s) in
                enumerate(zip(projects, sheets, strict=True))]
    assert evaluate_many(projects, sheets, [f"s{i}".encode() for i in range(60)],
                         chunk=7) == expected


@pytest.mark.parametrize("field", ["price", "scores"])
def test_a_malformed_block_is_named(field: str) -> None:
    p, sheets = _level()
    block = block_from_sheets([p], [sheets], [b"s"])
    wrong = {"price": np.zeros((1, 9), np.int64), "scores": np.zeros((1, 5, 4), np.int64)}
    with pytest.raises(ValueError, match=f"ScoreBlock.{field}"):
        type(block)(**{**block.__dict__, field: wrong[field]})


def test_the_scoring_rules_in_force_apply_to_both_paths() -> None:
    """The `[scoring]` table of the rules file, not a constant: a stricter minimum of valid
    bids fails a tender both paths would otherwise score, and fewer experts are trimmed."""
    from coordinator.domain.rules import ScoringRules

    crit = Criterion("C1", "c", D(10))
    bids = [Bid("B0", D("100")), Bid("B1", D("90")), Bid("B2", D("95"))]
    skewed = [1, 1, 2, 3, 9]  # one high outlier: the trimmed mean differs from the mean
    sheets = [ExpertSheet(f"E{e}", {(b.bidder_id, "C1"): D(skewed[e]) for b in bids}, True)
              for e in range(5)]
    p = project("P-rules", bids, [crit], method="comprehensive", members=5)
    v1 = evaluate(p, sheets, b"seed")
    assert not v1.failed
    strict = ScoringRules(min_valid_bids=4)
    failed = evaluate(p, sheets, b"seed", rules=strict)
    assert failed.failed and "at least 4" in (failed.reason or "")
    assert evaluate_many([p], [sheets], [b"seed"], rules=strict) == [failed]
    trimmed = ScoringRules(trim_above_experts=4)  # five experts: drop the highest and lowest
    expected = evaluate(p, sheets, b"seed", rules=trimmed)
    assert expected != v1
    assert evaluate_many([p], [sheets], [b"seed"], rules=trimmed) == [expected]
