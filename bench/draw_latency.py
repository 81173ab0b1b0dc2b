"""Single-draw latency, from the operator's request to booked reservations, in-process.

A province of 50,000 experts with 200,000 conflict relations, 150 sites and 3,000
workstations; a day of projects drawn one after another through the coordinator's real
`Workflow.draw` (screening, venue offers, seed commitment, the draw, sealing, the atomic
Redis booking, audit entries, queued agent commands) against a real redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.machine import ms_row, print_table
from coordinator.domain.audit import generate_signing_key
from coordinator.domain.rules import load_rules
from coordinator.notifier import MemoryOutbox
from coordinator.province.generator import count_relations, generate_province
from coordinator.store.connection import store_client
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.workflow import Workflow, WorkflowError
from evalgrid.clock import SimClock


def _timed(phases: dict[str, list[float]], name: str, fn: Callable[..., Any]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name].append(time.perf_counter() - t0)
    return wrapper


async def run(experts: int, relations: int, projects: int, seed: int) -> None:
    day = date(2026, 11, 24)
    t0 = time.perf_counter()
    province = generate_province(seed=seed, day=day, cities=16, sites=150, workstations=3000,
                                 experts=experts, companies=max(2000, experts // 5),
                                 projects=projects, relations=relations)
    generated = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="eg-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp)).start()
        redis = store_client(server.url)
        try:
            workflow = Workflow(
                redis=redis, clock=SimClock(datetime(2026, 11, 23, 10, tzinfo=UTC)),
                rules=load_rules(), master_key=b"k" * 32, signing_key=generate_signing_key(),
                notifier=MemoryOutbox(), reports_dir=Path(tmp) / "reports")
            await workflow.registry.store_province(province)
            t0 = time.perf_counter()
            await workflow.load()
            indexed = time.perf_counter() - t0
            phases: dict[str, list[float]] = defaultdict(list)
            desk = workflow.desk
            timed_prepare = _timed(phases, "prepare: screen, offers, commit", desk.prepare)
            pool_sizes: list[int] = []

            def prepare(*args: Any, **kwargs: Any) -> Any:
                prepared = timed_prepare(*args, **kwargs)
                pool_sizes.append(prepared.inputs.candidate_count())
                return prepared

            desk.prepare = prepare  # type: ignore[method-assign]
            desk.run = _timed(phases, "draw (pure)", desk.run)  # type: ignore[method-assign]
            totals, refused = [], 0
            by_pool: dict[str, list[float]] = defaultdict(list)
            for project in sorted(province.projects, key=lambda p: p.id):
                t0 = time.perf_counter()
                try:
                    await workflow.draw(project.id, f"bench-{project.id}")
                except WorkflowError:
                    refused += 1
                    continue
                elapsed = time.perf_counter() - t0
                totals.append(elapsed)
                by_pool[_pool_bucket(pool_sizes[-1])].append(elapsed)
            await workflow.announced.settle()  # the draws' intents dropped before the close
        finally:
            await redis.aclose()
            server.stop()
    rows = [ms_row(name, values) for name, values in phases.items()]
    rows.append(ms_row("request to booked reservations", totals))
    for low, _high in BUCKETS:
        bucket = _pool_bucket(low)
        if bucket in by_pool:
            rows.append(ms_row(f"  of which: {bucket}", by_pool[bucket]))
    print_table(
        f"single draw, in-process: {experts:,} experts, {count_relations(province.experts):,} "
        f"conflict relations, {len(province.sites)} sites, "
        f"{sum(len(v.workstations) for s in province.sites for v in s.venues):,} workstations",
        ["phase", "draws", "p50 ms", "p99 ms", "max ms"], rows)
    print(f"generated in {generated:.1f} s; registry and indexes loaded in {indexed:.2f} s; "
          f"{len(totals)} draws booked, {refused} refused (no feasible committee)")


BUCKETS = ((0, 2_000), (2_000, 5_000), (5_000, 10_000), (10_000, 20_000), (20_000, 10**9))


def _pool_bucket(candidates: int) -> str:
    """Latency grows with how many experts the quotas admit: report it by that size."""
    low, high = next((lo, hi) for lo, hi in BUCKETS if lo <= candidates < hi)
    return f"{low:,}+ eligible" if high == 10**9 else f"{low:,}-{high:,} eligible"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experts", type=int, default=50_000)
    parser.add_argument("--relations", type=int, default=200_000)
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    asyncio.run(run(args.experts, args.relations, args.projects, args.seed))


if __name__ == "__main__":
    main()

