"""The draw follows the distribution the README states; a biased draw would be caught."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from coordinator.domain.fairness import Tally, chi2_sf, chi_square, fairness_pool, fits, tally


@pytest.mark.parametrize(
    ("x", "dof", "p"),
    [(3.841, 1, 0.05), (18.307, 10, 0.05), (124.342, 100, 0.05), (0.5, 3, 0.9189)],
)
def test_chi_square_tail_matches_tables(x: float, dof: int, p: float) -> None:
    assert chi2_sf(x, dof) == pytest.approx(p, abs=2e-4)


def test_draws_follow_the_stated_distribution() -> None:
    pool = fairness_pool([6, 9, 12, 20, 30], seats=3)
    seeds = [hashlib.sha256(f"fair:{i}".encode()).digest() for i in range(3000)]
    counts = tally(pool, seeds)
    for fit in fits(pool, counts):
        assert fit.p_value > 0.001, fit


def test_a_biased_selection_is_rejected() -> None:
    """Picking experts uniformly over the whole pool (not per venue) is a different law."""
    pool = fairness_pool([6, 9, 12, 20, 30], seats=3)
    honest = tally(pool, [hashlib.sha256(f"b:{i}".encode()).digest() for i in range(3000)])
    # A draw that favours the first expert of each city twice as often as it should.
    assert honest.experts is not None
    biased: Counter[str] = Counter(honest.experts)
    for expert in list(biased):
        if expert.endswith("-000"):
            biased[expert] *= 2
    fit = chi_square(biased, {k: float(v) for k, v in _expected(pool, honest).items()}, "x")
    assert fit.p_value < 0.001


def _expected(pool: object, counts: Tally) -> dict[str, float]:
    from coordinator.domain.fairness import expected_counts

    return expected_counts(pool, counts.draws)["experts"]  # type: ignore[arg-type]
