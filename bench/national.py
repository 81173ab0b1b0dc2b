"""The national scale: 300,000 experts, 3,000 sites, 30,000 workstations, 1,000,000 conflict
relations and 20,000 projects on one day.

Phases, each timed, with the resident memory of this process and its workers:
1. generation (coordinator.province.generator, `SCALES["national"]`);
2. indexes: the desk's registry indexes (pool, conflict index) and the day's `DayScreen`
   (the day's draw snapshot: pool-level rules once, its digest and the draw's arrays);
3. screening a share of the day's projects with `screen` (the job of the day plan's phase 1,
   `coordinator.domain.day_plan.screen_chunk`) in-process, on local processes and on Ray with
   1 and 2 workers: speed-up and efficiency against the same executor with 1 worker;
4. the day plan on the fast path: every project in plan order, referenced draw inputs from the
   `DayScreen` (barred experts, unavailable workstations), the commitment, the draw, the
   archive text, the booking; its per-project times are the single-draw latencies;
5. the day plan of `coordinator.day_plan.plan_day` (explicit inputs: every candidate and every
   workstation in every draw) on a stated share of the projects;
6. single draws as the coordinator's desk prepares them for one request (`DrawDesk.prepare`,
   explicit inputs, then `DrawDesk.run`), without Redis, on a sample.
Shares are printed as such: nothing is extrapolated.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from rich.console import Console

from bench.aggregation import TreeMemory, start_chunk
from bench.machine import pct, print_table
from coordinator.batch.executor import make_executor
from coordinator.domain.draw import DrawOutcome, commit, draw
from coordinator.domain.eligibility import DayScreen
from coordinator.domain.model import Project, Province
from coordinator.domain.rules import load_rules
from coordinator.drawing import DrawDesk, DrawRefused, archive_json
from coordinator.province.generator import SCALES, count_relations, generate_province

DAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)  # the plan runs the day before


def sizes(experts: int, projects: int) -> dict[str, int]:
    """The national proportions for `experts` experts (the real size at 300,000)."""
    base = SCALES["national"]
    f = experts / base["experts"]
    out = {k: max(1, round(v * f)) for k, v in base.items()}
    out["cities"] = min(out["cities"], out["sites"] // 2)
    out["projects"] = projects
    return out


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def plan_order(projects: Sequence[Project]) -> list[Project]:
    return sorted(projects, key=lambda p: (p.window.start, p.id))


def screening_rows(desk: DrawDesk, order: list[Project], share: int, workers: list[int],
                   use_ray: bool, chunks: int) -> list[list[str]]:
    """Phase 3: `screen_chunk` over the first `share` projects on each executor."""
    from coordinator.domain.day_plan import ScreeningShared, ScreenJob, chunked, screen_chunk

    assert desk.pool is not None and desk.index is not None
    city = {s.id: s.city for s in desk.sites.values()}
    jobs = [ScreenJob(p, city[p.host_site_id]) for p in order[:share]]
    shared = ScreeningShared(pool=desk.pool, index=desk.index, sittings={}, rules=desk.rules,
                             today=NOW.date())
    specs = ["local"] + [f"local:{w}" for w in workers]
    if use_ray:
        specs += [f"ray:{w}" for w in workers]
    rows: list[list[str]] = []
    reference: list[Any] | None = None
    one: dict[str, float] = {}
    for spec in specs:
        executor = make_executor(spec)
        try:
            start = 0.0
            if spec.startswith("ray"):  # Ray's start-up is not screening
                _, start = timed(lambda e=executor: e.map_chunks(start_chunk, None, [0]))
            with TreeMemory() as memory:
                parts, elapsed = timed(lambda e=executor: e.map_chunks(
                    screen_chunk, shared, chunked(jobs, chunks)))
        finally:
            executor.close()
        results = [r for part in parts for r in part]
        if reference is None:
            reference = results
        elif results != reference:
            raise AssertionError(f"{spec}: screening differs from in-process")
        kind, _, n = spec.partition(":")
        count = int(n) if n else 1
        if n and count == 1:
            one[kind] = elapsed
        speed = one.get(kind, elapsed) / elapsed
        rows.append([f"3. screen(), {executor.name}", f"{len(jobs):,} of {len(order):,}",
                     f"{elapsed:.1f} s", ms(elapsed / len(jobs)),
                     f"{speed:.2f}x / {speed / count:.0%}" if n else "-",
                     f"tree {gib(memory.peak)}" + (f"; start {start:.1f} s" if start else "")])
    return rows


def fast_plan(day: DayScreen, order: list[Project], city: dict[str, str],
              plan_seed: bytes) -> tuple[list[float], Counter[str], float, int]:
    """Phase 4: every project in plan order on referenced inputs; per-project seconds."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    archive_bytes = 0
    started = time.perf_counter()
    for project in order:
        t0 = time.perf_counter()
        inputs = day.inputs(project, city[project.host_site_id])
        seed = hashlib.sha256(plan_seed + project.id.encode()).digest()
        commitment = commit(seed, inputs)
        result = draw(inputs, seed)
        if isinstance(result, DrawOutcome):
            archive_bytes += len(archive_json(commitment, inputs, result, seed))
            day.book(project, [(s.expert_id, s.workstation_id) for s in result.seats])
            outcomes["drawn"] += 1
        else:
            outcomes["starved"] += 1
        latencies.append(time.perf_counter() - t0)
    return latencies, outcomes, time.perf_counter() - started, archive_bytes


def plan_day_rows(desk: DrawDesk, order: list[Project], share: int) -> list[list[str]]:
    """Phase 5: H2a's plan_day (explicit inputs) on the first `share` projects, in-process."""
    try:
        from coordinator.day_plan import plan_day
    except ImportError:
        return [["5. plan_day", "-", "-", "-", "-", "coordinator.day_plan is not there"]]
    from coordinator.batch.executor import InProcessExecutor

    part = order[:share]
    done: Counter[str] = Counter()

    def sink(planned: Any) -> None:
        done[planned.outcome.outcome] += 1

    with TreeMemory() as memory:
        plan, elapsed = timed(lambda: plan_day(desk, part, secrets.token_bytes(32), NOW,
                                               InProcessExecutor(), sink=sink))
    what = ", ".join(f"{n} {k}" for k, n in sorted(done.items()))
    return [["5. plan_day (explicit inputs), in-process", f"{len(part):,} of {len(order):,}",
             f"{elapsed:.1f} s", ms(elapsed / max(len(part), 1)), "-",
             f"tree {gib(memory.peak)}; {what}; screening {plan.screening_s:.1f} s, "
             f"drawing {plan.drawing_s:.1f} s"]]


def explicit_rows(desk: DrawDesk, order: list[Project], sample: int) -> list[list[str]]:
    """Phase 6: one request's draw as DrawDesk prepares it (explicit inputs), no Redis."""
    step = max(1, len(order) // max(sample, 1))
    chosen = order[::step][:sample]
    prepare: list[float] = []
    run: list[float] = []
    candidates: list[int] = []
    for project in chosen:
        try:
            prepared, a = timed(lambda p=project: desk.prepare(p, NOW))
        except DrawRefused:
            continue
        _, b = timed(lambda p=prepared: DrawDesk.run(p))
        prepare.append(a)
        run.append(b)
        candidates.append(prepared.inputs.candidate_count())
    total = [a + b for a, b in zip(prepare, run, strict=True)]
    if not total:
        return []
    note = f"{statistics.mean(candidates):,.0f} candidates per draw"
    return [
        ["6. one draw, DrawDesk.prepare (screen, offers, commit)", f"{len(total)} sampled",
         f"p50 {ms(statistics.median(prepare))}", f"p99 {ms(pct(prepare, 99))}", "-", note],
        ["6. one draw, DrawDesk.run (draw, archive text)", f"{len(total)} sampled",
         f"p50 {ms(statistics.median(run))}", f"p99 {ms(pct(run, 99))}", "-", ""],
        ["6. one draw, explicit inputs, request to archive", f"{len(total)} sampled",
         f"p50 {ms(statistics.median(total))}", f"p99 {ms(pct(total, 99))}", "-",
         "without Redis (bench.draw_latency has it)"],
    ]


def run(args: argparse.Namespace) -> None:
    size = sizes(args.experts, args.projects)
    rows: list[list[str]] = []
    province: Province
    province, generated = timed(lambda: generate_province(seed=args.seed, day=DAY, **size))
    stations = sum(len(v.workstations) for s in province.sites for v in s.venues)
    relations = count_relations(province.experts)
    rows.append(["1. generate", f"{len(province.projects):,}", f"{generated:.1f} s", "-", "-",
                 f"RSS {gib(rss())}"])
    print(f"generated {len(province.experts):,} experts, {len(province.sites):,} sites, "
          f"{stations:,} workstations, {relations:,} conflict relations, "
          f"{len(province.projects):,} projects in {generated:.1f} s", flush=True)

    rules = load_rules()
    desk = DrawDesk(rules)
    _, indexed = timed(lambda: desk.load(province, []))
    rows.append(["2. indexes: pool and conflict index (DrawDesk.load)", "-", f"{indexed:.1f} s",
                 "-", "-", f"RSS {gib(rss())}"])
    assert desk.pool is not None and desk.index is not None
    pool, index = desk.pool, desk.index

    def build_day() -> DayScreen:
        day = DayScreen(pool, index, province.sites, rules, NOW.date())
        day.snapshot.digest()
        day.snapshot._candidate_index()
        day.snapshot._venue_index()
        return day

    day, built = timed(build_day)
    rows.append(["2. indexes: DayScreen (snapshot, digest, draw arrays)", "-", f"{built:.1f} s",
                 "-", "-", f"RSS {gib(rss())}; {len(day.snapshot.candidates):,} in snapshot"])
    print(f"indexes in {indexed:.1f} s, day screen in {built:.1f} s", flush=True)

    order = plan_order(province.projects)
    city = {s.id: s.city for s in province.sites}
    if args.screen_projects:
        rows += screening_rows(desk, order, args.screen_projects, args.workers, args.ray,
                               args.chunks)
        print("screening done", flush=True)

    with TreeMemory() as memory:
        latencies, outcomes, elapsed, archive_bytes = fast_plan(
            day, order, city, secrets.token_bytes(32))
    what = ", ".join(f"{n:,} {k}" for k, n in sorted(outcomes.items()))
    rows.append(["4. day plan, DayScreen + referenced inputs, sequential",
                 f"{len(order):,} of {len(order):,}", f"{elapsed:.1f} s",
                 ms(elapsed / len(order)), "-",
                 f"tree {gib(memory.peak)}; {what}; archives "
                 f"{archive_bytes / len(order) / 1024:.0f} KiB each, without the day's snapshot"])
    rows.append([f"4. single draw at {len(province.experts):,} experts (inputs, commit, draw, "
                 "archive, booking)", f"{len(latencies):,}",
                 f"p50 {ms(statistics.median(latencies))}", f"p99 {ms(pct(latencies, 99))}",
                 "-", f"max {ms(max(latencies))}"])
    print(f"fast plan: {elapsed:.1f} s, {what}", flush=True)

    if args.plan_day_projects:
        rows += plan_day_rows(desk, order, args.plan_day_projects)
        print("plan_day done", flush=True)
    if args.explicit_draws:
        rows += explicit_rows(desk, order, args.explicit_draws)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    rows.append(["peak memory", "-", "-", "-", "-",
                 f"driver {gib(peak)}; largest local worker {gib(children)}"])
    print_table(
        f"national scale: {len(province.experts):,} experts, {len(province.sites):,} sites, "
        f"{stations:,} workstations, {relations:,} conflict relations, "
        f"{len(province.projects):,} projects on {DAY.isoformat()}",
        ["phase", "projects", "time", "per project", "speed-up / efficiency", "notes"], rows,
        console=Console(width=220))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.national", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    national = SCALES["national"]
    parser.add_argument("--experts", type=int, default=national["experts"],
                        help="the other sizes keep the national proportions")
    parser.add_argument("--projects", type=int, default=national["projects"])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--executor-workers", default="1,2",
                        help="worker counts for local processes and Ray (comma-separated)")
    parser.add_argument("--no-ray", dest="ray", action="store_false")
    parser.add_argument("--screen-projects", type=int, default=1000,
                        help="projects screened through each executor (0: skip)")
    parser.add_argument("--chunks", type=int, default=16, help="chunks per screening pass")
    parser.add_argument("--plan-day-projects", type=int, default=300,
                        help="projects given to coordinator.day_plan.plan_day (0: skip)")
    parser.add_argument("--explicit-draws", type=int, default=50,
                        help="sampled single draws with explicit inputs (0: skip)")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(w) for w in args.executor_workers.split(",") if w]
    except ValueError:
        parser.error(f"--executor-workers: comma-separated integers, not "
                     f"{args.executor_workers!r}")
    if any(w < 1 for w in args.workers):
        parser.error("--executor-workers: counts must be at least 1")
    run(args)


if __name__ == "__main__":
    main()
