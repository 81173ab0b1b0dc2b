"""A seeded synthetic scoring history in columns, with planted colluders (numpy, no Decimal).

Shared by the aggregation and collusion benchmarks (and the collusion job tests at a small
size): projects x bids x members x criteria scores, as a `ScoreBlock`.

Honest score = bid quality + the member's lenience + noise, clipped to [0, max]. Planted:
FAVOURER adds +0.15 of the maximum whenever FAVOURED bids, and sits on about half the
committees FAVOURED bids before; the PAIR sit together on one committee in 25 and share a
common departure on every item there. The last criteria are objective (one right answer,
now and then scored inconsistently).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from coordinator.domain.model import Bid, Criterion, Project, Quota, ScoringMethod, Window
from coordinator.domain.scoring_batch import METHODS, ScoreBlock

FAVOURER, FAVOURED = "E00003", "CO00004"
PAIR = ("E00001", "E00002")
_WINDOW = Window(datetime(2026, 3, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, 5, tzinfo=UTC))
# 15 criteria worth 70 points (price weight 30): ten of 6 points, five of 2
MAXIMA = (600,) * 10 + (200,) * 5


@dataclass(frozen=True)
class History:
    block: ScoreBlock
    pool: int
    companies: int

    @property
    def scores(self) -> int:
        return int(self.block.scores.size)


def _distinct_rows(rng: np.random.Generator, rows: int, width: int, pool: int
                   ) -> npt.NDArray[np.int64]:
    """rows x width draws from range(pool), distinct within each row."""
    out = rng.integers(0, pool, (rows, width))
    while True:
        ordered = np.sort(out, axis=1)
        dup = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not dup.any():
            return out
        out[dup] = rng.integers(0, pool, (int(dup.sum()), width))


def generate(projects: int = 20_000, *, bids: int = 10, members: int = 7, criteria: int = 15,
             pool: int = 3_000, companies: int = 2_000, seed: int = 1,
             objective: int = 3) -> History:
    if criteria > len(MAXIMA) or members < 3 or bids < 3 or pool < members + 3:
        raise ValueError("generate: at most 15 criteria, 3+ members, 3+ bids, a larger pool")
    rng = np.random.default_rng(seed)
    favourer, favoured = int(FAVOURER[1:]), int(FAVOURED[2:])
    pair = [int(e[1:]) for e in PAIR]
    committee = _distinct_rows(rng, projects, members, pool)
    bidders = _distinct_rows(rng, projects, bids, companies)
    planted = {favourer, *pair}
    # honest members are never the planted ones by chance: the plants are placed on purpose
    honest = np.isin(committee, list(planted))
    while honest.any():
        committee[honest] = rng.integers(len(planted) + 1, pool, int(honest.sum()))
        ordered = np.sort(committee, axis=1)
        dup = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        committee[dup] = _distinct_rows(rng, int(dup.sum()), members, pool)
        honest = np.isin(committee, list(planted))
    together = np.arange(projects) % 25 == 0
    committee[together, 0], committee[together, 1] = pair
    favoured_bids = (bidders == favoured).any(axis=1)
    sits = favoured_bids & (rng.random(projects) < 0.5) & ~together
    committee[sits, members - 1] = favourer

    maxima = np.array(MAXIMA[:criteria], np.int64)
    lenience = rng.normal(0, 0.04, pool).astype(np.float32)
    scores = np.empty((projects, members, bids, criteria), np.int16)
    step = 2_000
    for lo in range(0, projects, step):
        hi = min(lo + step, projects)
        n = hi - lo
        quality = rng.uniform(0.45, 0.9, (n, 1, bids, 1)).astype(np.float32)
        value = quality + lenience[committee[lo:hi]][:, :, None, None] + \
            rng.normal(0, 0.06, (n, members, bids, criteria)).astype(np.float32)
        shared = rng.normal(0, 0.12, (n, bids, criteria)).astype(np.float32)
        is_pair = np.isin(committee[lo:hi], pair)[:, :, None, None]
        value += np.where(is_pair, shared[:, None], 0)
        plus = (committee[lo:hi] == favourer)[:, :, None] & \
            (bidders[lo:hi] == favoured)[:, None, :]
        value += np.where(plus[..., None], np.float32(0.15), 0)
        if objective:  # one right answer per item, now and then a member miscounts
            right = rng.integers(0, 2, (n, 1, bids, objective)).astype(np.float32)
            slip = rng.random((n, members, bids, objective)) < 0.005
            value[..., -objective:] = np.where(slip, 1 - right, right)
        np.clip(value, 0, 1, out=value)
        scores[lo:hi] = np.rint(value * maxima).astype(np.int16)

    base = rng.integers(10**8, 10**10, projects)  # 1 to 100 million yuan, in fen
    price = np.rint(base[:, None] * rng.uniform(0.85, 1.15, (projects, bids))).astype(np.int64)
    method = rng.choice(np.arange(len(METHODS), dtype=np.int8), projects, p=[0.6, 0.1, 0.3])
    objective_row = np.zeros(criteria, np.bool_)
    if objective:
        objective_row[-objective:] = True
    block = ScoreBlock(
        project_ids=np.array([f"P{i:06d}" for i in range(projects)], np.str_),
        bidder_ids=np.array([f"CO{c:05d}" for c in range(companies)], np.str_)[bidders],
        criterion_ids=np.tile(np.array([f"C{j:02d}" for j in range(criteria)], np.str_),
                              (projects, 1)),
        expert_refs=np.array([f"E{e:05d}" for e in range(pool)], np.str_)[committee],
        method=method, price=price, valid=rng.random((projects, bids)) > 0.03,
        weight=np.full(projects, 3000, np.int64), deduction=np.full(projects, 100, np.int64),
        max_score=np.tile(maxima, (projects, 1)),
        objective=np.tile(objective_row, (projects, 1)),
        limit=np.tile(maxima * 3 // 10, (projects, 1)), limit_scale=0,  # threshold 0.30
        seeds=rng.integers(0, 256, (projects, 32), dtype=np.uint8),
        seed_len=np.full(projects, 32, np.int64), scores=scores)
    return History(block, pool, companies)


def project_of(block: ScoreBlock, p: int) -> Project:
    """Row p of a generated block as the Project scoring.evaluate takes (threshold 0.30)."""
    members = int(block.scores.shape[1])
    criteria = tuple(Criterion(str(cid), str(cid), Decimal(int(m)).scaleb(-2),
                               objective=bool(o))
                     for cid, m, o in zip(block.criterion_ids[p], block.max_score[p],
                                          block.objective[p], strict=True))
    return Project(
        id=str(block.project_ids[p]), name="", host_site_id="S", city="C", tenderer_id="T",
        category="works", committee_size=members, quotas=(Quota("W", members),),
        window=_WINDOW,
        scoring=ScoringMethod(METHODS[int(block.method[p])],
                              Decimal(int(block.weight[p])).scaleb(-2), criteria,
                              Decimal(int(block.deduction[p])).scaleb(-2), Decimal("0.30")),
        bids=tuple(Bid(str(b), Decimal(int(price)).scaleb(-2), bool(v)) for b, price, v in
                   zip(block.bidder_ids[p], block.price[p], block.valid[p], strict=True)))
