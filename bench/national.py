"""The national scale through the coordinator itself, side by side with a SQL baseline.

`--scale national`: 300,000 experts, 3,000 sites, 30,000 workstations, 1,000,000 conflict
relations, 20,000 projects on one day (`evalgrid province generate --scale national`);
`--scale small` keeps the proportions at a tenth (30,000 experts, 2,000 projects) for a quick try.

Everything runs in this process as the coordinator runs it, against a real redis-server:
1. generation, then the registry stored in Redis (`Registry.store_province`, PII sealed) and
   loaded back by the coordinator (`Workflow.load`: pool and conflict index);
2. the day plan: `Workflow.plan_day`, the body of `Operator.PlanDay` (HMAC seeds from a fresh
   plan seed, the day's `DayScreen`, referenced inputs, each draw committed, placed in Redis
   through the recoverable intent, sealed, audited), for every project of the day;
3. single draws through `Workflow.draw` (one request each: screening, commitment, draw, seal,
   atomic Redis booking, audit, agent commands) on `--singles` projects of the next day;
4. the baseline a site would otherwise write: SQLite, indexed, each quota one
   `SELECT ... ORDER BY random() LIMIT n` with the same filters (status, age, penalty, cities,
   ties to the parties by company, overlapping sittings), the workstations one more, bookings
   inserted; the same `--singles` projects (the relatives and department rules left out: that
   favours the baseline);
5. the plan's batch phase (rule "party" for every project of the day) on each `--executors`
   spec: speed-up against the same kind with 1 worker.
The coordinator's memory (this process's resident set) is printed after the plan.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console

from bench.machine import box_speed, ms_row, pct, print_table
from coordinator.batch.executor import make_executor
from coordinator.domain.audit import generate_signing_key
from coordinator.domain.day_plan import chunked
from coordinator.domain.eligibility import normalise_specialty, specialty_prefixes, tied_rows_chunk
from coordinator.domain.model import Project, Province, Window
from coordinator.domain.names import normalise_company_name, normalise_credit_code
from coordinator.domain.rules import Rules, load_rules
from coordinator.drawing import DrawDesk
from coordinator.notifier import MemoryOutbox
from coordinator.province.generator import SCALES, count_relations, generate_province
from coordinator.store.connection import store_client
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.log_compaction import LogCompaction
from coordinator.workflow import Workflow, WorkflowError
from evalgrid.clock import SimClock
from evalgrid.forking import may_fork

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


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def children_cpu() -> float:
    """CPU seconds of this process's ended children: the plan's drawing process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children_peak() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def server_cpu(server: EmbeddedRedis) -> float:
    """The server's CPU seconds, with its ended children's: an AOF rewrite forks a child that
    serialises the whole dataset, on the same cores as the plan."""
    import psutil

    if server.process is None:
        return 0.0
    times = psutil.Process(server.process.pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


async def compaction_row(redis: aioredis.Redis, server: EmbeddedRedis, before: int
                         ) -> list[str]:
    """The store's log rewrite a plan held off (coordinator/store/log_compaction.py), waited
    for after the plan (it would slow the single draws measured next) and timed."""
    t0, r0 = time.perf_counter(), server_cpu(server)
    info = await redis.info("persistence")
    # A rewrite counts from its start: one already running is the one held off.
    during = int(info["aof_rewrites"]) - before - int(info["aof_rewrite_in_progress"])
    pct = int(await LogCompaction(redis).setting())
    while time.perf_counter() - t0 < 600:
        busy = info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]
        due = pct > 0 and int(info["aof_current_size"]) > int(info["aof_base_size"]) * (
            100 + pct) / 100
        if not busy and not due:
            break
        await asyncio.sleep(0.2)  # Redis starts a due one within a cron tick
        info = await redis.info("persistence")
    after = int(info["aof_rewrites"]) - before - during
    return ["store log rewrite held off to after the plan", "-",
            f"{time.perf_counter() - t0:.1f} s", "-",
            f"redis-server CPU {server_cpu(server) - r0:.1f} s (with its rewriting child); "
            f"rewrites during the plan {during}, after it {after}; log "
            f"{int(info['aof_current_size']) / 2**30:.2f} GiB"]


def server_rss(server: EmbeddedRedis) -> int:
    import psutil

    return 0 if server.process is None else int(
        psutil.Process(server.process.pid).memory_info().rss)


def next_day(project: Project) -> Project:
    w = project.window
    return dataclasses.replace(project, window=Window(w.start + timedelta(days=1),
                                                      w.end + timedelta(days=1)))


# --- the SQL baseline --------------------------------------------------------------------------


class SqlBaseline:
    """A straightforward SQL draw, as a site would write it on SQLite (indexed)."""

    def __init__(self, province: Province, rules: Rules, path: Path) -> None:
        self.rules = rules
        self.db = sqlite3.connect(path)
        self.sites = {s.id: s for s in province.sites}
        self.groups: dict[str, list[str]] = {}
        for c in province.companies:
            if c.group_id:
                self.groups.setdefault(c.group_id, []).append(c.id)
        self.group_of = {c.id: c.group_id for c in province.companies}
        by_name = {normalise_company_name(c.name): c.id for c in province.companies}
        by_code = {normalise_credit_code(c.credit_code): c.id for c in province.companies
                   if c.credit_code}
        db = self.db
        db.executescript("""
            CREATE TABLE experts (id TEXT PRIMARY KEY, kind TEXT, status TEXT, birth TEXT,
                                  city TEXT, work_city TEXT, last_penalty TEXT);
            CREATE TABLE specialty (prefix TEXT, expert_id TEXT);
            CREATE TABLE ties (company_id TEXT, expert_id TEXT);
            CREATE TABLE sittings (expert_id TEXT, tenderer TEXT, start_ts INT, end_ts INT);
            CREATE TABLE workstations (id TEXT PRIMARY KEY, venue TEXT, city TEXT,
                                       site_city TEXT);
            CREATE TABLE ws_bookings (ws TEXT, start_ts INT, end_ts INT);
        """)
        experts, specialties, ties = [], [], []
        for e in province.experts:
            last = max((p.on for p in e.penalties), default=None)
            experts.append((e.id, e.kind, e.status, e.birth_date.isoformat(), e.city,
                            e.work_city, last.isoformat() if last else None))
            for code in {p for s in e.specialties for p in specialty_prefixes(s)}:
                specialties.append((code, e.id))
            refs = [j.company for j in e.employments] + list(e.interests) + list(
                e.declared_conflicts)
            for ref in refs:
                cid = by_code.get(normalise_credit_code(ref.credit_code or "")) or by_name.get(
                    normalise_company_name(ref.name))
                if cid:
                    ties.append((cid, e.id))
        db.executemany("INSERT INTO experts VALUES (?,?,?,?,?,?,?)", experts)
        db.executemany("INSERT INTO specialty VALUES (?,?)", specialties)
        db.executemany("INSERT INTO ties VALUES (?,?)", ties)
        db.executemany("INSERT INTO workstations VALUES (?,?,?,?)", [
            (w.id, v.id, v.city, s.city) for s in province.sites if "guest" in s.roles
            for v in s.venues for w in v.workstations])
        db.executescript("""
            CREATE INDEX specialty_prefix ON specialty (prefix, expert_id);
            CREATE INDEX ties_company ON ties (company_id, expert_id);
            CREATE INDEX sittings_expert ON sittings (expert_id, start_ts, end_ts);
            CREATE INDEX sittings_tenderer ON sittings (tenderer, expert_id);
            CREATE INDEX bookings_ws ON ws_bookings (ws, start_ts, end_ts);
            CREATE INDEX experts_city ON experts (city);
        """)
        db.commit()

    def draw(self, project: Project, today: date) -> int:
        """Seats filled (0 when a quota cannot be)."""
        rules, db = self.rules, self.db
        host = self.sites[project.host_site_id].city
        start, end = project.window.start_ts, project.window.end_ts
        cool = rules.cool_off_days * 86400
        parties = [project.tenderer_id, *project.bidder_ids]
        companies = set(parties)
        for p in parties:
            group = self.group_of.get(p)
            if group:
                companies |= set(self.groups[group])
        born_after = today.replace(year=today.year - rules.age_limit - 1).isoformat()
        since = today.replace(year=today.year - rules.look_back_years).isoformat()
        chosen: list[str] = []
        marks = ",".join("?" * len(companies))
        for q in project.quotas:
            taken = ",".join("?" * len(chosen)) or "''"
            rows = db.execute(f"""
                SELECT e.id FROM specialty s JOIN experts e ON e.id = s.expert_id
                WHERE s.prefix = ? AND (? IS NULL OR e.kind = ?) AND e.status = 'active'
                  AND e.birth > ? AND (e.last_penalty IS NULL OR e.last_penalty < ?)
                  AND e.city NOT IN (?, ?) AND e.work_city NOT IN (?, ?)
                  AND e.id NOT IN (SELECT expert_id FROM ties WHERE company_id IN ({marks}))
                  AND e.id NOT IN (SELECT expert_id FROM sittings
                                   WHERE start_ts < ? AND end_ts > ?)
                  AND e.id NOT IN (SELECT expert_id FROM sittings WHERE tenderer = ?
                                   AND start_ts < ? AND end_ts > ?)
                  AND e.id NOT IN ({taken})
                ORDER BY random() LIMIT ?""",
                (normalise_specialty(q.specialty), q.kind, q.kind, born_after, since,
                 project.city, host, project.city, host, *sorted(companies), end, start,
                 project.tenderer_id, end + cool, start - cool, *chosen, q.count)).fetchall()
            if len(rows) < q.count:
                return 0
            chosen += [r[0] for r in rows]
        stations = db.execute("""
            SELECT id FROM workstations WHERE city NOT IN (?, ?) AND site_city NOT IN (?, ?)
              AND id NOT IN (SELECT ws FROM ws_bookings WHERE start_ts < ? AND end_ts > ?)
            ORDER BY random() LIMIT ?""",
            (project.city, host, project.city, host, end, start, len(chosen))).fetchall()
        if len(stations) < len(chosen):
            return 0
        db.executemany("INSERT INTO sittings VALUES (?,?,?,?)",
                       [(e, project.tenderer_id, start, end) for e in chosen])
        db.executemany("INSERT INTO ws_bookings VALUES (?,?,?)",
                       [(w[0], start, end) for w in stations])
        db.commit()
        return len(chosen)


# --- the run -----------------------------------------------------------------------------------


class Rows(list[list[str]]):
    """The table's rows, each also printed (stderr) as it is measured: a long national run
    cut short still says what it measured."""

    def append(self, row: list[str]) -> None:
        print(" | ".join(row), file=sys.stderr, flush=True)
        super().append(row)

    def __iadd__(self, rows: Iterable[list[str]]) -> Rows:  # type: ignore[override,misc]
        for row in rows:
            self.append(row)
        return self


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def batch_only(args: argparse.Namespace) -> None:
    """Only the plan's batch phase on each executor (no Redis): for a machine with more cores."""
    experts, projects = _scale(args)
    province, generated = timed(lambda: generate_province(seed=args.seed, day=DAY,
                                                          **sizes(experts, projects)))
    desk = DrawDesk(load_rules())
    _, loaded = timed(lambda: desk.load(province, []))
    rows = [["generate / indexes", f"{experts:,} experts, {projects:,} projects",
             f"{generated:.1f} / {loaded:.1f} s", "-", f"RSS {gib(rss())}"]]
    rows += _batch_rows(desk, args.executors, args.chunks, args.repeat)
    load = os.getloadavg()
    print_table("the day plan's batch phase on each executor", ["what", "projects", "time",
                "per project", "notes"], rows, Console(width=160))
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _scale(args: argparse.Namespace) -> tuple[int, int]:
    experts, projects = {"national": (300_000, 20_000), "small": (30_000, 2_000)}[args.scale]
    return args.experts or experts, args.projects or projects


async def run(args: argparse.Namespace) -> None:
    experts, projects = _scale(args)
    rules = load_rules()
    rows: list[list[str]] = Rows()
    size = sizes(experts, projects + args.singles)
    province, generated = timed(lambda: generate_province(seed=args.seed, day=DAY, **size))
    singles = sorted(province.projects, key=lambda p: p.id)[:args.singles]
    moved = {p.id: next_day(p) for p in singles}
    province = dataclasses.replace(province, projects=tuple(
        moved.get(p.id, p) for p in province.projects))
    rows.append(["generate", f"{len(province.experts):,} experts, {projects:,} + "
                 f"{len(singles)} projects", f"{generated:.1f} s", "-",
                 f"{count_relations(province.experts):,} conflict relations"])
    with tempfile.TemporaryDirectory(prefix="eg-national-") as tmp:
        server = EmbeddedRedis(Path(tmp)).start()
        redis = store_client(server.url, socket_timeout=600)
        try:
            workflow = Workflow(
                redis=redis, clock=SimClock(NOW), rules=rules, master_key=b"k" * 32,
                signing_key=generate_signing_key(), notifier=MemoryOutbox(),
                reports_dir=Path(tmp) / "reports")
            # No supervisor here: the plan takes the audited fallback (the coordinator's share
            # alone) at once, as `evalgrid coordinator --seed-wait-minutes 0` does.
            workflow.seed_shares.wait = timedelta(0)
            t0 = time.perf_counter()
            await workflow.registry.store_province(province)
            stored = time.perf_counter() - t0
            t0 = time.perf_counter()
            await workflow.load()
            loaded = time.perf_counter() - t0
            rows.append(["registry stored in Redis / loaded by the coordinator", "-",
                         f"{stored:.1f} / {loaded:.1f} s", "-", f"RSS {gib(rss())}"])
            del province  # the coordinator holds its own copy now

            speed_before = box_speed()
            audit_before = (await workflow.audit.head()).seq
            executor = make_executor(args.plan_executor)
            rewrites = (await redis.info("persistence"))["aof_rewrites"]
            t0, c0, k0, r0 = (time.perf_counter(), time.process_time(), children_cpu(),
                              server_cpu(server))
            summary = await workflow.plan_day(DAY, "bench-plan", executor)
            await workflow.announced.settle()  # its last intents' drops, timed with it
            planned, cpu = time.perf_counter() - t0, time.process_time() - c0
            drawing_cpu, redis_cpu = children_cpu() - k0, server_cpu(server) - r0
            executor.close()
            audit_after = (await workflow.audit.head()).seq
            n = summary["projects"]
            rows.append([
                f"day plan through PlanDay ({summary['executor']})", f"{n:,}",
                f"{planned:.1f} s", f"{planned / max(n, 1) * 1000:.2f} ms",
                # CPU of this process (both threads; not redis-server): on a shared box the
                # figure to compare, wall time follows the load.
                f"CPU {cpu:.1f} s ({cpu / max(n, 1) * 1000:.2f} ms per project), "
                + (f"drawing process {drawing_cpu:.1f} s (peak RSS {gib(children_peak())}), "
                   if may_fork() else "drawn in-process (gRPC's fork handlers on), ")
                + f"redis-server {redis_cpu:.1f} s; "
                f"drawn {summary['drawn']:,}, starved {summary['starved']}, refused "
                f"{summary['refused']}, conflicts {summary['conflicts']}; batch "
                f"{summary['screening_s']:.1f} s, drawing {summary['drawing_s']:.1f} s; "
                f"{audit_after - audit_before:,} audit entries"])
            rows.append(await compaction_row(redis, server, rewrites))
            speed_after = box_speed()  # once the held-off log rewrite is done: it takes a core
            rows.append(["the box's speed: fixed reference work, best of 3", "-",
                         f"{speed_before:.3f} / {speed_after:.3f} s", "-",
                         "before the plan / after it and its log rewrite; compare runs at a like "
                         "speed"])
            rows.append(["coordinator memory after the plan", "-", "-", "-",
                         f"RSS {gib(rss())}, peak {gib(peak())}; redis-server RSS "
                         f"{gib(server_rss(server))}"])

            latencies: list[float] = []
            refused = 0
            for p in singles:
                t0 = time.perf_counter()
                try:
                    await workflow.draw(p.id, f"bench-{p.id}")
                except WorkflowError:
                    refused += 1
                    continue
                latencies.append(time.perf_counter() - t0)
            await workflow.announced.settle()  # the draws' intents dropped before the close
            coordinator_row = ms_row("single draw through Workflow.draw", latencies)
            baseline, built = timed(lambda: SqlBaseline(
                _province_of(workflow), rules, Path(tmp) / "baseline.sqlite"))
            sql_times: list[float] = []
            sql_failed = 0
            for p in sorted(moved.values(), key=lambda p: p.id):
                t0 = time.perf_counter()
                seats = baseline.draw(p, NOW.date())
                sql_times.append(time.perf_counter() - t0)
                sql_failed += seats == 0
            sql_row = ms_row("single draw, SQLite baseline", sql_times)
            ratio = (pct(sql_times, 50) / pct(latencies, 50)) if latencies else float("nan")
            rows.append([coordinator_row[0], coordinator_row[1],
                         f"p50 {coordinator_row[2]} ms, p99 {coordinator_row[3]} ms",
                         "-", f"max {coordinator_row[4]} ms; {refused} refused"])
            rows.append([sql_row[0], sql_row[1],
                         f"p50 {sql_row[2]} ms, p99 {sql_row[3]} ms", "-",
                         f"max {sql_row[4]} ms; built in {built:.1f} s; {sql_failed} unfilled; "
                         f"coordinator {ratio:.0f}x faster at p50"])
            rows += _batch_rows(workflow.desk, args.executors, args.chunks, args.repeat)
        finally:
            await redis.aclose()
            server.stop()
    load = os.getloadavg()
    print_table(f"national scale ({args.scale}): the coordinator's own paths",
                ["what", "projects", "time", "per project", "notes"], rows, Console(width=160))
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _province_of(workflow: Workflow) -> Province:
    desk = workflow.desk
    return Province(sites=tuple(desk.sites.values()), experts=tuple(desk.experts.values()),
                    companies=tuple(desk.companies.values()), projects=())


def _batch_rows(desk: DrawDesk, specs: Sequence[str], chunks: int, repeat: int
                ) -> list[list[str]]:
    """The plan's batch phase on each executor: the same results, and the speed-up."""
    day = desk.day_screen(NOW.date())
    order = [p for p in desk.projects() if p.host_site_id in desk.sites]
    parts = chunked([p.parties for p in order], chunks)
    rows: list[list[str]] = []
    reference: list[Any] | None = None
    single: dict[str, float] = {}
    for spec in specs:
        executor = make_executor(spec)
        times: list[float] = []
        same = "same rows"
        try:
            # Start-up, not timed: chunks enough that every worker starts and takes the rule
            # (a fork server starts workers as chunks come: after one chunk, the second
            # worker unpickled the rule inside the first timed run, 23 s instead of 6).
            executor.map_chunks(tied_rows_chunk, day.party, parts[:4])
            # Best of `repeat`: another process on the box only ever slows a run down, and a
            # speed-up read off two single runs moved by a third from run to run.
            for _ in range(repeat):
                t0 = time.perf_counter()
                out = executor.map_chunks(tied_rows_chunk, day.party, parts)
                times.append(time.perf_counter() - t0)
                flat = [r.tolist() for part in out for r in part]
                if reference is not None and flat != reference:
                    same = "DIFFERENT rows"
                reference = reference or flat
        finally:
            executor.close()
        took = min(times)
        kind = spec.split(":")[0]
        workers = int(spec.split(":")[1]) if ":" in spec else 0
        if workers <= 1:
            single[kind] = took
        speed = f"{single[kind] / took:.2f}x of 1 worker" if kind in single and workers > 1 \
            else "-"
        rows.append([f"plan batch phase (party rule), {executor.name}", f"{len(order):,}",
                     f"{took:.2f} s", f"{took / max(len(order), 1) * 1000:.2f} ms",
                     f"{speed}; best of {len(times)} (slowest {max(times):.2f} s); {same}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=("national", "small"), default="national")
    parser.add_argument("--experts", type=int, default=0, help="override the scale's experts")
    parser.add_argument("--projects", type=int, default=0, help="override the day's projects")
    parser.add_argument("--singles", type=int, default=300,
                        help="projects drawn one by one (coordinator and SQLite)")
    parser.add_argument("--plan-executor", default="local")
    parser.add_argument("--executors", nargs="*",
                        default=["local", "local:1", "local:2", "ray:1", "ray:2"])
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of the batch phase per executor (the best is shown)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch-only", action="store_true",
                        help="only the plan's batch phase on each executor (no Redis)")
    args = parser.parse_args(argv)
    if args.batch_only:
        batch_only(args)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
