"""Collusion signals over a whole history as a chunked job: the statistics of
coordinator.domain.collusion, vectorised (numpy) and split by project.

A chunk is a range of projects. Everything both signals need is a sum over items, and an item
(project, bid, criterion) lies inside one project, so a chunk's partial sums are exact pieces
of the whole: favour keeps, per (expert, company), the count and sum of the expert's per-bid
residuals and, per expert, count, mean and squared deviations (merged with Chan's formula);
lock-step keeps, per pair of experts who sat together, the count, the five sums of
_PairStats and the number of projects (chunks share no project, so counts add up). `merge`
adds the pieces in chunk order, so every executor gives bit-identical floats and the same
ranking. The statistics are those of collusion.py (same residuals, references, z), up to the
order of floating-point additions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from coordinator.batch.executor import Executor
from coordinator.domain.collusion import (
    CollusionSignals,
    FavourSignal,
    LockstepSignal,
    ScoreRecord,
)

Arr = npt.NDArray[Any]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_MAX_R = 1.0 - 1e-9  # as collusion.py: atanh stays finite for a pair in perfect lock-step
DEFAULT_CHUNK = 1000


@dataclass(frozen=True, eq=False)
class ScoreHistory:
    """Archived scores in columns, grouped by item (project, bid, criterion).

    Names are sorted, so a code's order is its name's order. Items are sorted by project;
    `item_start[i]:item_start[i + 1]` are item i's records, by expert code; `project_items`
    holds each project's first item (and the item count at the end). `x` is score / maximum.
    """

    projects: Arr  # str [NP]
    experts: Arr  # str [NE]
    bidders: Arr  # str [NB]
    project_items: I64  # [NP + 1]
    item_project: Arr  # int32 [I]
    item_bidder: Arr  # int32 [I]
    item_start: I64  # [I + 1]
    expert: Arr  # int32 [N]
    x: F64  # [N]

    def __len__(self) -> int:
        return int(self.projects.shape[0])

    @property
    def records(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def from_records(cls, records: Iterable[ScoreRecord]) -> ScoreHistory:
        """As collusion.group_by_item reads records: a repeated record replaces the earlier
        one, and a record with a non-positive maximum carries no information."""
        items: dict[tuple[str, str, str], dict[str, float]] = {}
        for r in records:
            maximum = float(r.max_score)
            if maximum <= 0:
                continue
            items.setdefault((r.project_id, r.bidder_id, r.criterion_id), {})[r.expert_ref] = \
                float(r.score) / maximum
        keys = sorted(items)
        projects = np.array(sorted({k[0] for k in keys}), np.str_)
        experts = np.array(sorted({e for v in items.values() for e in v}), np.str_)
        bidders = np.array(sorted({k[1] for k in keys}), np.str_)
        p_code = {p: i for i, p in enumerate(projects.tolist())}
        e_code = {e: i for i, e in enumerate(experts.tolist())}
        b_code = {b: i for i, b in enumerate(bidders.tolist())}
        item_project = np.array([p_code[k[0]] for k in keys], np.int32)
        sizes = [len(items[k]) for k in keys]
        # codes follow the names' order, so sorting by name puts an item's records by code
        expert = np.array([e_code[e] for k in keys for e in sorted(items[k])], np.int32)
        x = np.array([items[k][e] for k in keys for e in sorted(items[k])], np.float64)
        return cls(
            projects=projects, experts=experts, bidders=bidders,
            project_items=np.searchsorted(item_project, np.arange(len(projects) + 1)).astype(
                np.int64),
            item_project=item_project,
            item_bidder=np.array([b_code[k[1]] for k in keys], np.int32),
            item_start=np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]),
            expert=expert, x=x)

    @classmethod
    def from_dense(cls, project_ids: Arr, expert_refs: Arr, bidder_ids: Arr, scores: Arr,
                   max_score: Arr) -> ScoreHistory:
        """Projects that all have E members scoring B bids on C criteria:
        `scores[p, e, b, c]` out of `max_score[p, c]`; ids as in a scoring_batch.ScoreBlock."""
        n_projects, members, bids, ncrit = scores.shape
        if (max_score <= 0).any():
            raise ValueError("max_score: every criterion needs a positive maximum")
        order = np.argsort(project_ids, kind="stable")
        experts, e_codes = np.unique(expert_refs[order], return_inverse=True)
        e_codes = e_codes.reshape(n_projects, members).astype(np.int32)
        bidders, b_codes = np.unique(bidder_ids[order], return_inverse=True)
        b_codes = b_codes.reshape(n_projects, bids).astype(np.int32)
        by_code = np.argsort(e_codes, axis=1, kind="stable")  # records by expert in an item
        items_per_project = bids * ncrit
        x = np.empty(n_projects * items_per_project * members, np.float64)
        step = 2_000
        for lo in range(0, n_projects, step):
            rows = order[lo:lo + step]
            part = np.take_along_axis(scores[rows], by_code[lo:lo + step, :, None, None], axis=1)
            part = part.transpose(0, 2, 3, 1) / max_score[rows][:, None, :, None]
            x[lo * items_per_project * members:(lo + len(rows)) * items_per_project * members] \
                = part.reshape(-1)
        expert = np.repeat(np.take_along_axis(e_codes, by_code, axis=1), items_per_project,
                           axis=0).reshape(-1)
        total_items = n_projects * items_per_project
        return cls(
            projects=np.asarray(project_ids)[order], experts=experts, bidders=bidders,
            project_items=np.arange(n_projects + 1, dtype=np.int64) * items_per_project,
            item_project=np.repeat(np.arange(n_projects, dtype=np.int32), items_per_project),
            item_bidder=np.repeat(b_codes, ncrit, axis=1).reshape(-1),
            item_start=np.arange(total_items + 1, dtype=np.int64) * members,
            expert=expert.astype(np.int32), x=x)


@dataclass(eq=False)
class ChunkStats:
    """Partial sums of one chunk (see the module docstring); keys are codes."""

    favour_key: I64  # expert x NB + bidder
    favour_n: I64
    favour_sum: F64
    expert: I64
    expert_n: I64
    expert_sum: F64
    expert_m2: F64
    pair_key: I64  # expert_a x NE + expert_b, a < b
    pair_n: I64
    pair_projects: I64
    pair_sums: F64  # [K, 5]: sa, sb, saa, sbb, sab


def _sum_by(inverse: I64, weights: F64, size: int) -> F64:
    out: F64 = np.asarray(np.bincount(inverse, weights=weights, minlength=size), np.float64)
    return out


def collusion_chunk(history: ScoreHistory, span: tuple[int, int]) -> ChunkStats:
    """The partial statistics of projects [p0, p1): the job the executors run."""
    p0, p1 = span
    i0, i1 = int(history.project_items[p0]), int(history.project_items[p1])
    r0, r1 = int(history.item_start[i0]), int(history.item_start[i1])
    ne, nb = len(history.experts), len(history.bidders)
    x = history.x[r0:r1]
    ex = history.expert[r0:r1].astype(np.int64)
    starts = history.item_start[i0:i1] - r0
    sizes = np.diff(history.item_start[i0:i1 + 1])
    n_items = i1 - i0
    item_of = np.repeat(np.arange(n_items), sizes)
    totals = np.add.reduceat(x, starts) if n_items else np.zeros(0)
    projects = history.item_project[i0:i1].astype(np.int64)
    bidders = history.item_bidder[i0:i1].astype(np.int64)

    # --- favour: one residual per expert per bid (the mean over its criteria) -------------
    n_rec = sizes[item_of]
    ok = n_rec >= 2
    residual = x[ok] - (totals[item_of][ok] - x[ok]) / (n_rec[ok] - 1)
    new_bid = np.ones(n_items, np.bool_)
    new_bid[1:] = (projects[1:] != projects[:-1]) | (bidders[1:] != bidders[:-1])
    bid_of_item = np.cumsum(new_bid) - 1
    bid_bidder = bidders[new_bid]
    keys, inverse = np.unique(bid_of_item[item_of[ok]] * ne + ex[ok], return_inverse=True)
    per_bid = _sum_by(inverse, residual, len(keys)) / np.bincount(inverse, minlength=len(keys))
    bid_expert = keys % ne
    favour_key, f_inverse = np.unique(bid_expert * nb + bid_bidder[keys // ne],
                                      return_inverse=True)
    favour_n = np.bincount(f_inverse, minlength=len(favour_key)).astype(np.int64)
    favour_sum = _sum_by(f_inverse, per_bid, len(favour_key))
    experts, e_inverse = np.unique(bid_expert, return_inverse=True)
    e_n = np.bincount(e_inverse, minlength=len(experts))
    e_sum = _sum_by(e_inverse, per_bid, len(experts))
    e_mean = e_sum / np.maximum(e_n, 1)
    e_m2 = _sum_by(e_inverse, (per_bid - e_mean[e_inverse]) ** 2, len(experts))

    # --- lock-step: pairs within items scored by 3 or more -------------------------------
    parts: list[tuple[I64, I64, F64, F64]] = []
    for k in np.unique(sizes[sizes >= 3]).tolist():
        chosen = np.flatnonzero(sizes == k)
        rows = starts[chosen][:, None] + np.arange(k)
        values, who = x[rows], ex[rows]
        total = totals[chosen]
        local_project = projects[chosen] - p0
        for a, b in combinations(range(k), 2):
            reference = (total - values[:, a] - values[:, b]) / (k - 2)
            parts.append((who[:, a] * ne + who[:, b], local_project,
                          values[:, a] - reference, values[:, b] - reference))
    if parts:
        pair_of = np.concatenate([p[0] for p in parts])
        width = max(p1 - p0, 1)
        # group by (pair, project) first: one sort gives both the sums and the project count
        by_project, inverse = np.unique(pair_of * width + np.concatenate([p[1] for p in parts]),
                                        return_inverse=True)
        da = np.concatenate([p[2] for p in parts])
        db = np.concatenate([p[3] for p in parts])
        size = len(by_project)
        grouped = np.stack([np.bincount(inverse, minlength=size).astype(np.float64),
                            *(_sum_by(inverse, w, size) for w in (da, db, da * da, db * db,
                                                                  da * db))], axis=1)
        pair_key, pair_inverse = np.unique(by_project // width, return_inverse=True)
        sums = np.zeros((len(pair_key), 6))
        np.add.at(sums, pair_inverse, grouped)
        pair_n = sums[:, 0].astype(np.int64)
        pair_projects = np.bincount(pair_inverse, minlength=len(pair_key)).astype(np.int64)
        pair_sums = sums[:, 1:]
    else:
        pair_key = pair_n = pair_projects = np.zeros(0, np.int64)
        pair_sums = np.zeros((0, 5))
    return ChunkStats(
        favour_key=favour_key.astype(np.int64), favour_n=favour_n, favour_sum=favour_sum,
        expert=experts.astype(np.int64), expert_n=e_n.astype(np.int64), expert_sum=e_sum,
        expert_m2=e_m2, pair_key=pair_key.astype(np.int64), pair_n=pair_n,
        pair_projects=pair_projects, pair_sums=pair_sums)


def merge(parts: Sequence[ChunkStats]) -> ChunkStats:
    """The chunks' partial sums as one, added in chunk order (deterministic floats)."""
    fk = np.concatenate([p.favour_key for p in parts])
    favour_key, fi = np.unique(fk, return_inverse=True)
    ek = np.concatenate([p.expert for p in parts])
    experts, ei = np.unique(ek, return_inverse=True)
    en = np.concatenate([p.expert_n for p in parts])
    es = np.concatenate([p.expert_sum for p in parts])
    n = np.bincount(ei, weights=en, minlength=len(experts))
    total = _sum_by(ei, es, len(experts))
    mean = total / np.maximum(n, 1)
    part_mean = es / np.maximum(en, 1)
    m2 = _sum_by(ei, np.concatenate([p.expert_m2 for p in parts]), len(experts)) + \
        _sum_by(ei, en * (part_mean - mean[ei]) ** 2, len(experts))
    pk = np.concatenate([p.pair_key for p in parts])
    pair_key, pi = np.unique(pk, return_inverse=True)
    sums = np.zeros((len(pair_key), 5))
    np.add.at(sums, pi, np.concatenate([p.pair_sums for p in parts]))
    return ChunkStats(
        favour_key=favour_key,
        favour_n=np.bincount(fi, weights=np.concatenate([p.favour_n for p in parts]),
                             minlength=len(favour_key)).astype(np.int64),
        favour_sum=_sum_by(fi, np.concatenate([p.favour_sum for p in parts]), len(favour_key)),
        expert=experts, expert_n=n.astype(np.int64), expert_sum=total, expert_m2=m2,
        pair_key=pair_key,
        pair_n=np.bincount(pi, weights=np.concatenate([p.pair_n for p in parts]),
                           minlength=len(pair_key)).astype(np.int64),
        pair_projects=np.bincount(pi, weights=np.concatenate([p.pair_projects for p in parts]),
                                  minlength=len(pair_key)).astype(np.int64),
        pair_sums=sums)


def _z(difference: float, standard_error: float) -> float:
    if standard_error > 0:
        return difference / standard_error
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def signals(history: ScoreHistory, stats: ChunkStats, *, min_projects: int = 3,
            min_shared_items: int = 5) -> CollusionSignals:
    """Both rankings from merged statistics, as collusion.collusion_signals ranks them."""
    ne, nb = len(history.experts), len(history.bidders)
    within_df = int((stats.expert_n - 1).sum())
    sigma = math.sqrt(float(stats.expert_m2.sum()) / within_df) if within_df > 0 else 0.0
    n_of = dict(zip(stats.expert.tolist(), stats.expert_n.tolist(), strict=True))
    sum_of = dict(zip(stats.expert.tolist(), stats.expert_sum.tolist(), strict=True))
    favour: list[FavourSignal] = []
    keep = np.flatnonzero(stats.favour_n >= min_projects)
    for key, n, s in zip(stats.favour_key[keep].tolist(), stats.favour_n[keep].tolist(),
                         stats.favour_sum[keep].tolist(), strict=True):
        expert, bidder = divmod(key, nb)
        mean = s / n
        rest = n_of[expert] - n
        usual = (sum_of[expert] - s) / rest if rest > 0 else 0.0
        favour.append(FavourSignal(str(history.experts[expert]), str(history.bidders[bidder]),
                                   n, mean, _z(mean - usual, sigma / math.sqrt(n))))
    favour.sort(key=lambda f: (-f.z, -f.mean_residual, f.expert_ref, f.bidder_id))

    lockstep: list[LockstepSignal] = []
    keep = np.flatnonzero((stats.pair_projects >= min_projects)
                          & (stats.pair_n >= min_shared_items))
    for key, n, projects, (sa, sb, saa, sbb, sab) in zip(
            stats.pair_key[keep].tolist(), stats.pair_n[keep].tolist(),
            stats.pair_projects[keep].tolist(), stats.pair_sums[keep].tolist(), strict=True):
        cov = sab - sa * sb / n
        var_a = saa - sa * sa / n
        var_b = sbb - sb * sb / n
        if var_a <= 1e-12 or var_b <= 1e-12:
            continue  # one of them never departs from the rest: nothing to correlate
        correlation = max(-1.0, min(1.0, cov / math.sqrt(var_a * var_b)))
        z = math.atanh(max(-_MAX_R, min(_MAX_R, correlation))) * math.sqrt(projects)
        a, b = divmod(key, ne)
        lockstep.append(LockstepSignal(str(history.experts[a]), str(history.experts[b]),
                                       projects, n, correlation, z))
    lockstep.sort(key=lambda s: (-s.z, -s.correlation, s.expert_a, s.expert_b))
    return CollusionSignals(favour=tuple(favour), lockstep=tuple(lockstep))


def spans(projects: int, chunk: int) -> list[tuple[int, int]]:
    if chunk < 1:
        raise ValueError("chunk: must be at least 1")
    return [(lo, min(lo + chunk, projects)) for lo in range(0, projects, chunk)]


def collusion_signals_batch(history: ScoreHistory, executor: Executor, *, min_projects: int = 3,
                            min_shared_items: int = 5,
                            chunk: int = DEFAULT_CHUNK) -> CollusionSignals:
    """Chunks of projects through the executor, merged, ranked."""
    if not len(history):
        return CollusionSignals(favour=(), lockstep=())
    parts = executor.map_chunks(collusion_chunk, history, spans(len(history), chunk))
    return signals(history, merge(parts), min_projects=min_projects,
                   min_shared_items=min_shared_items)
