"""Collusion signals from scoring history: favouritism towards a company, lock-step pairs.

These are leads for supervisors, not findings: a statistic says where to look. Everything is a
pure function of the history given, in plain floats (statistics, not reported scores), and is
independent of the order of the records.

Scores are first normalised (score / criterion maximum) so criteria of different weight are
comparable. Both signals look at residuals against the rest of the same committee on the same
bid and criterion, which removes the bid's real quality: every honest expert scores a good bid
high, so raw scores correlate for everyone.

Work is grouped by item (project, bid, criterion) first: favouritism is linear in the number of
records, lock-step is linear in records times committee size (pairs within one committee only),
never over all pairs of experts or scores in the history.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

_MAX_R = 1.0 - 1e-9  # keeps atanh finite for a pair in perfect lock-step

ItemKey = tuple[str, str, str]
"""(project_id, bidder_id, criterion_id): one thing a committee scored."""


class ScoreRecord(NamedTuple):
    """One archived score: who gave what to which bid on which criterion, out of what maximum."""

    project_id: str
    expert_ref: str
    bidder_id: str
    criterion_id: str
    score: Decimal | float
    max_score: Decimal | float


@dataclass(frozen=True, slots=True)
class FavourSignal:
    """An expert who scores one company above the rest of the committee, project after project.

    `mean_residual`: mean over the shared projects of (the expert's normalised score minus the
    mean normalised score of the other members, on the same bid and criterion), averaged over
    criteria per project. `z`: that mean, less the expert's usual residual towards other
    companies (a generally lenient expert is not favouring anyone), in units of its standard
    error (pooled within-expert spread / sqrt(projects)).
    """

    expert_ref: str
    bidder_id: str
    projects: int
    mean_residual: float
    z: float


@dataclass(frozen=True, slots=True)
class LockstepSignal:
    """Two experts who depart from the rest of their committee together.

    `correlation`: Pearson correlation, over shared items, of each one's normalised score minus
    the mean of the committee members other than the pair. Independent honest experts still
    show a small positive baseline (about 1/(k-1) for a committee of k, from the shared
    reference); a pair scoring in lock-step approaches 1. An honest pair that sat with a
    lock-step pair also correlates, since both lie on the far side of the same reference: so
    the ranking statistic `z` = atanh(correlation) x sqrt(shared projects) weighs the evidence
    by the independent units (items of one project share one committee, so they are not).
    """

    expert_a: str
    expert_b: str
    shared_projects: int
    shared_items: int
    correlation: float
    z: float


@dataclass(frozen=True, slots=True)
class CollusionSignals:
    favour: tuple[FavourSignal, ...]
    lockstep: tuple[LockstepSignal, ...]


def group_by_item(records: Iterable[ScoreRecord]) -> dict[ItemKey, dict[str, float]]:
    """Normalised scores per item and expert; a repeated record replaces the earlier one.

    Records with a non-positive maximum carry no information and are skipped.
    """
    items: dict[ItemKey, dict[str, float]] = defaultdict(dict)
    for r in records:
        maximum = float(r.max_score)
        if maximum <= 0:
            continue
        items[(r.project_id, r.bidder_id, r.criterion_id)][r.expert_ref] = float(r.score) / maximum
    return {key: items[key] for key in sorted(items)}


def favour_signals(records: Iterable[ScoreRecord], *, min_projects: int = 3) -> list[FavourSignal]:
    """Per (expert, company) seen in at least `min_projects` projects, sorted by z descending."""
    # residuals per (expert, project, bidder), summed over criteria
    bid_sum: dict[tuple[str, str, str], float] = defaultdict(float)
    bid_count: dict[tuple[str, str, str], int] = defaultdict(int)
    for (project_id, bidder_id, _), scores in group_by_item(records).items():
        n = len(scores)
        if n < 2:
            continue
        total = math.fsum(scores.values())
        for expert, x in sorted(scores.items()):
            key = (expert, project_id, bidder_id)
            bid_sum[key] += x - (total - x) / (n - 1)
            bid_count[key] += 1

    # one residual per expert per bid: criteria of one bid are not independent evidence
    per_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_expert: dict[str, list[float]] = defaultdict(list)
    for key in sorted(bid_sum):
        expert, _, bidder_id = key
        residual = bid_sum[key] / bid_count[key]
        per_pair[(expert, bidder_id)].append(residual)
        per_expert[expert].append(residual)

    within_ss = 0.0
    within_df = 0
    expert_sum: dict[str, float] = {}
    for expert, values in per_expert.items():
        s = math.fsum(values)
        expert_sum[expert] = s
        mean = s / len(values)
        within_ss += math.fsum((v - mean) ** 2 for v in values)
        within_df += len(values) - 1
    sigma = math.sqrt(within_ss / within_df) if within_df > 0 else 0.0

    signals: list[FavourSignal] = []
    for (expert, bidder_id), values in per_pair.items():
        n = len(values)
        if n < min_projects:
            continue
        s = math.fsum(values)
        mean = s / n
        rest = len(per_expert[expert]) - n
        usual = (expert_sum[expert] - s) / rest if rest > 0 else 0.0
        signals.append(
            FavourSignal(expert, bidder_id, n, mean, _z(mean - usual, sigma / math.sqrt(n)))
        )
    signals.sort(key=lambda s: (-s.z, -s.mean_residual, s.expert_ref, s.bidder_id))
    return signals


def _z(difference: float, standard_error: float) -> float:
    if standard_error > 0:
        return difference / standard_error
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


@dataclass(slots=True)
class _PairStats:
    n: int = 0
    sa: float = 0.0
    sb: float = 0.0
    saa: float = 0.0
    sbb: float = 0.0
    sab: float = 0.0
    projects: set[str] = field(default_factory=set)

    def add(self, a: float, b: float, project_id: str) -> None:
        self.n += 1
        self.sa += a
        self.sb += b
        self.saa += a * a
        self.sbb += b * b
        self.sab += a * b
        self.projects.add(project_id)

    def correlation(self) -> float | None:
        n = self.n
        cov = self.sab - self.sa * self.sb / n
        var_a = self.saa - self.sa * self.sa / n
        var_b = self.sbb - self.sb * self.sb / n
        if var_a <= 1e-12 or var_b <= 1e-12:
            return None  # one of them never departs from the rest: nothing to correlate
        return max(-1.0, min(1.0, cov / math.sqrt(var_a * var_b)))


def lockstep_signals(
    records: Iterable[ScoreRecord], *, min_shared_projects: int = 3, min_shared_items: int = 5
) -> list[LockstepSignal]:
    """Expert pairs that sat together in at least `min_shared_projects` projects, by z descending.

    Only items scored by at least 3 experts count (the reference needs someone besides the pair).
    """
    stats: dict[tuple[str, str], _PairStats] = defaultdict(_PairStats)
    for (project_id, _, _), scores in group_by_item(records).items():
        n = len(scores)
        if n < 3:
            continue
        total = math.fsum(scores.values())
        members = sorted(scores.items())
        for i, (a, xa) in enumerate(members):
            for b, xb in members[i + 1 :]:
                reference = (total - xa - xb) / (n - 2)
                stats[(a, b)].add(xa - reference, xb - reference, project_id)

    signals: list[LockstepSignal] = []
    for (a, b), pair in stats.items():
        if len(pair.projects) < min_shared_projects or pair.n < min_shared_items:
            continue
        correlation = pair.correlation()
        if correlation is not None:
            projects = len(pair.projects)
            bounded = max(-_MAX_R, min(_MAX_R, correlation))
            z = math.atanh(bounded) * math.sqrt(projects)
            signals.append(LockstepSignal(a, b, projects, pair.n, correlation, z))
    signals.sort(key=lambda s: (-s.z, -s.correlation, s.expert_a, s.expert_b))
    return signals


def collusion_signals(
    records: Iterable[ScoreRecord], *, min_projects: int = 3, min_shared_items: int = 5
) -> CollusionSignals:
    """Both signals over one history (materialised once, since it is read twice)."""
    history = list(records)
    return CollusionSignals(
        favour=tuple(favour_signals(history, min_projects=min_projects)),
        lockstep=tuple(
            lockstep_signals(
                history, min_shared_projects=min_projects, min_shared_items=min_shared_items
            )
        ),
    )
