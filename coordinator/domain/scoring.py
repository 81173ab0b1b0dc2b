"""Scoring: committee scores, price scores, totals, ranking with tie-break, warnings, report.

Pure functions over the model: no I/O, no clock, no global randomness. Whatever is random (the
final tie-break lottery, the double-blind bid codes) is a deterministic function of a seed the
caller records, so an auditor can replay it.

Rounding rule (one rule, used everywhere):
  * every intermediate value (committee means, benchmark price, price scores, technical scores,
    totals) is computed with `Decimal` in a local context of 50 significant digits, i.e. exactly
    for sums and for divisions that terminate, and to 50 digits otherwise;
  * a value is rounded only when it is reported: `quantize_score` to 2 decimal places with
    ROUND_HALF_UP (the rule a committee applies by hand: 87.665 -> 87.67);
  * the ranking compares the quantized totals (and quantized technical scores), because that is
    what the signed committee report shows: two bids whose totals print the same are tied there
    and must be tied here too. Prices are compared as bid (exact).
A consequence to be aware of: the reported total is the rounded exact total, so it can differ by
0.01 from the sum of the separately rounded price and technical scores.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any, Literal

from coordinator.domain.model import Bid, Criterion, Project, ScoringMethodName
from coordinator.domain.rules import ScoringRules, packaged_rules
from evalgrid.score_rules import score_problem, sheet_problems

ScoreKey = tuple[str, str]
"""(bidder_id, criterion_id): one cell of an expert's sheet."""

WarningKind = Literal["deviation", "objective_inconsistent"]
TieLevel = Literal["price", "technical", "lottery"]

PRECISION = 50
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# The statutory constants live in the rules file's `[scoring]` table (one place, in the digest).
MIN_VALID_BIDS = packaged_rules().scoring.min_valid_bids
"""Fewer valid bids than this and the tender fails: there is no competition to award."""
TRIM_ABOVE_EXPERTS = packaged_rules().scoring.trim_above_experts
"""With more experts than this, the single highest and lowest score per item are dropped."""
WORKS_TRIM_ABOVE_BIDS = packaged_rules().scoring.works_trim_above_bids
"""Works benchmark: with more valid bids than this, the highest and lowest price are dropped."""
MIN_PRICE_WEIGHT: Mapping[str, Decimal] = packaged_rules().scoring.min_price_weight
"""Statutory floor of the price weight (points out of 100) under comprehensive scoring."""

_CTX = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_LENGTH = 4


class SheetError(ValueError):
    """Sheets that cannot be aggregated; `issues` says which expert, which cell, and why."""

    def __init__(self, issues: Sequence[tuple[str, str, str]]) -> None:
        self.issues: tuple[tuple[str, str, str], ...] = tuple(issues)
        shown = "; ".join(f"{ref}: {fld}: {why}" for ref, fld, why in self.issues[:5])
        more = f" (+{len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
        super().__init__(f"invalid expert sheets: {shown}{more}")


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpertSheet:
    """One expert's scores for (bidder, criterion) cells, and whether the expert signed it."""

    expert_ref: str
    scores: Mapping[ScoreKey, Decimal] = field(hash=False)
    signed: bool


@dataclass(frozen=True, slots=True)
class ScoreWarning:
    """A score the committee leader must look at before the report is signed.

    `deviation`: `expert_ref` gave `score`, more than the threshold away from `mean` (the plain
    mean of all experts on the item). `objective_inconsistent`: experts disagree on an objective
    item; `expert_ref`/`score` are None and `scores` lists every expert's score on it.
    """

    kind: WarningKind
    expert_ref: str | None
    bidder_id: str
    criterion_id: str
    score: Decimal | None
    mean: Decimal
    scores: tuple[tuple[str, Decimal], ...] = ()


Warning = ScoreWarning  # the brief's name; ScoreWarning does not shadow the builtin


@dataclass(frozen=True, slots=True)
class TieBreak:
    """Bidders level on the primary key (total; price under lowest price) and how they split.

    `resolved_by` is the deepest level needed. `lottery` holds (bidder, ticket) for every bidder
    that reached the lottery, ticket = SHA-256(lottery_seed || bidder_id) in hex; lower ticket
    ranks first, so anyone holding the seed can replay the order.
    """

    tied: tuple[str, ...]
    order: tuple[str, ...]
    resolved_by: TieLevel
    lottery: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BidResult:
    """One bid as the report shows it; every Decimal score is already quantized (2 places)."""

    bidder_id: str
    code: str | None
    price: Decimal
    valid: bool
    price_score: Decimal | None = None  # None: invalid bid, failed tender or lowest price
    criterion_scores: tuple[tuple[str, Decimal], ...] = ()
    technical: Decimal | None = None
    total: Decimal | None = None  # None under lowest price: the price itself ranks
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome the committee signs: results, ranking, tie-breaks, warnings or failure."""

    project_id: str
    method: ScoringMethodName
    benchmark_price: Decimal | None
    bids: tuple[BidResult, ...]  # ranked valid bids first, then the others in project order
    ranking: tuple[str, ...]
    ties: tuple[TieBreak, ...]
    warnings: tuple[ScoreWarning, ...]
    failed: bool
    reason: str | None
    lottery_seed: bytes

    @property
    def winner(self) -> str | None:
        return self.ranking[0] if self.ranking else None


# --- arithmetic ----------------------------------------------------------------------------


def quantize_score(value: Decimal) -> Decimal:
    """Round a reported value to 2 places, half up: the single rounding step in this module."""
    with localcontext(_CTX):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


def mean_of(values: Sequence[Decimal]) -> Decimal:
    with localcontext(_CTX):
        return sum(values, Decimal(0)) / len(values)


def trimmed_mean(values: Sequence[Decimal], trim_above: int) -> Decimal:
    """Mean, dropping the single highest and lowest value when there are more than `trim_above`.

    Drops one value at each end even if several share the extreme: the rule names "the single
    highest and single lowest".
    """
    if not values:
        raise ValueError("mean of no values")
    ordered = sorted(values)
    if len(ordered) > trim_above:
        ordered = ordered[1:-1]
    return mean_of(ordered)


# --- validation ----------------------------------------------------------------------------


def validate_score(criterion: Criterion, value: Decimal) -> str | None:
    """Why `value` cannot stand as a score on `criterion`, or None when it can.

    The rule itself is shared with the booth and the agent (`evalgrid.score_rules`), so a
    value one side takes the other takes too.
    """
    return score_problem(value, criterion.max_score)


def validate_sheet(
    project: Project, sheet: ExpertSheet, *, require_signed: bool = False
) -> list[tuple[str, str]]:
    """(field, reason) for each problem in a sheet, sorted; empty when it can be aggregated.

    Every valid bid must be scored on every criterion. Scores for a bid that failed
    qualification are tolerated (the sheet may predate the decision) but still bound-checked;
    they are ignored by aggregation. `require_signed` is for aggregation: a report rests only on
    signed sheets, while a sheet being filled in is checked without it.
    """
    issues: list[tuple[str, str]] = []
    if not sheet.expert_ref:
        issues.append(("expert_ref", "missing expert reference"))
    if require_signed and not sheet.signed:
        issues.append(("signed", "sheet is not signed"))
    # The cells: the rule shared with the booth and the agent (`evalgrid.score_rules`).
    issues += sheet_problems(
        [b.bidder_id for b in project.bids if b.valid],
        {c.id: c.max_score for c in project.scoring.criteria},
        [(bidder_id, criterion_id, value)
         for (bidder_id, criterion_id), value in sheet.scores.items()],
        signed=True, tolerated=[b.bidder_id for b in project.bids if not b.valid])
    return sorted(issues)


def validate_scoring_method(project: Project, rules: ScoringRules | None = None
                            ) -> list[tuple[str, str]]:
    """(field, reason) for a scoring method that cannot be applied to the project; sorted.

    `rules` are the scoring rules in force (the packaged rules' when None), here and below."""
    scoring = project.scoring
    issues: list[tuple[str, str]] = []
    ids = [c.id for c in scoring.criteria]
    if len(set(ids)) != len(ids):
        issues.append(("scoring.criteria", "duplicate criterion id"))
    for c in scoring.criteria:
        if not c.max_score.is_finite() or c.max_score <= 0:
            issues.append((f"scoring.criteria[{c.id}].max_score", "must be positive"))
    if scoring.method != "lowest_price":
        if not scoring.price_weight.is_finite() or scoring.price_weight < 0:
            issues.append(("scoring.price_weight", "must not be negative"))
        if scoring.deduction_per_point < 0:
            issues.append(("scoring.deduction_per_point", "must not be negative"))
    floor = (rules or packaged_rules().scoring).min_price_weight.get(project.category)
    if scoring.method == "comprehensive" and floor is not None and scoring.price_weight < floor:
        issues.append(("scoring.price_weight", f"{project.category}: at least {floor}"))
    if scoring.deviation_threshold < 0:
        issues.append(("scoring.deviation_threshold", "must not be negative"))
    bidder_ids = project.bidder_ids
    if len(set(bidder_ids)) != len(bidder_ids):
        issues.append(("bids", "duplicate bidder id"))
    for bid in project.bids:
        if bid.valid and (not bid.price.is_finite() or bid.price <= 0):
            issues.append((f"bids[{bid.bidder_id}].price", "must be positive"))
    return sorted(issues)


def check_sheets(project: Project, sheets: Sequence[ExpertSheet],
                  rules: ScoringRules | None = None) -> None:
    problems = validate_scoring_method(project, rules)
    if problems:
        raise ValueError(f"scoring method cannot be applied: {problems}")
    issues: list[tuple[str, str, str]] = []
    refs = [s.expert_ref for s in sheets]
    if len(set(refs)) != len(refs):
        issues.append(("*", "expert_ref", "more than one sheet from the same expert"))
    if project.scoring.criteria:
        if not sheets:
            issues.append(("*", "sheets", "no expert sheets"))
        elif len(sheets) != project.drawn_seats:
            # One sheet per drawn member; the tenderer's representatives (if any) do not score
            # through the booths yet, so they are not counted here.
            issues.append(
                ("*", "sheets", f"{len(sheets)} sheets for {project.drawn_seats} drawn members")
            )
    for sheet in sheets:
        issues.extend(
            (sheet.expert_ref, fld, why)
            for fld, why in validate_sheet(project, sheet, require_signed=True)
        )
    if issues:
        raise SheetError(sorted(issues))


# --- committee scores ----------------------------------------------------------------------


def _valid_bids(project: Project) -> list[Bid]:
    return [b for b in project.bids if b.valid]


def _item_scores(
    project: Project, sheets: Sequence[ExpertSheet]
) -> dict[ScoreKey, list[tuple[str, Decimal]]]:
    """Per valid bid and criterion, every expert's (ref, score), sorted so order never matters."""
    items: dict[ScoreKey, list[tuple[str, Decimal]]] = {}
    for bid in _valid_bids(project):
        for criterion in project.scoring.criteria:
            key = (bid.bidder_id, criterion.id)
            items[key] = sorted((s.expert_ref, s.scores[key]) for s in sheets if key in s.scores)
    return items


def committee_scores(project: Project, sheets: Sequence[ExpertSheet],
                     rules: ScoringRules | None = None) -> dict[ScoreKey, Decimal]:
    """Exact committee score per valid bid and criterion (not yet quantized).

    The mean of the experts' scores; with more than 5 experts the single highest and lowest are
    dropped first, so one outlier cannot move the committee. Cells nobody scored are left out
    (evaluate() refuses such sheets; this function is also used on partial sheets).
    """
    trim_above = (rules or packaged_rules().scoring).trim_above_experts
    return {
        key: trimmed_mean([score for _, score in scored], trim_above)
        for key, scored in _item_scores(project, sheets).items()
        if scored
    }


def score_warnings(project: Project, sheets: Sequence[ExpertSheet]) -> list[ScoreWarning]:
    """Deviation and objective-consistency warnings, sorted by bidder, criterion, kind, expert.

    Deviation: |score - mean| > deviation_threshold x criterion maximum, against the plain mean of
    all experts (before any drop), since the leader reviews the score against the whole panel.
    Objective: any spread at all, because an objective item has one right answer. An objective
    item may raise both kinds: they ask different questions.
    """
    criteria = {c.id: c for c in project.scoring.criteria}
    warnings: list[ScoreWarning] = []
    with localcontext(_CTX):
        for (bidder_id, criterion_id), scored in _item_scores(project, sheets).items():
            if not scored:
                continue
            criterion = criteria[criterion_id]
            values = [v for _, v in scored]
            mean = mean_of(values)
            limit = project.scoring.deviation_threshold * criterion.max_score
            warnings.extend(
                ScoreWarning("deviation", ref, bidder_id, criterion_id, value, mean)
                for ref, value in scored
                if abs(value - mean) > limit
            )
            if criterion.objective and max(values) != min(values):
                warnings.append(
                    ScoreWarning(
                        "objective_inconsistent",
                        None,
                        bidder_id,
                        criterion_id,
                        None,
                        mean,
                        tuple(scored),
                    )
                )
    warnings.sort(key=lambda w: (w.bidder_id, w.criterion_id, w.kind, w.expert_ref or ""))
    return warnings


# --- price scores --------------------------------------------------------------------------


def lowest_benchmark(prices: Sequence[Decimal]) -> Decimal:
    """Comprehensive scoring benchmark: the lowest valid bid price."""
    if not prices:
        raise ValueError("no valid prices")
    return min(prices)


def comprehensive_price_score(price: Decimal, benchmark: Decimal, weight: Decimal) -> Decimal:
    """benchmark / price x weight, exact: the lowest valid bid gets the full weight."""
    if price <= 0:
        raise ValueError("price must be positive")
    with localcontext(_CTX):
        return benchmark / price * weight


def works_benchmark(prices: Sequence[Decimal], rules: ScoringRules | None = None) -> Decimal:
    """Works benchmark: mean of valid prices, dropping highest and lowest above 3 bids.

    Trimming keeps one extreme (a dumped or inflated bid) from dragging the benchmark.
    """
    return trimmed_mean(list(prices), (rules or packaged_rules().scoring).works_trim_above_bids)


def deviation_percent(price: Decimal, benchmark: Decimal) -> Decimal:
    """(price - benchmark) / benchmark x 100: signed deviation in percentage points, exact."""
    if benchmark <= 0:
        raise ValueError("benchmark must be positive")
    with localcontext(_CTX):
        return (price - benchmark) / benchmark * HUNDRED


def works_price_score(
    price: Decimal,
    benchmark: Decimal,
    weight: Decimal,
    deduction_per_point: Decimal,
    deduction_below: Decimal | None = None,
) -> Decimal:
    """weight - rate x |deviation %|, floored at 0; proportional (no whole-point steps).

    A bid above the benchmark loses `deduction_per_point` per percentage point; one below it
    loses `deduction_below` per point, by default the same rate, so neither an inflated nor an
    abnormally low bid is favoured. The model has a single rate; the second is here so a
    province that deducts less for bids under the benchmark can say so.
    """
    below = deduction_per_point if deduction_below is None else deduction_below
    with localcontext(_CTX):
        deviation = deviation_percent(price, benchmark)
        rate = deduction_per_point if deviation > 0 else below
        return max(Decimal(0), weight - rate * abs(deviation))


# --- ranking -------------------------------------------------------------------------------


def lottery_ticket(seed: bytes, bidder_id: str) -> bytes:
    """SHA-256(seed || bidder_id as UTF-8): the last tie-break; lower ticket ranks first."""
    return hashlib.sha256(seed + bidder_id.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Ranked:
    bidder_id: str
    primary: Decimal  # larger is better
    price: Decimal
    technical: Decimal
    ticket: bytes

    def key(self) -> tuple[Decimal, Decimal, Decimal, bytes]:
        return (-self.primary, self.price, -self.technical, self.ticket)


def rank_rows(rows: Sequence[Ranked], price_is_primary: bool) -> tuple[list[str], list[TieBreak]]:
    """Order rows by the tie-break chain and record every group level on the primary key."""
    ordered = sorted(rows, key=Ranked.key)
    groups: dict[Decimal, list[Ranked]] = defaultdict(list)
    for row in ordered:
        groups[row.primary].append(row)
    ties: list[TieBreak] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        by_price_technical: dict[tuple[Decimal, Decimal], list[Ranked]] = defaultdict(list)
        for row in group:
            by_price_technical[(row.price, row.technical)].append(row)
        level: TieLevel
        if not price_is_primary and len({r.price for r in group}) == len(group):
            level = "price"
        elif all(len(sub) == 1 for sub in by_price_technical.values()):
            level = "technical"
        else:
            level = "lottery"
        ties.append(
            TieBreak(
                tied=tuple(sorted(r.bidder_id for r in group)),
                order=tuple(r.bidder_id for r in group),
                resolved_by=level,
                lottery=tuple(
                    (r.bidder_id, r.ticket.hex())
                    for sub in by_price_technical.values()
                    if len(sub) > 1
                    for r in sub
                ),
            )
        )
    return [r.bidder_id for r in ordered], ties


# --- evaluation ----------------------------------------------------------------------------


def evaluate(
    project: Project,
    sheets: Sequence[ExpertSheet],
    lottery_seed: bytes,
    *,
    code_salt: bytes | None = None,
    rules: ScoringRules | None = None,
) -> Evaluation:
    """Aggregate signed sheets into the committee's result for the project's scoring method.

    Fewer than `min_valid_bids` (3 in v1) valid bids fail the tender before detailed scoring,
    so the sheets are then not looked at. Otherwise sheets must be complete and signed, one per
    committee member (a report resting on a missing or unsigned sheet would be void), or
    SheetError is raised.
    `code_salt` is the salt the double-blind codes were issued with; without it codes are None.
    `rules` are the scoring rules in force (`Rules.scoring`; the packaged rules' when None).
    """
    method = project.scoring.method
    codes = bid_codes(project, code_salt) if code_salt is not None else {}
    valid = _valid_bids(project)
    rules = rules or packaged_rules().scoring
    if len(valid) < rules.min_valid_bids:
        return Evaluation(
            project_id=project.id,
            method=method,
            benchmark_price=None,
            bids=tuple(
                BidResult(b.bidder_id, codes.get(b.bidder_id), b.price, b.valid)
                for b in project.bids
            ),
            ranking=(),
            ties=(),
            warnings=(),
            failed=True,
            reason=(
                f"{len(valid)} valid bid(s); at least {rules.min_valid_bids} are needed:"
                " the tender fails and no award is made"
            ),
            lottery_seed=lottery_seed,
        )
    check_sheets(project, sheets, rules)
    scoring = project.scoring
    committee = committee_scores(project, sheets, rules)
    prices = [b.price for b in valid]
    benchmark: Decimal | None
    if method == "comprehensive":
        benchmark = lowest_benchmark(prices)
    elif method == "works":
        benchmark = works_benchmark(prices, rules)
    else:
        benchmark = None

    results: dict[str, BidResult] = {}
    rows: list[Ranked] = []
    with localcontext(_CTX):
        for bid in valid:
            per_criterion = [committee[(bid.bidder_id, c.id)] for c in scoring.criteria]
            technical = sum(per_criterion, Decimal(0))
            price_score: Decimal | None
            if method == "comprehensive":
                assert benchmark is not None
                price_score = comprehensive_price_score(bid.price, benchmark, scoring.price_weight)
            elif method == "works":
                assert benchmark is not None
                price_score = works_price_score(
                    bid.price, benchmark, scoring.price_weight, scoring.deduction_per_point
                )
            else:
                price_score = None
            total = None if price_score is None else quantize_score(price_score + technical)
            q_technical = quantize_score(technical)
            results[bid.bidder_id] = BidResult(
                bidder_id=bid.bidder_id,
                code=codes.get(bid.bidder_id),
                price=bid.price,
                valid=True,
                price_score=None if price_score is None else quantize_score(price_score),
                criterion_scores=tuple(
                    (c.id, quantize_score(v))
                    for c, v in zip(scoring.criteria, per_criterion, strict=True)
                ),
                technical=q_technical,
                total=total,
            )
            rows.append(
                Ranked(
                    bidder_id=bid.bidder_id,
                    primary=-bid.price if total is None else total,
                    price=bid.price,
                    technical=q_technical,
                    ticket=lottery_ticket(lottery_seed, bid.bidder_id),
                )
            )
    ranking, ties = rank_rows(rows, price_is_primary=method == "lowest_price")
    ranked = tuple(
        replace(results[bidder_id], rank=rank) for rank, bidder_id in enumerate(ranking, start=1)
    )
    invalid = tuple(
        BidResult(b.bidder_id, codes.get(b.bidder_id), b.price, False)
        for b in project.bids
        if not b.valid
    )
    return Evaluation(
        project_id=project.id,
        method=method,
        benchmark_price=None if benchmark is None else quantize_score(benchmark),
        bids=ranked + invalid,
        ranking=tuple(ranking),
        ties=tuple(ties),
        warnings=tuple(score_warnings(project, sheets)),
        failed=False,
        reason=None,
        lottery_seed=lottery_seed,
    )


# --- report --------------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(quantize_score(value))


def evaluation_to_dict(evaluation: Evaluation) -> dict[str, Any]:
    """A plain, JSON-able dict of the committee report; Decimals as strings with 2 places."""
    return {
        "project_id": evaluation.project_id,
        "method": evaluation.method,
        "failed": evaluation.failed,
        "reason": evaluation.reason,
        "rounding": "intermediates exact (50 digits); reported to 0.01, ROUND_HALF_UP",
        "benchmark_price": _money(evaluation.benchmark_price),
        "bids": [
            {
                "bidder_id": b.bidder_id,
                "code": b.code,
                "price": _money(b.price),
                "valid": b.valid,
                "price_score": _money(b.price_score),
                "criteria": {cid: _money(v) for cid, v in b.criterion_scores},
                "technical": _money(b.technical),
                "total": _money(b.total),
                "rank": b.rank,
            }
            for b in evaluation.bids
        ],
        "ranking": list(evaluation.ranking),
        "winner": evaluation.winner,
        "ties": [
            {
                "tied": list(t.tied),
                "order": list(t.order),
                "resolved_by": t.resolved_by,
                "lottery": [{"bidder_id": b, "ticket": ticket} for b, ticket in t.lottery],
            }
            for t in evaluation.ties
        ],
        "lottery_seed": evaluation.lottery_seed.hex(),
        "warnings": [
            {
                "kind": w.kind,
                "expert_ref": w.expert_ref,
                "bidder_id": w.bidder_id,
                "criterion_id": w.criterion_id,
                "score": _money(w.score),
                "mean": _money(w.mean),
                "scores": [{"expert_ref": ref, "score": _money(v)} for ref, v in w.scores],
            }
            for w in evaluation.warnings
        ],
    }


# --- double-blind codes --------------------------------------------------------------------


def _code(salt: bytes, bidder_id: str, length: int) -> str:
    digest = int.from_bytes(hmac.new(salt, bidder_id.encode("utf-8"), hashlib.sha256).digest())
    chars = []
    for _ in range(length):
        digest, index = divmod(digest, len(_CODE_ALPHABET))
        chars.append(_CODE_ALPHABET[index])
    return "B-" + "".join(chars)


def bid_codes(project: Project, salt: bytes) -> dict[str, str]:
    """Deterministic double-blind codes ("B-7Q3K") from HMAC-SHA256(salt, bidder_id).

    Without the secret salt a code cannot be linked to a bidder. Codes are unique within the
    project: on a collision every code is lengthened by one character (not just the colliding
    ones), so a bidder's code never depends on which other bidders are in the project's list
    order.
    """
    if not salt:
        raise ValueError("an empty salt would let anyone link codes to bidders")
    bidder_ids = list(project.bidder_ids)
    if len(set(bidder_ids)) != len(bidder_ids):
        raise ValueError("duplicate bidder id")
    max_length = 51  # 256 bits in base 32
    for length in range(_CODE_LENGTH, max_length + 1):
        codes = {b: _code(salt, b, length) for b in bidder_ids}
        if len(set(codes.values())) == len(codes):
            return codes
    raise AssertionError("HMAC-SHA256 collision")  # pragma: no cover
