"""Committee scores for many projects at once, in exact integers: the same answer as scoring.py.

Why: `scoring.evaluate` works in `Decimal`, a few microseconds per score; a history of 20,000
projects x 10 bids x 7 experts x 15 criteria (21 million scores) would take minutes. Every
score is a whole number of hundredths, so every value scoring.py computes is a rational number
whose numerator and denominator are small integers:

  * committee score of a criterion  = S / m          (hundredths; S = trimmed sum, m = count)
  * technical score                  = T / m          (T = the sum of the criteria's S)
  * comprehensive price score        = L x W / p      (L = lowest valid price, W = weight, p =
                                                       the bid's price, all in hundredths)
  * works benchmark                  = N / k          (N = trimmed sum of valid prices)
  * works price score                = max(0, W x N - 100 x r x |p x k - N|) / N
  * total                            = price score + technical, over the common denominator.

scoring.py computes these exactly (sums, terminating divisions) or to 50 significant digits,
and rounds once, half up, to 0.01 when a value is reported. Here numerator and denominator are
kept in int64 and the reported value is `(2 x num + den) // (2 x den)`: half up, exactly. The
two agree except where the exact value lies exactly on a half hundredth and scoring.py's
50-digit intermediates could have fallen either side of it (an error of ~1e-48 can move a value
only across a boundary it lies on: any other value is at least 1 / (2 x den) away). Those
projects, and any whose numbers would not fit in int64 or are not whole hundredths, are flagged
`exact` and recomputed with `scoring.evaluate` itself, so the result is identical for every
project by construction, not by luck. Ranking is vectorised (a lexicographic sort per project);
a project with two bids level on the primary key goes through scoring's own tie-break.

Projects are held in a `ScoreBlock` (one shape: bids x members x criteria, in columns), which
`aggregate_range` reads a slice of: a pure job for coordinator.batch's executors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from coordinator.domain import scoring
from coordinator.domain.model import Project, ScoringMethodName
from coordinator.domain.rules import ScoringRules, packaged_rules
from coordinator.domain.scoring import (
    BidResult,
    Evaluation,
    ExpertSheet,
    ScoreWarning,
    TieBreak,
)

I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
Arr = npt.NDArray[Any]

METHODS: tuple[ScoringMethodName, ...] = ("comprehensive", "lowest_price", "works")
METHOD_CODE: Mapping[str, int] = {name: i for i, name in enumerate(METHODS)}
_COMPREHENSIVE, _LOWEST, _WORKS = 0, 1, 2
_NONE = -1  # a reported value that does not exist (price score under lowest price, ...)
_SAFE = float(2**61)  # bound on |numerator| and denominator before int64 could overflow
_MAX_SCALE = 9  # deviation limits with more decimals than this go to scoring.evaluate


@dataclass(frozen=True, eq=False)
class ScoreBlock:
    """Projects of one shape (bids B, scoring members E, criteria C), in columns.

    Money and points are int64 hundredths. `limit` is each criterion's deviation limit
    (threshold x maximum) in hundredths times 10**`limit_scale`, so it is a whole number.
    `scores[p, e, b, c]` is member e's score for bid b on criterion c: an expert's sheet is
    `scores[p, e]`. Lottery seeds are bytes (`seeds[p, :seed_len[p]]`). Only numbers and
    fixed-width strings, so a Ray worker reads the block from the object store without copying.
    """

    project_ids: Arr  # str [P]
    bidder_ids: Arr  # str [P, B]
    criterion_ids: Arr  # str [P, C]
    expert_refs: Arr  # str [P, E]
    method: Arr  # int8 [P], METHOD_CODE
    price: I64  # [P, B]
    valid: Bool  # [P, B]
    weight: I64  # [P]
    deduction: I64  # [P]
    max_score: I64  # [P, C]
    objective: Bool  # [P, C]
    limit: I64  # [P, C]
    limit_scale: int
    seeds: Arr  # uint8 [P, L]
    seed_len: Arr  # int [P]
    scores: Arr  # int16/int32/int64 [P, E, B, C]
    rules: ScoringRules = field(default_factory=lambda: packaged_rules().scoring)

    def __post_init__(self) -> None:
        if self.scores.ndim != 4:
            raise ValueError(f"ScoreBlock.scores: {self.scores.ndim} dimensions, expected 4 "
                             "(projects, members, bids, criteria)")
        p, e, b, c = self.scores.shape
        expected = {
            "project_ids": (p,), "bidder_ids": (p, b), "criterion_ids": (p, c),
            "expert_refs": (p, e), "method": (p,), "price": (p, b), "valid": (p, b),
            "weight": (p,), "deduction": (p,), "max_score": (p, c), "objective": (p, c),
            "limit": (p, c), "seed_len": (p,),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"ScoreBlock.{name}: shape {actual}, expected {shape}")
        if self.seeds.ndim != 2 or self.seeds.shape[0] != p:
            raise ValueError(f"ScoreBlock.seeds: shape {self.seeds.shape}, expected ({p}, L)")
        if not np.issubdtype(self.scores.dtype, np.integer):
            raise ValueError("ScoreBlock.scores: must be integer hundredths")
        if not 0 <= self.limit_scale <= _MAX_SCALE:
            raise ValueError(f"ScoreBlock.limit_scale: must be within 0..{_MAX_SCALE}")
        if p and not np.isin(self.method, list(METHOD_CODE.values())).all():
            raise ValueError("ScoreBlock.method: unknown method code")

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(bids, members, criteria)."""
        _, e, b, c = self.scores.shape
        return b, e, c

    def seed(self, p: int) -> bytes:
        return bytes(self.seeds[p, : int(self.seed_len[p])])

    def sheets(self, p: int) -> list[ExpertSheet]:
        """Project p's signed sheets as scoring.py takes them (for the exact path)."""
        bidders = [str(x) for x in self.bidder_ids[p]]
        criteria = [str(x) for x in self.criterion_ids[p]]
        return [
            ExpertSheet(
                str(ref),
                {(bidder, criterion): _cents(int(self.scores[p, e, b, c]))
                 for b, bidder in enumerate(bidders) for c, criterion in enumerate(criteria)},
                signed=True,
            )
            for e, ref in enumerate(self.expert_refs[p])
        ]


@dataclass(eq=False)
class BlockResult:
    """What `aggregate_range` found for projects [start, start + len): reported values in
    hundredths (`_NONE` where the value does not exist), the ranking as bid indices (valid bids
    in rank order, then the invalid ones in project order) and the warnings as indices.

    `exact`: projects to recompute with scoring.evaluate (see the module docstring);
    `errors`: projects whose input scoring.evaluate would refuse, with the reason.
    """

    start: int
    failed: Bool  # [P] fewer than 3 valid bids
    benchmark: I64  # [P]
    criteria: I64  # [P, B, C]
    technical: I64  # [P, B]
    price_score: I64  # [P, B]
    total: I64  # [P, B]
    order: Arr  # int [P, B]
    ties: dict[int, tuple[TieBreak, ...]] = field(default_factory=dict)
    deviations: Arr = field(default_factory=lambda: np.zeros((0, 4), np.int64))  # (p, e, b, c)
    inconsistent: Arr = field(default_factory=lambda: np.zeros((0, 3), np.int64))  # (p, b, c)
    exact: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.failed.shape[0])


# --- building blocks ------------------------------------------------------------------------


def _cents(n: int) -> Decimal:
    """n hundredths as a Decimal with two places, as quantize_score reports it."""
    return Decimal(n).scaleb(-2)


def _hundredths(value: Decimal) -> int | None:
    """value x 100 as an int when value is a finite whole number of hundredths, else None."""
    if not value.is_finite():
        return None
    scaled = value.scaleb(2)
    if scaled != scaled.to_integral_value() or abs(scaled) >= 2**53:
        return None
    return int(scaled)


def _scaled_limit(threshold: Decimal, maximum: Decimal) -> tuple[int, int] | None:
    """(limit x 100 x 10**k as an int, k) for limit = threshold x maximum, exactly."""
    limit = (threshold * maximum).scaleb(2)  # two finite decimals: an exact product
    if not limit.is_finite():
        return None
    exponent = limit.as_tuple().exponent
    assert isinstance(exponent, int)
    k = max(0, -exponent)
    if k > _MAX_SCALE or abs(limit) >= 2**40:
        return None
    return int(limit.scaleb(k)), k


def _representable(project: Project, sheets: Sequence[ExpertSheet]) -> bool:
    """Whether every number the fast path reads is whole hundredths of a sane size."""
    s = project.scoring
    if _hundredths(s.price_weight) is None or _hundredths(s.deduction_per_point) is None:
        return False
    if any(_scaled_limit(s.deviation_threshold, c.max_score) is None for c in s.criteria):
        return False
    if any(b.valid and _hundredths(b.price) is None for b in project.bids):
        return False
    return all(_hundredths(v) is not None for sheet in sheets for v in sheet.scores.values())


def _fixed_strings(rows: Sequence[Sequence[str]], width: int) -> Arr:
    array = np.array(rows, dtype=np.str_) if width else np.zeros((len(rows), 0), np.str_)
    return array.reshape(len(rows), width)


def _seed_matrix(seeds: Sequence[bytes]) -> tuple[Arr, Arr]:
    width = max((len(s) for s in seeds), default=0)
    matrix = np.zeros((len(seeds), width), np.uint8)
    for i, seed in enumerate(seeds):
        matrix[i, : len(seed)] = np.frombuffer(seed, np.uint8)
    return matrix, np.array([len(s) for s in seeds], np.int64)


def block_from_sheets(projects: Sequence[Project], sheets: Sequence[Sequence[ExpertSheet]],
                      lottery_seeds: Sequence[bytes], rules: ScoringRules | None = None
                      ) -> ScoreBlock:
    """One block from projects of one shape whose sheets are complete and representable.

    The caller (evaluate_many) has already checked that with scoring's own validation; a
    missing cell of a valid bid here is a KeyError, not a silent zero. A bid that failed
    qualification needs no scores (as in ``scoring.evaluate``): its cells stay zero, masked.
    """
    if not projects:
        raise ValueError("projects: a block needs at least one project")
    first = projects[0]
    b, e, c = len(first.bids), len(sheets[0]), len(first.scoring.criteria)
    scores = np.zeros((len(projects), e, b, c), np.int64)
    limits = []
    for p, (project, members) in enumerate(zip(projects, sheets, strict=True)):
        if (len(project.bids), len(members), len(project.scoring.criteria)) != (b, e, c):
            raise ValueError(f"projects[{p}]: shape differs from the block's {(b, e, c)}")
        for i, sheet in enumerate(members):
            for j, bid in enumerate(project.bids):
                if not bid.valid:
                    continue  # failed qualification: not scored (a zero the mask never reads)
                for k, criterion in enumerate(project.scoring.criteria):
                    value = _hundredths(sheet.scores[(bid.bidder_id, criterion.id)])
                    assert value is not None
                    scores[p, i, j, k] = value
        limits.append([_scaled_limit(project.scoring.deviation_threshold, cr.max_score)
                       for cr in project.scoring.criteria])
    scale = max((lim[1] for row in limits for lim in row if lim is not None), default=0)
    limit = np.array([[lim[0] * 10 ** (scale - lim[1]) for lim in row if lim is not None]
                      for row in limits], np.int64).reshape(len(projects), c)
    seeds, seed_len = _seed_matrix(lottery_seeds)
    return ScoreBlock(
        project_ids=np.array([p.id for p in projects], np.str_),
        bidder_ids=_fixed_strings([p.bidder_ids for p in projects], b),
        criterion_ids=_fixed_strings([[cr.id for cr in p.scoring.criteria] for p in projects], c),
        expert_refs=_fixed_strings([[s.expert_ref for s in m] for m in sheets], e),
        method=np.array([METHOD_CODE[p.scoring.method] for p in projects], np.int8),
        price=np.array([[_hundredths(bid.price) if bid.valid else 0 for bid in p.bids]
                        for p in projects], np.int64).reshape(len(projects), b),
        valid=np.array([[bid.valid for bid in p.bids] for p in projects],
                       np.bool_).reshape(len(projects), b),
        weight=np.array([_hundredths(p.scoring.price_weight) for p in projects], np.int64),
        deduction=np.array([_hundredths(p.scoring.deduction_per_point) for p in projects],
                           np.int64),
        max_score=np.array([[int(cr.max_score.scaleb(2).to_integral_value(rounding="ROUND_FLOOR"))
                             for cr in p.scoring.criteria] for p in projects],
                           np.int64).reshape(len(projects), c),
        objective=np.array([[cr.objective for cr in p.scoring.criteria] for p in projects],
                           np.bool_).reshape(len(projects), c),
        limit=limit, limit_scale=scale, seeds=seeds, seed_len=seed_len, scores=scores,
        rules=rules or packaged_rules().scoring,
    )


# --- the job --------------------------------------------------------------------------------


def _half_up(num: I64, den: I64) -> I64:
    """num / den rounded half up, for num >= 0 and den > 0: the rule of quantize_score."""
    result: I64 = (2 * num + den) // (2 * den)
    return result


def _strip_2_5(m: int) -> int:
    for prime in (2, 5):
        while m % prime == 0:
            m //= prime
    return m


def _on_half(num: I64, den: I64) -> Bool:
    """Whether num / den lies exactly on a half hundredth (where 50 digits could tip it)."""
    result: Bool = 2 * (num % den) == den
    return result


def aggregate_range(block: ScoreBlock, span: tuple[int, int]) -> BlockResult:
    """Committee scores, price scores, totals, ranking and warnings for projects [lo, hi).

    A pure function of the block: the chunked job the executors run.
    """
    lo, hi = span
    s = block.scores[lo:hi]
    n, members, bids, ncrit = s.shape
    valid = block.valid[lo:hi]
    method = block.method[lo:hi].astype(np.int64)
    price = np.where(valid, block.price[lo:hi], 0)
    weight = block.weight[lo:hi]
    rate = block.deduction[lo:hi]
    maximum = block.max_score[lo:hi]
    nvalid = valid.sum(axis=1)
    failed = nvalid < block.rules.min_valid_bids
    errors: dict[int, str] = {}

    # --- input the scoring rules refuse (scoring.evaluate would raise) -----------------------
    bad = (s < 0) | (s > maximum[:, None, None, :])
    bad_project = bad.any(axis=(1, 2, 3)) & ~failed
    for p in np.flatnonzero(bad_project):
        e, b, c = (int(x[0]) for x in np.nonzero(bad[p]))
        value = int(s[p, e, b, c])
        why = "score below 0" if value < 0 else \
            f"score above the maximum {_cents(int(maximum[p, c])).normalize():f}"
        errors[lo + int(p)] = (f"invalid expert sheets: {block.expert_refs[lo + p, e]}: "
                               f"scores[{block.bidder_ids[lo + p, b]}]"
                               f"[{block.criterion_ids[lo + p, c]}]: {why}")
    for p in np.flatnonzero(~failed & ((valid & (price <= 0)).any(axis=1))):
        b = int(np.flatnonzero(valid[p] & (price[p] <= 0))[0])
        errors.setdefault(lo + int(p), f"bids[{block.bidder_ids[lo + p, b]}].price: "
                                       "must be positive")
    for p in np.flatnonzero(~failed & ((weight < 0) | (rate < 0)) & (method != _LOWEST)):
        errors.setdefault(lo + int(p), "scoring.price_weight / deduction_per_point: "
                                       "must not be negative")
    skip = failed.copy()
    for index in errors:
        skip[index - lo] = True
    price = np.where(skip[:, None], 1, np.where(valid, price, 1))  # no division by zero

    # --- committee scores: trimmed sums over the members -----------------------------------
    total_scores = s.sum(axis=1, dtype=np.int64)  # [n, B, C]
    if members > block.rules.trim_above_experts:
        trimmed = total_scores - s.max(axis=1) - s.min(axis=1)
        m = members - 2
    else:
        trimmed = total_scores
        m = max(members, 1)  # no members: no criteria either (checked by the caller)
    m_arr = np.full((n, bids), m, np.int64)
    criteria = _half_up(trimmed, np.full_like(trimmed, m))
    tech_num = trimmed.sum(axis=2)  # [n, B]: technical = tech_num / m
    technical = _half_up(tech_num, m_arr)
    # A single division whose exact quotient lies on a half hundredth terminates, so Decimal
    # computes it exactly (committee scores, the works benchmark). The technical score is a sum
    # of such quotients, each rounded to 50 digits unless m divides a power of ten.
    exact = _on_half(tech_num, m_arr) if _strip_2_5(m) != 1 else np.zeros((n, bids), np.bool_)

    # --- price scores and totals ------------------------------------------------------------
    big = np.iinfo(np.int64).max
    lowest = np.where(valid, price, big).min(axis=1)  # [n]
    k = nvalid.astype(np.int64)
    trim = k > block.rules.works_trim_above_bids
    valid_sum = np.where(valid, price, 0).sum(axis=1)
    highest = np.where(valid, price, 0).max(axis=1)
    works_sum = np.where(trim, valid_sum - highest - lowest, valid_sum)  # N
    works_k = np.where(trim, k - 2, np.maximum(k, 1))

    comprehensive = method == _COMPREHENSIVE
    works = method == _WORKS
    # price score = ps_num / ps_den
    ps_den = np.where(works[:, None], works_sum[:, None], price)
    deviation = np.abs(price * works_k[:, None] - works_sum[:, None])
    works_num = np.maximum(0, weight[:, None] * works_sum[:, None]
                           - 100 * rate[:, None] * deviation)
    ps_num = np.where(works[:, None], works_num, lowest[:, None] * weight[:, None])
    priced = (comprehensive | works)[:, None] & valid
    price_score = np.where(priced, _half_up(ps_num, ps_den), _NONE)
    total_num = ps_num * m + tech_num * ps_den
    total_den = ps_den * m
    total = np.where(priced, _half_up(total_num, total_den), _NONE)
    exact |= priced & (_on_half(ps_num, ps_den) | _on_half(total_num, total_den))
    benchmark = np.where(comprehensive, lowest,
                         np.where(works, _half_up(works_sum, works_k), _NONE))

    # numbers that might not have fitted in int64: redo those projects exactly
    # (every intermediate is at most k x top price x m x (W + 100 r + sum of maxima + 1))
    top = np.where(valid, price, 0).max(axis=1).astype(np.float64)
    bound = 4.0 * np.maximum(k, 1) * np.maximum(top, 1) * m * (
        weight.astype(np.float64) + 100.0 * rate + maximum.sum(axis=1) + 1)
    overflow = bound > _SAFE
    need_exact = ((exact & valid).any(axis=1) | overflow) & ~skip

    # --- ranking ----------------------------------------------------------------------------
    # primary: quantized total (larger first), or the price under lowest price (lower first)
    primary = np.where((method == _LOWEST)[:, None], price, -total)
    invalid = ~valid
    zero = np.zeros_like(primary)
    order = np.lexsort((np.where(invalid, zero, -technical), np.where(invalid, zero, price),
                        np.where(invalid, zero, primary), invalid), axis=-1)
    ranked_primary = np.take_along_axis(primary, order, axis=1)
    ranked_valid = np.take_along_axis(valid, order, axis=1)
    level = (ranked_primary[:, 1:] == ranked_primary[:, :-1]) & ranked_valid[:, 1:] \
        & ranked_valid[:, :-1]
    tied = level.any(axis=1) & ~skip & ~need_exact
    ties: dict[int, tuple[TieBreak, ...]] = {}
    for p in np.flatnonzero(tied):
        order[p], ties[lo + int(p)] = _tie_break(block, lo + int(p), method[p] == _LOWEST,
                                                 valid[p], price[p], total[p], technical[p])

    # --- warnings ---------------------------------------------------------------------------
    # deviation: |x - plain mean| > limit  <=>  |E x - sum| x 10**k > E x limit (hundredths)
    live = (valid & ~skip[:, None])[:, None, :, None]
    if ncrit and members:
        off = np.abs(members * s.astype(np.int64) - total_scores[:, None, :, :])
        far = off * 10**block.limit_scale > members * block.limit[lo:hi][:, None, None, :]
        deviations = np.argwhere(far & live)
        spread = s.max(axis=1) != s.min(axis=1)
        inconsistent = np.argwhere(spread & block.objective[lo:hi][:, None, :]
                                   & live[:, 0, :, :])
    else:
        deviations = np.zeros((0, 4), np.int64)
        inconsistent = np.zeros((0, 3), np.int64)
    deviations[:, 0] += lo
    inconsistent[:, 0] += lo

    return BlockResult(
        start=lo, failed=failed, benchmark=benchmark, criteria=criteria, technical=technical,
        price_score=price_score, total=total, order=order.astype(np.int16), ties=ties,
        deviations=deviations, inconsistent=inconsistent,
        exact=[lo + int(p) for p in np.flatnonzero(need_exact)], errors=errors)


def _tie_break(block: ScoreBlock, p: int, lowest_price: bool, valid: Bool, price: I64,
               total: I64, technical: I64) -> tuple[Arr, tuple[TieBreak, ...]]:
    """scoring's own ranking and tie records for one project with bids level on the primary."""
    seed = block.seed(p)
    bidders = [str(x) for x in block.bidder_ids[p]]
    rows = [
        scoring.Ranked(  # the same rows scoring.evaluate ranks, so the two cannot drift
            bidder_id=bidders[b],
            primary=-_cents(int(price[b])) if lowest_price else _cents(int(total[b])),
            price=_cents(int(price[b])),
            technical=_cents(int(technical[b])),
            ticket=scoring.lottery_ticket(seed, bidders[b]),
        )
        for b in np.flatnonzero(valid)
    ]
    ranking, ties = scoring.rank_rows(rows, price_is_primary=lowest_price)
    index = {bidder: b for b, bidder in enumerate(bidders)}
    ranked = [index[bidder] for bidder in ranking]
    order = np.array(ranked + [int(b) for b in np.flatnonzero(~valid)], np.int64)
    return order, tuple(ties)


def merge(parts: Sequence[BlockResult]) -> BlockResult:
    """Results of consecutive spans (in order) as one."""
    if not parts:
        raise ValueError("merge: no parts")
    ordered = sorted(parts, key=lambda r: r.start)
    result = BlockResult(
        start=ordered[0].start,
        failed=np.concatenate([r.failed for r in ordered]),
        benchmark=np.concatenate([r.benchmark for r in ordered]),
        criteria=np.concatenate([r.criteria for r in ordered]),
        technical=np.concatenate([r.technical for r in ordered]),
        price_score=np.concatenate([r.price_score for r in ordered]),
        total=np.concatenate([r.total for r in ordered]),
        order=np.concatenate([r.order for r in ordered]),
        deviations=np.concatenate([r.deviations for r in ordered]),
        inconsistent=np.concatenate([r.inconsistent for r in ordered]),
    )
    for r in ordered:
        result.ties.update(r.ties)
        result.exact.extend(r.exact)
        result.errors.update(r.errors)
    return result


# --- back to scoring's records --------------------------------------------------------------


def evaluation_of(project: Project, block: ScoreBlock, result: BlockResult, p: int, *,
                  code_salt: bytes | None = None) -> Evaluation:
    """Project p (a block index) as the Evaluation scoring.evaluate gives for it.

    `project` is the one the block row was built from. A failed tender, or a project flagged
    `exact`, is handed to scoring.evaluate itself. Raises ValueError for a project in `errors`.
    """
    if p in result.errors:
        raise ValueError(result.errors[p])
    seed = block.seed(p)
    i = p - result.start
    if result.failed[i] or p in result.exact:
        sheets = block.sheets(p) if not result.failed[i] else []
        return scoring.evaluate(project, sheets, seed, code_salt=code_salt, rules=block.rules)
    codes = scoring.bid_codes(project, code_salt) if code_salt is not None else {}
    criteria = project.scoring.criteria
    priced = project.scoring.method != "lowest_price"
    nvalid = int(block.valid[p].sum())
    ranked: list[BidResult] = []
    for rank, b in enumerate(result.order[i][:nvalid], start=1):
        bid = project.bids[b]
        ranked.append(BidResult(
            bidder_id=bid.bidder_id, code=codes.get(bid.bidder_id), price=bid.price, valid=True,
            price_score=_cents(int(result.price_score[i, b])) if priced else None,
            criterion_scores=tuple((c.id, _cents(int(result.criteria[i, b, j])))
                                   for j, c in enumerate(criteria)),
            technical=_cents(int(result.technical[i, b])),
            total=_cents(int(result.total[i, b])) if priced else None,
            rank=rank))
    invalid = tuple(BidResult(b.bidder_id, codes.get(b.bidder_id), b.price, False)
                    for b in project.bids if not b.valid)
    benchmark = int(result.benchmark[i])
    return Evaluation(
        project_id=project.id, method=project.scoring.method,
        benchmark_price=None if benchmark == _NONE else _cents(benchmark),
        bids=tuple(ranked) + invalid,
        ranking=tuple(r.bidder_id for r in ranked),
        ties=result.ties.get(p, ()),
        warnings=tuple(_warnings(block, result, p)),
        failed=False, reason=None, lottery_seed=seed)


def _warnings(block: ScoreBlock, result: BlockResult, p: int) -> list[ScoreWarning]:
    refs = [str(x) for x in block.expert_refs[p]]
    bidders = [str(x) for x in block.bidder_ids[p]]
    criteria = [str(x) for x in block.criterion_ids[p]]

    def item(b: int, c: int) -> tuple[list[tuple[str, Decimal]], Decimal]:
        scored = sorted((ref, _cents(int(block.scores[p, e, b, c]))) for e, ref in enumerate(refs))
        return scored, scoring.mean_of([v for _, v in scored])

    warnings: list[ScoreWarning] = []
    for _, e, b, c in result.deviations[result.deviations[:, 0] == p]:
        _, mean = item(int(b), int(c))
        warnings.append(ScoreWarning("deviation", refs[e], bidders[b], criteria[c],
                                     _cents(int(block.scores[p, e, b, c])), mean))
    for _, b, c in result.inconsistent[result.inconsistent[:, 0] == p]:
        scored, mean = item(int(b), int(c))
        warnings.append(ScoreWarning("objective_inconsistent", None, bidders[b], criteria[c],
                                     None, mean, tuple(scored)))
    warnings.sort(key=lambda w: (w.bidder_id, w.criterion_id, w.kind, w.expert_ref or ""))
    return warnings


# --- whole projects in, Evaluations out -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refused:
    """A project scoring.evaluate would refuse: the same exception, kept instead of raised."""

    project_id: str
    error: Exception


@dataclass
class Prepared:
    """Projects sorted for the fast path: blocks by shape, and what goes to scoring.py."""

    blocks: list[tuple[ScoreBlock, list[int]]]  # the block and each row's project index
    direct: list[int]  # projects scoring.evaluate handles itself (not whole hundredths)
    refused: dict[int, Exception]


def prepare(projects: Sequence[Project], sheets: Sequence[Sequence[ExpertSheet]],
            lottery_seeds: Sequence[bytes], rules: ScoringRules | None = None) -> Prepared:
    """Validate every project with scoring's own checks and group the rest by shape."""
    rules = rules or packaged_rules().scoring
    if not len(projects) == len(sheets) == len(lottery_seeds):
        raise ValueError("projects, sheets and lottery_seeds must have the same length")
    groups: dict[tuple[int, int, int], list[int]] = {}
    direct: list[int] = []
    refused: dict[int, Exception] = {}
    for i, (project, members) in enumerate(zip(projects, sheets, strict=True)):
        if sum(1 for b in project.bids if b.valid) < rules.min_valid_bids:
            direct.append(i)  # the tender fails before any sheet is read: nothing to speed up
            continue
        try:
            scoring.check_sheets(project, members, rules)  # the very checks evaluate makes
        except ValueError as exc:
            refused[i] = exc
            continue
        if not _representable(project, members):
            direct.append(i)
            continue
        shape = (len(project.bids), len(members), len(project.scoring.criteria))
        groups.setdefault(shape, []).append(i)
    blocks = [(block_from_sheets([projects[i] for i in rows], [sheets[i] for i in rows],
                                 [lottery_seeds[i] for i in rows], rules), rows)
              for rows in groups.values()]
    return Prepared(blocks, direct, refused)
