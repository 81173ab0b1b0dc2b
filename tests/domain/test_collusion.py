"""Collusion signals: planted favouritism and a lock-step pair must come out on top."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from coordinator.domain.collusion import (
    ScoreRecord,
    collusion_signals,
    favour_signals,
    group_by_item,
    lockstep_signals,
)

CRITERIA = (("C1", 40), ("C2", 30), ("C3", 10))
FAVOURER, FAVOURED = "E07", "CO03"
PAIR = ("E11", "E23")


def generate_history(
    seed: int, projects: int = 120, experts: int = 40, companies: int = 15
) -> list[ScoreRecord]:
    """A synthetic history with honest noise and two planted patterns.

    Honest score = bid quality + the expert's lenience + noise, clipped to [0, 1] of the maximum.
    FAVOURER adds +0.15 whenever FAVOURED bids. The PAIR share a common departure on every item
    they score together and are put on the same committee in one project out of four.
    """
    rng = random.Random(seed)
    pool = [f"E{i:02d}" for i in range(experts)]
    firms = [f"CO{i:02d}" for i in range(companies)]
    lenience = {e: rng.gauss(0, 0.04) for e in pool}
    records: list[ScoreRecord] = []
    for p in range(projects):
        project_id = f"P{p:04d}"
        bidders = rng.sample(firms, rng.randint(4, 6))
        if p % 5 == 0 and FAVOURED not in bidders:
            bidders[0] = FAVOURED
        committee = rng.sample([e for e in pool if e not in PAIR], 5)
        if p % 4 == 0:
            committee[:2] = PAIR
        if p % 3 == 0 and FAVOURER not in committee:
            committee[-1] = FAVOURER
        for bidder in bidders:
            quality = rng.uniform(0.4, 0.9)
            for criterion, maximum in CRITERIA:
                shared = rng.gauss(0, 0.12)
                for expert in committee:
                    value = quality + lenience[expert] + rng.gauss(0, 0.06)
                    if expert in PAIR:
                        value += shared
                    if expert == FAVOURER and bidder == FAVOURED:
                        value += 0.15
                    value = min(1.0, max(0.0, value))
                    score = Decimal(round(value * maximum * 100)) / 100
                    records.append(
                        ScoreRecord(project_id, expert, bidder, criterion, score, Decimal(maximum))
                    )
    return records


def test_planted_favouritism_ranks_first() -> None:
    history = generate_history(seed=1)
    signals = favour_signals(history, min_projects=3)
    top = signals[0]
    assert (top.expert_ref, top.bidder_id) == (FAVOURER, FAVOURED)
    assert top.projects >= 3
    assert top.mean_residual > 0.05  # +0.15 planted, less where clipped at the maximum
    assert top.z > 4
    # well clear of the next one
    assert top.z > 1.5 * signals[1].z


def test_planted_lockstep_pair_ranks_first() -> None:
    history = generate_history(seed=2)
    signals = lockstep_signals(history, min_shared_projects=3)
    top = signals[0]
    assert (top.expert_a, top.expert_b) == PAIR
    assert top.correlation > 0.7
    assert top.shared_projects == 30
    assert top.shared_items > 100
    # honest pairs that happened to sit with the lock-step pair correlate too (they share its
    # reference), but over a few projects only: weighted by evidence they fall well behind
    assert top.z > 2 * signals[1].z


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_both_planted_patterns_across_seeds(seed: int) -> None:
    result = collusion_signals(generate_history(seed))
    assert (result.favour[0].expert_ref, result.favour[0].bidder_id) == (FAVOURER, FAVOURED)
    assert (result.lockstep[0].expert_a, result.lockstep[0].expert_b) == PAIR


def test_order_of_records_does_not_matter() -> None:
    history = generate_history(seed=6, projects=40)
    shuffled = list(history)
    random.Random(0).shuffle(shuffled)
    assert collusion_signals(shuffled) == collusion_signals(history)


def test_small_worked_example() -> None:
    # One item scored by three experts (max 10): A 9, B 5, C 4 -> normalised 0.9, 0.5, 0.4.
    # A's residual = 0.9 - (0.5 + 0.4)/2 = 0.45, in each of 3 projects on company X.
    records = [
        ScoreRecord(f"P{p}", e, "X", "C1", s, 10)
        for p in range(3)
        for e, s in (("A", 9), ("B", 5), ("C", 4))
    ]
    by_expert = {s.expert_ref: s for s in favour_signals(records)}
    assert by_expert["A"].projects == 3
    assert by_expert["A"].mean_residual == pytest.approx(0.45)
    # B: 0.5 - (0.9 + 0.4)/2 = -0.15
    assert by_expert["B"].mean_residual == pytest.approx(-0.15)
    # every residual of an expert is the same: no spread, no usual baseline (only one company)
    assert by_expert["A"].z == float("inf")
    assert favour_signals(records, min_projects=4) == []


def test_grouping_skips_meaningless_records() -> None:
    records = [
        ScoreRecord("P", "A", "X", "C1", 5, 0),  # no maximum: skipped
        ScoreRecord("P", "A", "X", "C2", 5, 10),
        ScoreRecord("P", "A", "X", "C2", 6, 10),  # a repeated record replaces the earlier
    ]
    assert group_by_item(records) == {("P", "X", "C2"): {"A": 0.6}}
    assert lockstep_signals(records) == []
