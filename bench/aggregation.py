"""Committee scoring at scale: 20,000 projects x 10 bids x 7 members x 15 criteria.

Generates the seeded 21-million-score history (bench.history), then aggregates it (committee
scores, price scores, totals, ranking with tie-breaks, warnings; exact integer arithmetic, see
coordinator/domain/scoring_batch.py) in-process, on local processes and on Ray with 1 and 2
workers. Each run's results must equal the in-process ones; a sample of projects is checked
against scoring.evaluate (Decimal) itself.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from bench.history import generate, project_of
from bench.machine import print_table
from coordinator.batch.executor import make_executor
from coordinator.batch.scoring_jobs import aggregate
from coordinator.domain import scoring
from coordinator.domain.scoring_batch import BlockResult, ScoreBlock, evaluation_of

_COMPARED = ("failed", "benchmark", "criteria", "technical", "price_score", "total", "order",
             "deviations", "inconsistent")


def same(a: BlockResult, b: BlockResult) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in _COMPARED) and \
        (a.ties, a.exact, a.errors) == (b.ties, b.exact, b.errors)


class TreeMemory:
    """Peak resident memory of this process and all its descendants (Ray's included), sampled
    every 250 ms with psutil (sparingly: the sampling costs CPU too); shared memory mapped by
    several processes counts in each."""

    def __init__(self) -> None:
        import psutil

        self._root = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except Exception:  # a process that just ended
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> TreeMemory:
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def check_sample(block: ScoreBlock, result: BlockResult, count: int, seed: int) -> float:
    """Compare `count` random projects with scoring.evaluate; returns Decimal s per project."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(block), size=min(count, len(block)), replace=False)
    spent = 0.0
    for p in (int(x) for x in chosen):
        project = project_of(block, p)
        sheets = block.sheets(p)
        t0 = time.perf_counter()
        expected = scoring.evaluate(project, sheets, block.seed(p))
        spent += time.perf_counter() - t0
        got = evaluation_of(project, block, result, p)
        if got != expected:
            raise AssertionError(f"project {project.id}: the vectorised result differs from "
                                 "scoring.evaluate")
    return spent / max(len(chosen), 1)


def rank_with_scoring(block: ScoreBlock, result: BlockResult) -> float:
    """Time of ranking every project through scoring.rank_rows (Decimal rows), for comparison."""
    t0 = time.perf_counter()
    for p in range(len(block)):
        seed = block.seed(p)
        lowest = block.method[p] == 1
        rows = [scoring.Ranked(str(block.bidder_ids[p, b]),
                                -Decimal(int(block.price[p, b])).scaleb(-2) if lowest
                                else Decimal(int(result.total[p, b])).scaleb(-2),
                                Decimal(int(block.price[p, b])).scaleb(-2),
                                Decimal(int(result.technical[p, b])).scaleb(-2),
                                scoring.lottery_ticket(seed, str(block.bidder_ids[p, b])))
                for b in np.flatnonzero(block.valid[p])]
        scoring.rank_rows(rows, price_is_primary=bool(lowest))
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> None:
    (history, generated) = timed(lambda: generate(args.projects, seed=args.seed))
    block = history.block
    n_scores = history.scores
    print(f"generated {len(block):,} projects, {n_scores:,} scores in {generated:.1f} s "
          f"({block.scores.nbytes / 2**20:.0f} MiB of scores)")
    rows: list[list[str]] = []
    reference: BlockResult | None = None
    base = 0.0
    for spec in args.executors.split(","):
        executor = make_executor(spec)
        try:
            start = 0.0
            if spec.startswith("ray"):  # start Ray first: its start-up is not aggregation
                _, start = timed(lambda e=executor: e.map_chunks(start_chunk, None, [0]))
            tracing = spec == "local"
            if tracing:
                tracemalloc.start()
            with TreeMemory() as memory:
                result, elapsed = timed(lambda e=executor: aggregate(block, e, args.chunk))
            traced = tracemalloc.get_traced_memory()[1] if tracing else 0
            if tracing:
                tracemalloc.stop()
        finally:
            executor.close()
        if reference is None:
            reference, base = result, elapsed
        elif not same(result, reference):
            raise AssertionError(f"{spec}: results differ from {args.executors.split(',')[0]}")
        rows.append([executor.name, f"{elapsed:.2f}", f"{n_scores / elapsed / 1e6:.1f} M",
                     f"{base / elapsed:.2f}x", f"{memory.peak / 2**20:,.0f}",
                     f"{traced / 2**20:,.0f}" if tracing else "-",
                     f"{start:.1f}" if start else "-"])
    assert reference is not None
    print_table(
        f"committee scoring: {len(block):,} projects x {block.shape[0]} bids x "
        f"{block.shape[1]} members x {block.shape[2]} criteria = {n_scores:,} scores, "
        f"chunks of {args.chunk}",
        ["executor", "seconds", "scores/s", "speed-up", "peak RSS MiB (tree)",
         "traced MiB (job)", "executor start s"], rows)
    per_project = check_sample(block, reference, args.check, args.seed)
    ranking = rank_with_scoring(block, reference) if args.compare_ranking else float("nan")
    t0 = time.perf_counter()
    for p in reference.exact:  # what evaluation_of does for them: part of the real cost
        scoring.evaluate(project_of(block, p), block.sheets(p), block.seed(p))
    exact_s = time.perf_counter() - t0
    print(f"{len(reference.exact)} projects took the exact (Decimal) path ({exact_s:.2f} s), "
          f"{len(reference.ties)} went to scoring's tie-break, {len(reference.errors)} refused; "
          f"{len(reference.deviations):,} deviation and {len(reference.inconsistent):,} "
          "objective warnings")
    print(f"{min(args.check, len(block))} random projects identical to scoring.evaluate; "
          f"scoring.evaluate takes {per_project * 1000:.1f} ms per project "
          f"(~{per_project * len(block):.0f} s for all {len(block):,})")
    if args.compare_ranking:
        print(f"ranking every project through scoring.rank_rows (Decimal rows) instead: "
              f"{ranking:.1f} s")
    print(f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


def start_chunk(shared: object, chunk: int) -> int:
    """A job that does nothing: running it once starts an executor (Ray) before timing."""
    return chunk


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.aggregation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=1_000, help="projects per job chunk")
    parser.add_argument("--executors", default="local,local:2,ray:1,ray:2")
    parser.add_argument("--check", type=int, default=200,
                        help="random projects compared with scoring.evaluate")
    parser.add_argument("--compare-ranking", action="store_true",
                        help="also time ranking every project through scoring.rank_rows")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
