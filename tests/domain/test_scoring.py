"""Scoring: worked examples with the arithmetic spelled out, tie-breaks, warnings, properties."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from coordinator.domain.scoring import (
    ExpertSheet,
    SheetError,
    bid_codes,
    committee_scores,
    comprehensive_price_score,
    deviation_percent,
    evaluate,
    evaluation_to_dict,
    lottery_ticket,
    quantize_score,
    score_warnings,
    validate_score,
    validate_scoring_method,
    validate_sheet,
    works_benchmark,
    works_price_score,
)

D = Decimal
SEED = b"lottery-seed"


def make_project(
    bids: Sequence[Bid],
    criteria: Sequence[Criterion],
    *,
    method: ScoringMethodName = "comprehensive",
    price_weight: str = "30",
    committee: int = 5,
    category: Category = "goods",
    deduction: str = "1",
    threshold: str = "0.30",
) -> Project:
    return Project(
        id="P-1",
        name="test project",
        host_site_id="S-host",
        city="Hangzhou",
        tenderer_id="T-1",
        category=category,
        committee_size=committee,
        quotas=(Quota("G", committee),),
        window=Window(datetime(2025, 3, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, 5, tzinfo=UTC)),
        scoring=ScoringMethod(
            method=method,
            price_weight=D(price_weight),
            criteria=tuple(criteria),
            deduction_per_point=D(deduction),
            deviation_threshold=D(threshold),
        ),
        bids=tuple(bids),
    )


def make_sheets(
    table: dict[tuple[str, str], Sequence[str | int]], *, signed: bool = True
) -> list[ExpertSheet]:
    """table[(bidder, criterion)] = the scores of expert E1, E2, ... in that order."""
    n = len(next(iter(table.values())))
    return [
        ExpertSheet(
            expert_ref=f"E{i + 1}",
            scores={key: D(str(values[i])) for key, values in table.items()},
            signed=signed,
        )
        for i in range(n)
    ]


def uniform_sheets(
    bidders: Sequence[str], criteria: Sequence[Criterion], score: str, experts: int = 5
) -> list[ExpertSheet]:
    return make_sheets({(b, c.id): [score] * experts for b in bidders for c in criteria})


T1 = Criterion("T1", "technical solution", D(40))
T2 = Criterion("T2", "after-sales service", D(30))
T70 = Criterion("T1", "technical and commercial", D(70))
OBJ = Criterion("OBJ", "certificates held", D(10), objective=True)


def row(evaluation_dict: dict[str, object], bidder: str) -> dict[str, object]:
    bids = evaluation_dict["bids"]
    assert isinstance(bids, list)
    return next(b for b in bids if b["bidder_id"] == bidder)


# --- worked examples -----------------------------------------------------------------------


def test_comprehensive_three_bids_five_experts() -> None:
    # Goods, price weight 30. Prices A 90, B 100, C 120 -> benchmark = lowest valid = 90.
    #   price score A = 90/90  x 30 = 30.00
    #   price score B = 90/100 x 30 = 27.00
    #   price score C = 90/120 x 30 = 22.50
    # T1 (max 40), five experts, no drop (5 is not more than 5):
    #   A: 30+32+34+31+33 = 160 / 5 = 32.00
    #   B: 35+36+34+38+37 = 180 / 5 = 36.00
    #   C: 28+30+29+27+31 = 145 / 5 = 29.00
    # T2 (max 30):
    #   A: 20+21+22+20+22 = 105 / 5 = 21.00
    #   B: 25+24+26+25+25 = 125 / 5 = 25.00
    #   C: 27+28+26+27+27 = 135 / 5 = 27.00
    # technical: A 53.00, B 61.00, C 56.00; totals: A 83.00, B 88.00, C 78.50 -> B, A, C.
    project = make_project([Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(120))], [T1, T2])
    sheets = make_sheets(
        {
            ("A", "T1"): [30, 32, 34, 31, 33],
            ("B", "T1"): [35, 36, 34, 38, 37],
            ("C", "T1"): [28, 30, 29, 27, 31],
            ("A", "T2"): [20, 21, 22, 20, 22],
            ("B", "T2"): [25, 24, 26, 25, 25],
            ("C", "T2"): [27, 28, 26, 27, 27],
        }
    )
    evaluation = evaluate(project, sheets, SEED)
    assert not evaluation.failed
    assert evaluation.ranking == ("B", "A", "C")
    assert evaluation.winner == "B"
    assert evaluation.benchmark_price == D("90.00")
    assert evaluation.ties == ()
    assert evaluation.warnings == ()
    report = evaluation_to_dict(evaluation)
    assert row(report, "A") | {"code": None} == {
        "bidder_id": "A",
        "code": None,
        "price": "90.00",
        "valid": True,
        "price_score": "30.00",
        "criteria": {"T1": "32.00", "T2": "21.00"},
        "technical": "53.00",
        "total": "83.00",
        "rank": 2,
    }
    assert row(report, "B")["price_score"] == "27.00"
    assert row(report, "B")["total"] == "88.00"
    assert row(report, "C")["price_score"] == "22.50"
    assert row(report, "C")["total"] == "78.50"
    assert row(report, "C")["rank"] == 3
    json.dumps(report)  # plain JSON-able


def test_seven_experts_drop_single_highest_and_lowest() -> None:
    # Seven experts on T1 (max 40) for bid A: 20, 30, 31, 32, 33, 34, 40.
    #   drop 20 and 40 -> (30+31+32+33+34) = 160 / 5 = 32.00 (plain mean would be 220/7 = 31.43)
    # For bid B the extremes repeat: 30 x6, 36 -> drop ONE 30 and the 36 -> 150 / 5 = 30.00.
    # For bid C, five experts' worth of ties at the top: 10, 35 x6 -> drop 10 and one 35 = 35.
    project = make_project(
        [Bid("A", D(100)), Bid("B", D(100)), Bid("C", D(100))], [T1], committee=7
    )
    sheets = make_sheets(
        {
            ("A", "T1"): [20, 30, 31, 32, 33, 34, 40],
            ("B", "T1"): [30, 30, 30, 30, 30, 30, 36],
            ("C", "T1"): [10, 35, 35, 35, 35, 35, 35],
        }
    )
    scores = committee_scores(project, sheets)
    assert scores[("A", "T1")] == D(32)
    assert scores[("B", "T1")] == D(30)
    assert scores[("C", "T1")] == D(35)
    # five experts (not more than 5): plain mean, nothing dropped: (20+30+31+32+40)/5 = 30.60
    five = make_project([Bid("A", D(100)), Bid("B", D(100)), Bid("C", D(100))], [T1])
    five_sheets = make_sheets({(b, "T1"): [20, 30, 31, 32, 40] for b in ("A", "B", "C")})
    assert committee_scores(five, five_sheets)[("A", "T1")] == D("30.6")


def test_goods_price_weight_30_benchmark_90_bid_100() -> None:
    # 90 / 100 x 30 = 27
    assert quantize_score(comprehensive_price_score(D(100), D(90), D(30))) == D("27.00")
    assert comprehensive_price_score(D(90), D(90), D(30)) == D(30)


def test_works_variant_five_bids() -> None:
    # Works, price weight 40, deduction 2 points per percentage point of deviation.
    # Valid prices 100, 95, 105, 110, 75: more than 3 bids -> drop highest 110 and lowest 75.
    #   benchmark = (100 + 95 + 105) / 3 = 100
    #   A 100: deviation   0%   -> 40 - 2 x 0  = 40.00
    #   B  95: deviation  -5%   -> 40 - 2 x 5  = 30.00   (below: same rate as above)
    #   C 105: deviation  +5%   -> 40 - 2 x 5  = 30.00
    #   D 110: deviation +10%   -> 40 - 2 x 10 = 20.00
    #   E  75: deviation -25%   -> 40 - 2 x 25 = -10 -> floored at 0.00
    # One criterion (max 60), every expert gives 40 -> technical 40.00 for all.
    # Totals: A 80, B 70, C 70, D 60, E 40.  B and C tie on total -> B, lower price, first.
    bids = [Bid("A", D(100)), Bid("B", D(95)), Bid("C", D(105)), Bid("D", D(110)), Bid("E", D(75))]
    tech = Criterion("T", "construction plan", D(60))
    project = make_project(bids, [tech], method="works", price_weight="40", deduction="2")
    evaluation = evaluate(project, uniform_sheets("ABCDE", [tech], "40"), SEED)
    report = evaluation_to_dict(evaluation)
    assert report["benchmark_price"] == "100.00"
    assert [row(report, b)["price_score"] for b in "ABCDE"] == [
        "40.00",
        "30.00",
        "30.00",
        "20.00",
        "0.00",
    ]
    assert evaluation.ranking == ("A", "B", "C", "D", "E")
    (tie,) = evaluation.ties
    assert tie.tied == ("B", "C")
    assert tie.order == ("B", "C")
    assert tie.resolved_by == "price"
    assert tie.lottery == ()


def test_works_benchmark_three_bids_not_trimmed_and_asymmetric_rate() -> None:
    # Exactly 3 valid bids: no drop -> (90 + 100 + 110) / 3 = 100
    assert works_benchmark([D(90), D(100), D(110)]) == D(100)
    # 4 bids: drop 80 and 130 -> (100 + 110) / 2 = 105
    assert works_benchmark([D(80), D(100), D(110), D(130)]) == D(105)
    assert deviation_percent(D("97.5"), D(100)) == D("-2.5")
    # fractional deviation is deducted proportionally: 40 - 1 x 2.5 = 37.5
    assert works_price_score(D("97.5"), D(100), D(40), D(1)) == D("37.5")
    # a province deducting half a point below the benchmark: 40 - 0.5 x 2.5 = 38.75
    assert works_price_score(D("97.5"), D(100), D(40), D(1), D("0.5")) == D("38.75")
    assert works_price_score(D("102.5"), D(100), D(40), D(1), D("0.5")) == D("37.5")


def test_lowest_price_ranks_valid_bids_by_price() -> None:
    bids = [Bid("A", D(300)), Bid("B", D(200)), Bid("X", D(50), valid=False), Bid("C", D(250))]
    project = make_project(bids, [], method="lowest_price", price_weight="0")
    evaluation = evaluate(project, [], SEED)
    assert evaluation.ranking == ("B", "C", "A")
    assert evaluation.benchmark_price is None
    report = evaluation_to_dict(evaluation)
    assert row(report, "B")["price_score"] is None
    assert row(report, "B")["total"] is None
    assert row(report, "X")["rank"] is None


def test_invalid_bids_are_excluded_from_benchmark_and_ranking() -> None:
    # A (80) failed qualification: the benchmark is the lowest VALID price, 90, not 80.
    #   B = 90/90 x 30 = 30.00; C = 90/100 x 30 = 27.00; D = 90/120 x 30 = 22.50
    bids = [Bid("A", D(80), valid=False), Bid("B", D(90)), Bid("C", D(100)), Bid("D", D(120))]
    project = make_project(bids, [T1])
    evaluation = evaluate(project, uniform_sheets("BCD", [T1], "30"), SEED)
    report = evaluation_to_dict(evaluation)
    assert report["benchmark_price"] == "90.00"
    assert row(report, "B")["price_score"] == "30.00"
    assert row(report, "C")["price_score"] == "27.00"
    assert evaluation.ranking == ("B", "C", "D")
    a = row(report, "A")
    assert a["valid"] is False and a["rank"] is None and a["total"] is None
    # works: the invalid bid does not enter the mean either: 4 valid -> drop 90 and 120
    works = make_project([*bids, Bid("E", D(110))], [T1], method="works", price_weight="40")
    assert evaluate(works, uniform_sheets("BCDE", [T1], "30"), SEED).benchmark_price == D("105.00")


def test_fewer_than_three_valid_bids_fails_the_tender() -> None:
    bids = [Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(80), valid=False)]
    project = make_project(bids, [T1])
    evaluation = evaluate(project, [], SEED)  # sheets are not even looked at
    assert evaluation.failed
    assert evaluation.reason is not None and "2 valid" in evaluation.reason
    assert evaluation.ranking == ()
    assert evaluation.winner is None
    assert all(b.rank is None and b.total is None for b in evaluation.bids)
    report = evaluation_to_dict(evaluation)
    assert report["failed"] is True and report["winner"] is None
    json.dumps(report)


# --- rounding ------------------------------------------------------------------------------


def test_rounding_is_half_up_at_the_end_only() -> None:
    assert quantize_score(D("0.125")) == D("0.13")  # half-even would give 0.12
    assert quantize_score(D("2.675")) == D("2.68")
    assert quantize_score(D("2.674999")) == D("2.67")
    # Price score 86/160 x 30 = 0.5375 x 30 = 16.125 exactly -> reported 16.13 (half up).
    # Total 16.125 + 50 = 66.125 -> 66.13; rounding the price score first would not change it
    # here, but the total is the rounded exact sum, not a sum of rounded parts.
    bids = [Bid("A", D(86)), Bid("B", D(160)), Bid("C", D(200))]
    project = make_project(bids, [T70])
    report = evaluation_to_dict(evaluate(project, uniform_sheets("ABC", [T70], "50"), SEED))
    assert row(report, "B")["price_score"] == "16.13"
    assert row(report, "B")["total"] == "66.13"
    # C: 86/200 x 30 = 12.90
    assert row(report, "C")["price_score"] == "12.90"


def test_ranking_compares_quantized_totals() -> None:
    # B: 86/160 x 30 = 16.125 + technical 50.00       = 66.125 -> 66.13
    # C: 86/172 x 30 = 15.000 + technical 255.65/5 = 51.13 = 66.13 -> 66.13
    # Exact totals would put C first; the report shows 66.13 for both, so they are tied and the
    # lower price (B, 160 < 172) wins.
    bids = [Bid("A", D(86)), Bid("B", D(160)), Bid("C", D(172))]
    project = make_project(bids, [T70])
    sheets = make_sheets(
        {
            ("A", "T1"): [30] * 5,
            ("B", "T1"): [50] * 5,
            ("C", "T1"): ["51.13", "51.13", "51.13", "51.13", "51.13"],
        }
    )
    evaluation = evaluate(project, sheets, SEED)
    assert evaluation.ranking == ("B", "C", "A")
    (tie,) = evaluation.ties
    assert tie.tied == ("B", "C") and tie.resolved_by == "price"


# --- tie-breaks ----------------------------------------------------------------------------


def test_tie_broken_by_technical_score() -> None:
    # B and C both bid 160: price score 16.125 each.
    # B technical 50.00 -> total 66.125 -> 66.13
    # C technical (50.04 + 50 x4)/5 = 250.04/5 = 50.008 -> 50.01; total 66.133 -> 66.13
    # Same total, same price -> the higher technical score (C, 50.01 > 50.00) ranks first.
    bids = [Bid("A", D(86)), Bid("B", D(160)), Bid("C", D(160))]
    project = make_project(bids, [T70])
    sheets = make_sheets(
        {
            ("A", "T1"): [30] * 5,
            ("B", "T1"): [50] * 5,
            ("C", "T1"): ["50.04", 50, 50, 50, 50],
        }
    )
    evaluation = evaluate(project, sheets, SEED)
    assert evaluation.ranking == ("C", "B", "A")
    (tie,) = evaluation.ties
    assert tie.resolved_by == "technical" and tie.order == ("C", "B")


def test_lowest_price_tie_broken_by_technical() -> None:
    bids = [Bid("A", D(100)), Bid("B", D(100)), Bid("C", D(120))]
    project = make_project(bids, [T1], method="lowest_price", price_weight="0")
    sheets = make_sheets({("A", "T1"): [30] * 5, ("B", "T1"): [31] * 5, ("C", "T1"): [40] * 5})
    evaluation = evaluate(project, sheets, SEED)
    assert evaluation.ranking == ("B", "A", "C")
    (tie,) = evaluation.ties
    assert tie.tied == ("A", "B") and tie.resolved_by == "technical"


def _lottery_project() -> tuple[Project, list[ExpertSheet]]:
    # B, C and D identical in price and scores: only the lottery separates them.
    bids = [Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(100)), Bid("D", D(100))]
    return make_project(bids, [T1]), uniform_sheets("ABCD", [T1], "30")


def test_lottery_is_recorded_and_replayable() -> None:
    project, sheets = _lottery_project()
    evaluation = evaluate(project, sheets, SEED)
    assert evaluation.ranking[0] == "A"
    (tie,) = evaluation.ties
    assert tie.tied == ("B", "C", "D")
    assert tie.resolved_by == "lottery"
    # replay: sort the tied bidders by SHA-256(seed || bidder_id), lower first
    replay = sorted(tie.tied, key=lambda b: hashlib.sha256(SEED + b.encode()).digest())
    assert tie.order == tuple(replay) == evaluation.ranking[1:]
    assert dict(tie.lottery) == {b: lottery_ticket(SEED, b).hex() for b in "BCD"}
    assert evaluation_to_dict(evaluation)["lottery_seed"] == SEED.hex()
    # same seed, same order, whatever the order of sheets and bids
    again = evaluate(
        make_project(tuple(reversed(project.bids)), [T1]), list(reversed(sheets)), SEED
    )
    assert again.ranking == evaluation.ranking


def test_lottery_order_depends_on_seed() -> None:
    project, sheets = _lottery_project()
    orders = {evaluate(project, sheets, str(i).encode()).ranking for i in range(20)}
    assert len(orders) > 1  # 20 seeds over 6 possible orders: more than one appears


def test_lottery_only_among_bidders_still_tied() -> None:
    # Criterion max 60.  A (90): 90/90 x 30 = 30.00 + 40 = 70.00
    #                    B, C (100): 90/100 x 30 = 27.00 + 43 = 70.00
    # All three tie on total; price splits A off (first), B and C go on to the lottery.
    big = Criterion("T1", "technical solution", D(60))
    project = make_project([Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(100))], [big])
    sheets = make_sheets({("A", "T1"): [40] * 5, ("B", "T1"): [43] * 5, ("C", "T1"): [43] * 5})
    evaluation = evaluate(project, sheets, SEED)
    (tie,) = evaluation.ties
    assert tie.tied == ("A", "B", "C")
    assert tie.resolved_by == "lottery"
    assert evaluation.ranking[0] == "A"
    assert {b for b, _ in tie.lottery} == {"B", "C"}


# --- warnings ------------------------------------------------------------------------------


def test_deviation_warning_against_plain_mean() -> None:
    # T1 max 40, threshold 0.30 -> limit 12 points.
    # A: 5, 30, 31, 32, 33, 34, 35 -> plain mean 200/7 = 28.571...; |5 - 28.57| = 23.57 > 12.
    #    (committee score drops 5 and 35: 160/5 = 32.00)
    # B: 20, 30, 31, 32, 33, 34, 40 -> mean 31.43; largest gap 11.43 <= 12: no warning.
    bids = [Bid("A", D(100)), Bid("B", D(100)), Bid("C", D(100))]
    project = make_project(bids, [T1], committee=7)
    sheets = make_sheets(
        {
            ("A", "T1"): [5, 30, 31, 32, 33, 34, 35],
            ("B", "T1"): [20, 30, 31, 32, 33, 34, 40],
            ("C", "T1"): [30] * 7,
        }
    )
    evaluation = evaluate(project, sheets, SEED)
    (warning,) = evaluation.warnings
    assert warning.kind == "deviation"
    assert (warning.expert_ref, warning.bidder_id, warning.criterion_id) == ("E1", "A", "T1")
    assert warning.score == D(5)
    assert quantize_score(warning.mean) == D("28.57")
    report = evaluation_to_dict(evaluation)
    assert report["warnings"][0]["mean"] == "28.57"
    assert row(report, "A")["criteria"] == {"T1": "32.00"}


def test_objective_item_scored_inconsistently() -> None:
    # OBJ max 10: 10, 10, 10, 10, 8 -> spread 2 on an objective item: flagged.
    # mean 9.6; |8 - 9.6| = 1.6 <= 0.30 x 10 = 3: no deviation warning.
    bids = [Bid("A", D(100)), Bid("B", D(100)), Bid("C", D(100))]
    project = make_project(bids, [OBJ])
    sheets = make_sheets(
        {("A", "OBJ"): [10, 10, 10, 10, 8], ("B", "OBJ"): [6] * 5, ("C", "OBJ"): [0] * 5}
    )
    (warning,) = score_warnings(project, sheets)
    assert warning.kind == "objective_inconsistent"
    assert warning.bidder_id == "A" and warning.expert_ref is None and warning.score is None
    assert warning.mean == D("9.6")
    assert warning.scores == (
        ("E1", D(10)),
        ("E2", D(10)),
        ("E3", D(10)),
        ("E4", D(10)),
        ("E5", D(8)),
    )


# --- validation ----------------------------------------------------------------------------


def test_validate_score() -> None:
    assert validate_score(T1, D(0)) is None
    assert validate_score(T1, D(40)) is None
    assert validate_score(T1, D("12.50")) is None
    assert validate_score(T1, D("12.500")) is None  # the value has 1 decimal place
    assert validate_score(T1, D("-0.01")) == "score below 0"
    assert validate_score(T1, D("40.01")) == "score above the maximum 40"
    assert validate_score(T1, D("12.345")) == "score has more than 2 decimal places"
    assert validate_score(T1, D("NaN")) == "score must be a finite number"
    assert validate_score(T1, 12.5) == "score must be a Decimal"  # type: ignore[arg-type]


def test_validate_sheet() -> None:
    bids = [Bid("A", D(90)), Bid("B", D(100)), Bid("X", D(50), valid=False)]
    project = make_project(bids, [T1, T2])
    sheet = ExpertSheet(
        "E1",
        {
            ("A", "T1"): D(30),
            ("A", "T2"): D(31),  # above 30
            ("B", "T1"): D(30),
            ("Z", "T1"): D(1),  # unknown bidder
            ("B", "T9"): D(1),  # unknown criterion
            ("X", "T1"): D(5),  # failed qualification: tolerated
        },
        signed=False,
    )
    assert validate_sheet(project, sheet) == [
        ("scores[A][T2]", "score above the maximum 30"),
        ("scores[B][T2]", "missing score"),
        ("scores[B][T9]", "unknown criterion"),
        ("scores[Z][T1]", "unknown bid"),
    ]
    assert ("signed", "sheet is not signed") in validate_sheet(project, sheet, require_signed=True)


def test_evaluate_refuses_unsigned_incomplete_or_duplicate_sheets() -> None:
    project = make_project([Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(120))], [T1])
    good = uniform_sheets("ABC", [T1], "30")
    with pytest.raises(SheetError, match="not signed"):
        evaluate(project, [*good[:4], ExpertSheet("E5", good[4].scores, signed=False)], SEED)
    with pytest.raises(SheetError, match="4 sheets for 5 drawn members"):
        evaluate(project, good[:4], SEED)
    with pytest.raises(SheetError, match="same expert"):
        evaluate(project, [*good[:4], good[0]], SEED)
    with pytest.raises(SheetError, match="missing score"):
        scores = dict(good[4].scores)
        del scores[("C", "T1")]
        evaluate(project, [*good[:4], ExpertSheet("E5", scores, signed=True)], SEED)


def test_validate_scoring_method() -> None:
    low_weight = make_project([Bid("A", D(90))], [T1], price_weight="20")
    assert validate_scoring_method(low_weight) == [("scoring.price_weight", "goods: at least 30")]
    services = make_project([Bid("A", D(90))], [T1], price_weight="10", category="services")
    assert validate_scoring_method(services) == []
    broken = make_project([Bid("A", D(0)), Bid("A", D(5))], [T1, T1])
    assert validate_scoring_method(broken) == [
        ("bids", "duplicate bidder id"),
        ("bids[A].price", "must be positive"),
        ("scoring.criteria", "duplicate criterion id"),
    ]
    with pytest.raises(ValueError, match="cannot be applied"):
        evaluate(make_project([Bid("A", D(0)), Bid("B", D(1)), Bid("C", D(2))], []), [], SEED)


# --- bid codes -----------------------------------------------------------------------------

CODE = re.compile(r"^B-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{4,}$")


def test_bid_codes_deterministic_unique_and_salted() -> None:
    project = make_project([Bid("A", D(90)), Bid("B", D(100)), Bid("C", D(120))], [T1])
    codes = bid_codes(project, b"salt-1")
    assert codes == bid_codes(project, b"salt-1")
    assert codes != bid_codes(project, b"salt-2")
    assert all(re.fullmatch(r"B-[0-9A-Z]{4}", c) and CODE.match(c) for c in codes.values())
    assert len(set(codes.values())) == 3
    with pytest.raises(ValueError):
        bid_codes(project, b"")
    evaluation = evaluate(project, uniform_sheets("ABC", [T1], "30"), SEED, code_salt=b"salt-1")
    assert {b.bidder_id: b.code for b in evaluation.bids} == codes


def test_bid_codes_unique_among_many_bidders() -> None:
    # 3,000 bidders over 32^4 ~ 1M four-character codes: collisions are likely, and then every
    # code grows by a character; either way they are unique and of one length.
    bids = [Bid(f"C{i:05d}", D(100)) for i in range(3000)]
    project = make_project(bids, [])
    codes = bid_codes(project, b"salt")
    assert len(set(codes.values())) == 3000
    assert len({len(c) for c in codes.values()}) == 1
    assert all(CODE.match(c) for c in codes.values())


# --- properties ----------------------------------------------------------------------------

score_cents = st.integers(min_value=0, max_value=4000)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Project, list[ExpertSheet]]:
    n_bids = draw(st.integers(min_value=3, max_value=6))
    prices = draw(st.lists(st.integers(1, 100_000), min_size=n_bids, max_size=n_bids))
    valid = draw(st.lists(st.booleans(), min_size=n_bids, max_size=n_bids))
    bids = [Bid(f"B{i}", D(p) / 100, v) for i, (p, v) in enumerate(zip(prices, valid, strict=True))]
    n_criteria = draw(st.integers(min_value=1, max_value=3))
    criteria = [
        Criterion(f"C{j}", f"criterion {j}", D(40), objective=draw(st.booleans()))
        for j in range(n_criteria)
    ]
    experts = draw(st.sampled_from([5, 7, 9]))
    methods: list[ScoringMethodName] = ["comprehensive", "works", "lowest_price"]
    method = draw(st.sampled_from(methods))
    project = make_project(bids, criteria, method=method, committee=experts, price_weight="30")
    sheets = [
        ExpertSheet(
            f"E{e}",
            {(b.bidder_id, c.id): D(draw(score_cents)) / 100 for b in bids for c in criteria},
            signed=True,
        )
        for e in range(experts)
    ]
    return project, sheets


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False), st.binary(min_size=1, max_size=8))
def test_properties(
    scenario: tuple[Project, list[ExpertSheet]], rnd: random.Random, seed: bytes
) -> None:
    project, sheets = scenario
    valid = [b.bidder_id for b in project.bids if b.valid]
    evaluation = evaluate(project, sheets, seed)

    # committee score lies within [min, max] of the experts' scores
    for key, value in committee_scores(project, sheets).items():
        given_scores = [s.scores[key] for s in sheets]
        assert min(given_scores) <= value <= max(given_scores)

    # order of sheets and bids does not matter
    shuffled = list(sheets)
    rnd.shuffle(shuffled)
    bids = list(project.bids)
    rnd.shuffle(bids)
    reordered = make_project(
        bids,
        project.scoring.criteria,
        method=project.scoring.method,
        committee=project.committee_size,
    )
    again = evaluate(reordered, shuffled, seed)
    assert again.ranking == evaluation.ranking
    assert again.warnings == evaluation.warnings
    assert again.ties == evaluation.ties
    assert {b.bidder_id: b for b in again.bids} == {b.bidder_id: b for b in evaluation.bids}

    if len(valid) < 3:
        assert evaluation.failed and evaluation.ranking == ()
        return
    # ranking is a permutation of the valid bidders, ranks 1..n
    assert sorted(evaluation.ranking) == sorted(valid)
    ranks = {b.bidder_id: b.rank for b in evaluation.bids}
    assert [ranks[b] for b in evaluation.ranking] == list(range(1, len(valid) + 1))
    # totals never increase down the ranking; price scores within [0, weight]
    results = {b.bidder_id: b for b in evaluation.bids}
    if project.scoring.method != "lowest_price":
        totals = [results[b].total for b in evaluation.ranking]
        assert all(t is not None for t in totals)
        assert totals == sorted(totals, reverse=True)  # type: ignore[type-var]
        for b in evaluation.ranking:
            score = results[b].price_score
            assert score is not None and D(0) <= score <= D(30)
    else:
        prices = [results[b].price for b in evaluation.ranking]
        assert prices == sorted(prices)
    json.dumps(evaluation_to_dict(evaluation))
