"""The day plan, shell: screen a day's projects in batch, then draw them one by one.

`plan_day` touches no Redis: phase 1 runs the day screen's costly, booking-independent rule
("party", the conflict-index look-ups) for every project through the batch executor
(in-process, local processes or Ray: the rule's index goes once per plan, to long-lived
workers), phase 2 draws in plan order on referenced inputs against a copy of the desk's day
screen that books each draw, so no expert or workstation is booked twice across the plan's
projects. `run_plan` is the coordinator's side: the audit records, the placement of
each draw in Redis (the workflow's recoverable `place`), the project states. The pure rules
(order, seeds, the screening job) are in `coordinator.domain.day_plan`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from coordinator.batch.executor import (
    Executor,
    InProcessExecutor,
    ProcessExecutor,
    RayExecutor,
)
from coordinator.domain.day_plan import (
    chunked,
    plan_order,
    project_seed,
    projects_digest,
    projects_of_day,
    seed_hash,
)
from coordinator.domain.draw.outcome import Seat
from coordinator.domain.eligibility import tied_rows_chunk
from coordinator.domain.lifecycle import ProjectState
from coordinator.domain.model import Project
from coordinator.domain.seal import seal_json
from coordinator.drawing import CommittedDraw, DrawDesk, DrawRefused, PlacedDraw
from coordinator.errors import WorkflowError
from coordinator.plan_chunks import chunk_sizes, place_chunk
from coordinator.plan_drawing import DrawingFailed, DrawingFigures, DrawingProcess
from coordinator.store.log_compaction import LogCompaction
from coordinator.store.seed_rounds import PlanSeeds
from evalgrid.forking import may_fork

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, str], None]  # phase, done, total, message
CHUNKS_AHEAD = 8  # chunks of draws the plan may compute ahead of their placement in Redis
Outcome = Literal["drawn", "refused", "starved"]


@dataclass(frozen=True)
class PlanOutcome:
    """What the plan did for one project (small: kept for every project of the day)."""

    project_id: str
    outcome: Outcome
    reason: str = ""
    draw_id: str = ""
    seed_hash: str = ""
    input_digest: str = ""
    outcome_digest: str = ""
    seats: tuple[Seat, ...] = ()


@dataclass(frozen=True)
class PlannedDraw:
    """One project's draw, ready to be committed and placed (`result` None unless drawn)."""

    project: Project
    prepared: CommittedDraw | None
    result: PlacedDraw | None
    outcome: PlanOutcome


@dataclass(frozen=True)
class DayPlan:
    seed_hash: str
    executor: str
    outcomes: tuple[PlanOutcome, ...]
    draws: tuple[PlannedDraw, ...]  # empty when a sink took them one by one
    screening_s: float
    drawing_s: float
    drawing: DrawingFigures = field(default_factory=DrawingFigures)  # of a process apart

    def counts(self) -> Counter[str]:
        return Counter(o.outcome for o in self.outcomes)


def plan_day(desk: DrawDesk, projects: Sequence[Project], plan_seed: bytes, now: datetime,
             executor: Executor, down: frozenset[str] = frozenset(),
             progress: Progress | None = None, *,
             sink: Callable[[PlannedDraw], None] | None = None,
             chunks: int = 16, apart: bool = False) -> DayPlan:
    """Draw `projects` in plan order from `plan_seed`; no Redis, `desk` is not modified.

    Each draw's seed is `project_seed(plan_seed, id)`. With `sink`, each draw is handed over
    as soon as it is made (and not kept: a national day's archives do not fit in memory at
    once); a sink that raises stops the plan. With `apart`, phase 2 runs in a process of its
    own (coordinator/plan_drawing.py) while the sink works here. The result is a function of
    the desk's state, the projects, the seed, `now` and `down` only: the executor and `apart`
    change the speed, not the plan.
    """
    report = progress or (lambda phase, done, total, message: None)
    order = plan_order(projects)
    # Built once, kept by the desk for the day's single draws.
    desk.day_screen(desk.rules.local_date(now))
    work = desk.fork()
    day = work.day_screen(desk.rules.local_date(now))
    known = [p for p in order if p.host_site_id in desk.sites]
    report("screening", 0, len(known), f"{len(known)} project(s) on {executor.name}")
    started = time.perf_counter()
    tied: dict[str, NDArray[np.intp]] = {}
    parts = chunked([p.parties for p in known], chunks)
    for part, rows in zip(parts, executor.map_chunks(tied_rows_chunk, day.party, parts),
                          strict=True):
        tied.update((p.id, r) for p, r in zip(part, rows, strict=True))
    screening_s = time.perf_counter() - started
    report("screening", len(known), len(known), f"screened in {screening_s:.2f} s")

    started = time.perf_counter()
    outcomes: list[PlanOutcome] = []
    kept: list[PlannedDraw] = []

    def draw(project: Project) -> PlannedDraw:
        return _draw_one(work, project, tied.get(project.id), plan_seed, now, down)

    figures = DrawingFigures()
    with contextlib.ExitStack() as stack:
        if apart:
            process = stack.enter_context(DrawingProcess(draw, order, day.snapshot))
            draws: Iterable[PlannedDraw] = process
        else:
            draws = map(draw, order)
        for n, planned in enumerate(draws, 1):
            outcomes.append(planned.outcome)
            if sink is not None:
                sink(planned)
            else:
                kept.append(planned)
            report("drawing", n, len(order), f"{planned.project.id}: "
                   f"{planned.outcome.outcome}")
        if apart:
            figures = process.figures
    return DayPlan(seed_hash=seed_hash(plan_seed), executor=executor.name,
                   outcomes=tuple(outcomes), draws=tuple(kept), screening_s=screening_s,
                   drawing_s=time.perf_counter() - started, drawing=figures)


def _draw_one(work: DrawDesk, project: Project, tied: NDArray[np.intp] | None,
              plan_seed: bytes, now: datetime, down: frozenset[str]) -> PlannedDraw:
    """Phase 2 for one project: the single draw's own preparation, seeded by the plan."""
    def refused(reason: str) -> PlannedDraw:
        return PlannedDraw(project, None, None, PlanOutcome(project.id, "refused", reason))

    if tied is None:
        return refused(f"unknown host site {project.host_site_id!r}")
    try:
        prepared = work.prepare(project, now, down, seed=project_seed(plan_seed, project.id),
                                tied=tied)
    except DrawRefused as exc:
        return refused(str(exc))
    c = prepared.commitment
    result = work.run(prepared)
    if isinstance(result, str):
        return PlannedDraw(project, prepared.committed(), None, PlanOutcome(
            project.id, "starved", result, c.draw_id, c.seed_hash, c.input_digest))
    work.book(project, [(s.expert_id, s.workstation_id) for s in result.seats])
    return PlannedDraw(project, prepared.committed(), result, PlanOutcome(
        project.id, "drawn", "", c.draw_id, c.seed_hash, c.input_digest,
        result.outcome_digest, result.seats))


# --- the executor a plan may use -------------------------------------------------------------


def coordinator_executor(executor: str, ray_address: str | None) -> str:
    """The coordinator's own batch setting as one spec: `local`, `local:N`, `ray`, `ray:N`, or
    (with a Ray address) `ray:auto` / `ray://host:port`. Raises ValueError naming the option."""
    _parse(executor, "--executor")
    if not ray_address:
        return executor
    if not executor.startswith("ray"):
        raise ValueError(f"--ray-address: needs --executor ray or ray:N, not {executor!r}")
    if ray_address == "auto":
        return "ray:auto"
    if not ray_address.startswith("ray://") or len(ray_address) <= len("ray://"):
        raise ValueError(f"--ray-address: 'auto' or ray://host:port, not {ray_address!r}")
    return ray_address


def _parse(spec: str, field: str) -> tuple[str, int | None]:
    """(kind, workers) of a local spec: ("local", None), ("local", N), ("ray", None|N)."""
    for kind in ("local", "ray"):
        if spec == kind:
            return kind, None
        if spec.startswith(kind + ":"):
            count = spec[len(kind) + 1:]
            if count.isdigit() and int(count) >= 1:
                return kind, int(count)
            raise ValueError(f"{field}: {spec!r} needs a positive worker count")
    raise ValueError(f"{field}: unknown {spec!r} (local, local:N, ray, ray:N)")


def resolve_executor(own: str, requested: str) -> Executor:
    """The executor for one plan: the coordinator's own (`own`), or a narrower one asked for.

    A request may ask for in-process work (`local`), fewer local processes than the
    coordinator runs (`local:N`), or fewer Ray workers (`ray:N`, on the coordinator's own Ray
    or cluster); it can never point the coordinator at another cluster. ValueError names the
    field `executor`.
    """
    if not requested or requested == own:
        return _executor(own)
    if requested == "local":
        return InProcessExecutor()
    cluster = own == "ray:auto" or own.startswith("ray://")
    try:
        kind, count = _parse(requested, "executor")
    except ValueError:
        raise ValueError(f"executor: a request may narrow the coordinator's executor ({own}) "
                         f"to local, local:N or ray:N; it may not use {requested!r}") from None
    if cluster:
        own_kind, own_count = "ray", None
    else:
        own_kind, own_count = _parse(own, "executor")
    if own_kind == "local" and own_count is None:
        own_count = 0  # in-process: nothing is narrower
    if kind != own_kind or count is None or (own_count is not None and count > own_count):
        raise ValueError(f"executor: {requested!r} is not a narrowing of the coordinator's "
                         f"executor ({own})")
    if kind == "local":
        return ProcessExecutor(count, start_method=SAFE_START)
    if cluster:
        ray = RayExecutor(address="auto" if own == "ray:auto" else own, in_flight=count)
        ray.name = f"ray ({ray.address}, {count} in flight)"
        return ray
    ray = RayExecutor(num_cpus=own_count, in_flight=count)  # Ray keeps the coordinator's size
    ray.name = f"ray (local, {count} in flight)"
    return ray


def rearm_signals() -> None:
    """Reinstall Python's handlers of SIGTERM and SIGINT (main thread only). Starting Ray in
    the process installs native handlers over them, which would turn the coordinator's
    graceful stop into an abort."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if handler is not None:
            signal.signal(sig, handler)


def keep_open(executor: Executor) -> bool:
    """Ray stays up for the coordinator's lifetime (started once, shut down at exit): its
    shutdown from a worker thread would take the process's SIGTERM handling with it."""
    return isinstance(executor, RayExecutor)


def _executor(spec: str) -> Executor:
    from coordinator.batch.executor import make_executor

    executor = make_executor(spec)
    if isinstance(executor, ProcessExecutor):
        executor.start_method = SAFE_START
    return executor


# The coordinator runs gRPC threads: its worker processes start from a fork server, never
# as forks of the coordinator itself. (The one fork, the plan's drawing process, runs no gRPC,
# Redis or event loop: coordinator/plan_drawing.py.)
SAFE_START = "forkserver"


# --- the coordinator's side ------------------------------------------------------------------


async def run_plan(workflow: Workflow, day: date, executor: Executor,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Draw every project of `day` still awaiting its draw, and place each draw as it comes.

    Audit: `plan.committed` (day, plan id, SHA-256 of the plan seed, digest of the project ids
    in plan order, executor) before anything is screened; per project `draw.committed` then
    `draw.placed` as a single draw has them (or `draw.refused` / `draw.starved`);
    `plan.completed` with the counts. Holds the draw lock throughout: single and supplementary
    draws wait for the plan.
    """
    from evalgrid.ids import opaque_id

    report = progress or (lambda phase, done, total, message: None)
    loop = asyncio.get_running_loop()
    counts: Counter[str] = Counter()
    outcomes: list[dict[str, Any]] = []
    async with workflow.draw_lock:
        states = await workflow.registry.project_states()
        offset = workflow.rules.local_utc_offset_minutes
        order = projects_of_day(
            (p for p in workflow.desk.projects()
             if states.get(p.id) == ProjectState.REGISTERED),
            day, offset)
        # Both shares, the coordinator's and the supervisor's (committed before it was
        # revealed); refused while the supervisor's is awaited, until the audited fallback.
        plan_seed, making = await workflow.seed_shares.plan_seed(day)
        plan_id = opaque_id("plan")
        digest = projects_digest([p.id for p in order])
        # Kept sealed until the awards (`evalgrid plan reveal DAY`): then anyone checks that
        # each project's seed derives from it.
        await PlanSeeds(workflow.redis).keep(
            plan_id, day.isoformat(), seal_json(workflow.master_key, plan_id, "plan-seed", {
                "seed": plan_seed.hex(), "day": day.isoformat()}).to_json())
        await workflow.record("plan.committed", day.isoformat(), {
            "plan_id": plan_id, "day": day.isoformat(), "seed_hash": seed_hash(plan_seed),
            "projects": len(order), "projects_digest": digest, "executor": executor.name,
            "seed_derivation": "HMAC-SHA256(plan seed, project id)", **making})
        # Each project's first label (its id) is taken: a later first draw takes id/rK.
        await workflow.seed_shares.take_first_labels(day, [p.id for p in order])

        # Placements run one chunk at a time (coordinator/plan_chunks.py), in plan order, on
        # the event loop, while the worker thread draws up to CHUNKS_AHEAD chunks ahead (its
        # copy of the day screen has booked them already). A draw is committed only when its
        # chunk is placed, so a crash loses only uncommitted work; after a failed placement
        # no later one is made.
        placing = asyncio.Lock()
        failed: list[BaseException] = []
        pending: deque[concurrent.futures.Future[None]] = deque()
        buffer: list[PlannedDraw] = []
        sizes = chunk_sizes()
        size = next(sizes)

        async def place(chunk: list[PlannedDraw]) -> None:
            async with placing:
                if failed:
                    raise RuntimeError("an earlier placement of the plan failed")
                try:
                    placed = await place_chunk(workflow, chunk, plan_id)
                except BaseException as exc:
                    failed.append(exc)
                    raise
            for planned, outcome in zip(chunk, placed, strict=True):
                counts[outcome] += 1
                o = planned.outcome
                outcomes.append({"project_id": o.project_id, "outcome": outcome,
                                 "draw_id": o.draw_id, "seats": len(o.seats),
                                 "reason": o.reason})

        def submit() -> None:  # in the worker thread
            nonlocal size
            pending.append(asyncio.run_coroutine_threadsafe(place(list(buffer)), loop))
            buffer.clear()
            size = next(sizes)
            while len(pending) > CHUNKS_AHEAD:
                pending.popleft().result()

        def sink(planned: PlannedDraw) -> None:  # in the worker thread
            buffer.append(planned)
            if len(buffer) >= size:
                submit()

        def drain(raise_errors: bool) -> None:
            while pending:
                try:
                    pending.popleft().result()
                except Exception:
                    if raise_errors:
                        raise

        def plan_and_place(*args: Any, **kwargs: Any) -> DayPlan:
            try:
                plan = plan_day(*args, **kwargs)
            except BaseException:
                drain(raise_errors=False)
                raise
            if buffer:
                submit()
            drain(raise_errors=True)
            return plan

        def threadsafe(phase: str, done: int, total: int, message: str) -> None:
            loop.call_soon_threadsafe(report, phase, done, total, message)
            if phase == "screening" and done == total:
                loop.call_soon_threadsafe(rearm_signals)

        now = workflow.clock.now()
        workflow.desk.day_screen(workflow.desk.rules.local_date(now))  # kept for the day
        fork = workflow.desk.fork()
        compaction = LogCompaction(workflow.redis)  # the store's log rewrite waits for the end
        held = False
        try:
            held = await compaction.hold()
            plan = await asyncio.to_thread(plan_and_place, fork, order, plan_seed, now,
                                           executor, workflow.down_workstations(), threadsafe,
                                           sink=sink, apart=may_fork())
        except Exception as exc:  # an executor or Redis failure: what is placed stays placed
            if isinstance(exc, DrawingFailed) and exc.where:
                log.error("plan %s: the drawing process raised:\n%s", plan_id, exc.where)
            reason = f"{type(exc).__name__}: {exc}"[:500]
            await workflow.record("plan.failed", day.isoformat(), {
                "plan_id": plan_id, "reason": reason, **dict(counts)})
            raise WorkflowError("plan", f"stopped after {sum(counts.values())} of {len(order)} "
                                f"project(s): {reason}; run it again to go on",
                                code="precondition") from exc
        finally:
            rearm_signals()
            if held:
                await compaction.give_back()
        summary = {
            "plan_id": plan_id, "day": day.isoformat(), "seed_hash": plan.seed_hash,
            "executor": plan.executor, "projects": len(order),
            "drawn": counts["drawn"], "refused": counts["refused"],
            "starved": counts["starved"], "conflicts": counts["conflict"],
            "skipped": counts["skipped"], "screening_s": round(plan.screening_s, 3),
            "drawing_s": round(plan.drawing_s, 3), "outcomes": outcomes,
        }
        await workflow.record("plan.completed", day.isoformat(), {
            k: v for k, v in summary.items() if k != "outcomes"})
    return summary
