"""Fairness evidence: does the draw follow the distribution the README states?

On a fixed pool where that statement gives closed-form frequencies, many draws with
independent seeds are counted and compared with the expectation by Pearson's chi-square test.

The pool: `cities` cities of unequal size, one guest venue each with `workstations` free
booths in distinct rooms, `experts[c]` eligible experts living in city c, one quota of `seats`
members, per-venue cap 1, the project in a city of its own. Then, by the statement:
  * a venue is among the drawn venues with probability seats / cities;
  * each drawn venue seats exactly one member, drawn uniformly from its city's experts, so an
    expert of city c sits with probability (seats / cities) / experts[c];
  * the member's booth is uniform among the venue's free booths.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.inputs import Candidate, DrawInputs, VenueOffer
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.model import Bid, Criterion, Project, Quota, ScoringMethod, Window


@dataclass(frozen=True)
class FairnessPool:
    inputs: DrawInputs
    city_of_venue: dict[str, str]
    city_size: dict[str, int]


def fairness_pool(city_sizes: Sequence[int], *, seats: int = 5,
                  workstations: int = 4) -> FairnessPool:
    cities = [f"C{i:02d}" for i in range(len(city_sizes))]
    venues = tuple(
        VenueOffer(f"V{i:02d}", f"S{i:02d}", city,
                   tuple((f"V{i:02d}-W{w}", f"V{i:02d}-R{w}") for w in range(workstations)))
        for i, city in enumerate(cities)
    )
    candidates = tuple(sorted(
        (Candidate(f"E-{city}-{n:03d}", "technical", ("W.01",), (city,))
         for city, size in zip(cities, city_sizes, strict=True) for n in range(size)),
        key=lambda c: c.expert_id))
    window = Window(datetime(2026, 1, 5, 1, tzinfo=UTC), datetime(2026, 1, 5, 4, tzinfo=UTC))
    project = Project(
        id="FAIR", name="fairness pool", host_site_id="HOST", city="ELSEWHERE",
        tenderer_id="T", category="works", committee_size=seats,
        quotas=(Quota("W.01", seats),), window=window,
        scoring=ScoringMethod("comprehensive", Decimal(40),
                              (Criterion("q", "quality", Decimal(60)),)),
        bids=(Bid("B1", Decimal(100)), Bid("B2", Decimal(110)), Bid("B3", Decimal(120))),
    )
    inputs = DrawInputs(project=project, rules_version="fairness", venues=venues,
                        candidates=candidates, per_venue_cap=1)
    return FairnessPool(inputs, {v.venue_id: v.city for v in venues},
                        dict(zip(cities, city_sizes, strict=True)))


@dataclass
class Tally:
    draws: int = 0
    venues: Counter[str] | None = None
    experts: Counter[str] | None = None
    workstations: Counter[str] | None = None

    def __post_init__(self) -> None:
        self.venues = self.venues or Counter()
        self.experts = self.experts or Counter()
        self.workstations = self.workstations or Counter()

    def add(self, other: Tally) -> None:
        assert self.venues is not None and self.experts is not None
        assert self.workstations is not None
        self.draws += other.draws
        self.venues.update(other.venues or {})
        self.experts.update(other.experts or {})
        self.workstations.update(other.workstations or {})


def tally(pool: FairnessPool, seeds: Iterable[bytes]) -> Tally:
    """Count who and what the draw picks over the given seeds (a pure, chunkable job)."""
    out = Tally()
    assert out.venues is not None and out.experts is not None and out.workstations is not None
    for seed in seeds:
        result = draw(pool.inputs, seed)
        if not isinstance(result, DrawOutcome):
            raise ValueError(f"the fairness pool must never starve: {result}")
        out.draws += 1
        out.venues.update({s.venue_id for s in result.seats})
        out.experts.update(s.expert_id for s in result.seats)
        out.workstations.update(s.workstation_id for s in result.seats)
    return out


@dataclass(frozen=True)
class Fit:
    what: str
    categories: int
    statistic: float
    dof: int
    p_value: float
    worst: tuple[str, int, float]  # (category, observed, expected) furthest off


def chi_square(observed: Counter[str], expected: dict[str, float], what: str) -> Fit:
    """Pearson's chi-square goodness of fit over the categories of `expected`."""
    stat = 0.0
    worst = ("", 0, 0.0)
    worst_z = -1.0
    for category, exp in expected.items():
        obs = observed.get(category, 0)
        stat += (obs - exp) ** 2 / exp
        z = abs(obs - exp) / math.sqrt(exp)
        if z > worst_z:
            worst_z, worst = z, (category, obs, exp)
    dof = len(expected) - 1
    return Fit(what, len(expected), stat, dof, chi2_sf(stat, dof), worst)


def expected_counts(pool: FairnessPool, draws: int) -> dict[str, dict[str, float]]:
    seats = pool.inputs.project.committee_size
    cities = len(pool.city_size)
    p_venue = seats / cities
    venues = {v: draws * p_venue for v in pool.city_of_venue}
    experts = {}
    for c in pool.inputs.candidates:
        city = c.catchment_cities[0]
        experts[c.expert_id] = draws * p_venue / pool.city_size[city]
    workstations = {ws: draws * p_venue / len(v.free)
                    for v in pool.inputs.venues for ws, _ in v.free}
    return {"venues": venues, "experts": experts, "workstations": workstations}


def fits(pool: FairnessPool, counts: Tally) -> list[Fit]:
    """Venue inclusion, expert selection and booth choice against the statement.

    Venue inclusion counts are not independent across venues (each draw includes exactly
    `seats` of them), so the plain chi-square is conservative there: it rejects less often.
    """
    expected = expected_counts(pool, counts.draws)
    assert counts.venues is not None and counts.experts is not None
    assert counts.workstations is not None
    return [chi_square(counts.venues, expected["venues"], "venue drawn"),
            chi_square(counts.experts, expected["experts"], "expert drawn"),
            chi_square(counts.workstations, expected["workstations"], "workstation drawn")]


# --- the chi-square distribution ---------------------------------------------------------------


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularized upper incomplete gamma Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    if x < a + 1.0:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    # Continued fraction (modified Lentz) for Q.
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h)
