"""`evalgrid demo`: the whole grid, for real, on loopback - a day of projects end to end.

Starts a private Redis, the coordinator and one agent per site as separate processes, over
mutual TLS. Host sites register their projects; the operator draws; simulated experts answer
their notices (a few decline: supplementary draws), check in at the guest desk, sign in at the
drawn booth, score and sign; the operator closes each project; an independent checker reads
the final stored state. Time runs on the coordinator's simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from evalgrid_wire.v1 import (
    booth_pb2,
    booth_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    site_link_pb2,
    site_link_pb2_grpc,
)
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evalgrid.datadir import DataDir
from evalgrid.i18n import N_, _
from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S, to_timestamp

OPERATOR = "demo-operator"
SUPERVISOR = "demo-supervisor"  # an auditor certificate: the seed share, nothing else


@dataclass
class DemoOptions:
    data_dir: Path
    sites: int = 18
    projects: int = 24
    seed: int = 2026
    json_out: bool = False
    decline_rate: float = 0.05
    no_show_rate: float = 0.02
    recusal_rate: float = 0.02
    fresh: bool = True
    tui: bool = False  # watch the day in the operator console
    pace_s: float = 0.0  # a pause after each step, so a person can follow it in the console
    redis_server: str | None = None  # the server binary (--redis-server); None: the default
    days: int = 1  # consecutive days, `projects` projects each
    plant_no_show: bool = False  # one expert of the first day never shows up


@dataclass
class DemoStats:
    projects_drawn: int = 0
    draws_refused: int = 0
    declines: int = 0
    no_shows: int = 0
    recusals: int = 0
    redraws: int = 0
    planted: str = ""  # the planted no-show expert
    planted_later_seats: int = 0  # seats the planted expert was drawn for after the first day
    sign_ins: int = 0
    sheets: int = 0
    reports: int = 0
    failed_tenders: int = 0
    errors: list[str] = field(default_factory=list)


class Processes:
    """Child processes of the demo, stopped together whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        child = subprocess.Popen([sys.executable, "-m", "app.cli", *args],
                                 stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env={**os.environ,
                                                                "PYTHONUNBUFFERED": "1"})
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def _wait_for_file(path: Path, child: subprocess.Popen[bytes], what: str,
                         timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if child.poll() is not None:
            raise RuntimeError(f"{what} exited with status {child.returncode} at start")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {timeout} s")


def _more_days(province: Any, days: int) -> Any:
    """The first day's projects again on each following day (same parties and quotas, the
    window and the id moved on by a day)."""
    import dataclasses

    from coordinator.domain.model import Window

    extra = []
    for k in range(1, days):
        shift = timedelta(days=k)
        for p in province.projects:
            when = (p.window.start + timedelta(hours=8) + shift).date()
            extra.append(dataclasses.replace(
                p, id=f"P{when:%Y%m%d}-{p.id.rpartition('-')[2]}",
                window=Window(p.window.start + shift, p.window.end + shift)))
    return dataclasses.replace(province, projects=(*province.projects, *extra))


def _scale(options: DemoOptions) -> dict[str, int]:
    sites = max(options.sites, 6)
    # Every city needs two guest-capable sites for cross-city draws.
    return {"cities": max(3, min(16, sites // 3, sites // 2)), "sites": sites,
            "workstations": sites * 20, "experts": max(1500, sites * 170),
            "companies": max(300, sites * 30), "projects": options.projects}


async def run_demo(options: DemoOptions) -> int:
    from coordinator.checker import check_grid
    from coordinator.offline import import_province
    from coordinator.province.codec.places import site_to_dict
    from coordinator.province.files import write_province
    from coordinator.province.generator import generate_province
    from coordinator.store.embedded_redis import EmbeddedRedis
    from evalgrid.pki.ca import init_ca, issue

    console = Console(stderr=options.json_out)
    started = time.monotonic()
    data = DataDir(options.data_dir)
    if options.fresh and data.root.exists():
        shutil.rmtree(data.root)
    data.ensure()
    console.print("[bold]evalgrid demo[/] - " + _("data in {path}").format(path=data.root))

    # The day: tomorrow in UTC+8; the draw happens the evening before.
    tz8 = timedelta(hours=8)
    day = (datetime.now(UTC) + tz8).date() + timedelta(days=1)
    draw_time = datetime(day.year, day.month, day.day, tzinfo=UTC) - tz8 - timedelta(hours=6)
    province = generate_province(seed=options.seed, day=day, **_scale(options))
    if options.days < 1:
        raise ValueError("days: at least 1")
    province = _more_days(province, options.days)
    # The province's own files (experts' ID and phone numbers in clear) stay outside the data
    # dir and are gone after the import: the store keeps personal data only sealed.
    source = Path(tempfile.mkdtemp(prefix="evalgrid-province-"))
    write_province(province, source)

    init_ca(data.pki)
    issue(data.pki, "coordinator", "coordinator")
    issue(data.pki, "operator", OPERATOR)
    issue(data.pki, "auditor", SUPERVISOR)
    for site in province.sites:
        issue(data.pki, "site", site.id)

    redis_server = EmbeddedRedis(data.redis, server=options.redis_server).start()
    how = redis_server.choice.why if redis_server.choice else "already running"
    console.print(f"store: {redis_server.running} ({how}), on a unix socket")
    processes = Processes(data.logs)
    stats = DemoStats()
    try:
        # Sites, experts, companies from the files; the projects come from their host sites.
        try:
            await import_province(source, data.root, redis_server.url, include_projects=False)
        finally:
            shutil.rmtree(source, ignore_errors=True)
        coordinator = processes.start("coordinator", [
            "coordinator", "--data-dir", str(data.root), "--bind", "127.0.0.1:0",
            "--sim-clock", draw_time.isoformat()])
        port = await _wait_for_file(data.root / "coordinator.port", coordinator, "coordinator")
        target = f"127.0.0.1:{port}"
        agent_ports: dict[str, str] = {}
        agents = {}
        for site in province.sites:
            inventory = data.agents / site.id / "inventory.json"
            inventory.parent.mkdir(parents=True, exist_ok=True)
            inventory.write_text(json.dumps(site_to_dict(site)))
            agents[site.id] = processes.start(f"agent-{site.id}", [
                "agent", "--data-dir", str(data.root), "--site", site.id,
                "--inventory", str(inventory), "--coordinator", target])
        for site_id, child in agents.items():
            agent_ports[site_id] = await _wait_for_file(
                data.agents / site_id / "agent.port", child, f"agent {site_id}")

        operator = operator_pb2_grpc.OperatorStub(secure_channel(
            target, channel_credentials(data.pki, "operator", OPERATOR), retry=True))
        await _wait_online(operator, len(province.sites))
        console.print(_("grid up: coordinator and {n} site agents online (mutual TLS)").format(
            n=len(province.sites)))

        grid = _Grid(data, target, agent_ports, operator, province, stats,
                     random.Random(options.seed), options)
        grid.redis_url = redis_server.url
        if options.tui:
            if not await _day_under_console(grid, data, target):
                await grid.close()
                console.print(_("demo stopped from the console before the day was over"))
                return 1
        else:
            with Progress(TextColumn("{task.description:<28}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=console, transient=False) as progress:
                await grid.play_day(progress)
        await grid.close()
        await _reveal_plans(grid, data, redis_server.url, console)

        check = await check_grid(data.root, redis_server.url)
    finally:
        processes.stop()
        redis_server.stop()

    elapsed = time.monotonic() - started
    summary = {
        "sites": len(province.sites),
        "workstations": sum(len(v.workstations) for s in province.sites for v in s.venues),
        "experts": len(province.experts),
        "projects": len(province.projects),
        "projects_drawn": stats.projects_drawn,
        "projects_reported": stats.reports,
        "failed_tenders": stats.failed_tenders,
        "declines": stats.declines,
        "no_shows": stats.no_shows,
        "recusals": stats.recusals,
        "supplementary_draws": stats.redraws,
        "days": options.days,
        **({"planted_no_show": stats.planted,
            "planted_later_seats": stats.planted_later_seats} if options.plant_no_show else {}),
        "sign_ins": stats.sign_ins,
        "sheets_signed": stats.sheets,
        "double_bookings": check.double_bookings,
        "rule_violations": check.rule_violations,
        "audit_entries": check.audit_entries,
        "audit_intact": check.audit_intact,
        "errors": len(stats.errors),
        "elapsed_s": round(elapsed, 2),
        "data_dir": str(data.root),
    }
    _print_summary(console, summary, stats, check.details)
    if options.json_out:
        print(json.dumps(summary, sort_keys=True))
    ok = (summary["projects_reported"] == summary["projects"] and not check.double_bookings
          and not check.rule_violations and check.audit_intact and not stats.errors)
    return 0 if ok else 1


async def _reveal_plans(grid: _Grid, data: DataDir, redis_url: str, console: Console) -> None:
    """After the awards, as the coordinator's operators would: reveal each day plan's seed so
    `draw verify` can check every project's seed derivation."""
    from coordinator.offline import OfflineError, reveal_plan_seeds

    for day in grid.plan_days:
        try:
            revealed = await reveal_plan_seeds(day.isoformat(), data.root, redis_url)
        except OfflineError as exc:
            grid.stats.errors.append(f"plan reveal {day}: {exc}")
            continue
        console.print(_("plan seed of {day} revealed ({n} plan(s))").format(
            day=day, n=len(revealed)))


async def _day_under_console(grid: _Grid, data: DataDir, target: str) -> bool:
    """Play the day as a task while the operator console runs; True if the day finished.

    The console is an ordinary client of the coordinator's streams: the actors never touch
    it. When the day is over it says so and stays open until the user quits with q; quitting
    earlier stops the day.
    """
    from textual.css.query import NoMatches

    from tui.operator_app import OperatorConsole
    from tui.operator_client import GrpcOperatorClient

    app = OperatorConsole(GrpcOperatorClient(pki_dir=data.pki, coordinator=target,
                                             name=OPERATOR), OPERATOR, banner="DEMO")
    quiet = Progress(console=Console(file=io.StringIO()), disable=True)
    day = asyncio.create_task(grid.play_day(quiet), name="demo-day")

    def finished(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        text = (f"demo day over: {grid.stats.reports} project(s) reported"
                + (f"; error: {error}" if error else "") + ". Press q to quit.")
        with contextlib.suppress(NoMatches):  # the console may not be drawn yet
            app.alert("error" if error else "ok", text)
        app.notify(text, severity="error" if error else "information", timeout=10)

    day.add_done_callback(finished)
    await app.run_async()
    if not day.done():
        day.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await day
        return False
    day.result()  # an actor's crash is the demo's crash, as without the console
    return True


async def _wait_online(operator: operator_pb2_grpc.OperatorStub, sites: int,
                       timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(grpc.aio.AioRpcError):
            status = await operator.Status(operator_pb2.StatusRequest(),
                                           timeout=UNARY_DEADLINE_S)
            if status.sites_online >= sites:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("site agents did not all come online")


class _Grid:
    """The demo's actors: host-site staff, the operator, experts, guest-site desks, booths."""

    def __init__(self, data: DataDir, target: str, agent_ports: dict[str, str],
                 operator: operator_pb2_grpc.OperatorStub, province: Any, stats: DemoStats,
                 rng: random.Random, options: DemoOptions) -> None:
        self.data = data
        self.target = target
        self.agent_ports = agent_ports
        self.operator = operator
        self.province = province
        self.stats = stats
        self.rng = rng
        self.options = options
        self.experts = {e.id: e for e in province.experts}
        self.plan_days: list[date] = []
        self.site_of_venue = {v.id: s.id for s in province.sites for v in s.venues}
        self.projects = {p.id: p for p in province.projects}
        self.drawn: list[str] = []
        self.accepted: list[dict[str, str]] = []
        self._channels: list[grpc.aio.Channel] = []
        self._answered: set[str] = set()
        self._enrolling: dict[str, asyncio.Lock] = {}
        self.redis_url: str | None = None  # the operator's tools use it

    def _channel(self, target: str, role: str, subject: str) -> grpc.aio.Channel:
        channel = secure_channel(target, channel_credentials(self.data.pki, role, subject),
                                 retry=True)
        self._channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def _pace(self, steps: int = 1) -> None:
        if self.options.pace_s > 0:
            await asyncio.sleep(self.options.pace_s * steps)

    async def play_day(self, progress: Progress) -> None:
        """Every day of the demo: registration once, then day by day the plan, the answers
        and the evaluations. No one updates the conduct bars by hand: the coordinator
        follows them from the trail, so day 1's no-show is barred from day 2's plan."""
        await self.register_projects(progress)
        days = sorted({(p.window.start + timedelta(hours=8)).date()  # the demo runs in UTC+8
                       for p in self.projects.values()})
        for n, day in enumerate(days):
            if n:
                # The evening before: the clock moves on (the bars follow by themselves).
                evening = datetime(day.year, day.month, day.day, tzinfo=UTC) \
                    - timedelta(hours=14)
                await self.operator.AdvanceClock(operator_pb2.AdvanceClockRequest(
                    to=to_timestamp(evening)), timeout=UNARY_DEADLINE_S)
                self.drawn, self.accepted = [], []
            await self.draw_all(progress, day)
            await self.answer_notices(progress)
            await self.evaluate_day(progress)
        if self.stats.planted:  # every notice after the first day, replacements included
            from coordinator.notifier import read_outbox

            self.stats.planted_later_seats = sum(
                1 for notice in read_outbox(self.data.outbox / "notices.jsonl")
                if notice["expert_id"] == self.stats.planted and (datetime.fromisoformat(
                    notice["start"]) + timedelta(hours=8)).date() > days[0])

    async def register_projects(self, progress: Progress) -> None:
        from coordinator.province.codec.projects import project_to_dict

        task = progress.add_task(_("host sites register"), total=len(self.projects))
        links: dict[str, site_link_pb2_grpc.SiteLinkStub] = {}
        for project in self.projects.values():
            site = project.host_site_id
            if site not in links:
                links[site] = site_link_pb2_grpc.SiteLinkStub(
                    self._channel(self.target, "site", site))
            await links[site].RegisterProject(site_link_pb2.RegisterProjectRequest(
                request_id=request_id(), project_json=json.dumps(project_to_dict(project))),
                timeout=UNARY_DEADLINE_S)
            progress.advance(task)

    async def supervise(self, day: date) -> None:
        """The supervisor's share of the day's seed (its own auditor certificate): commit, see
        the coordinator's commitment come back, then reveal (seed_protocol.py)."""
        supervisor = operator_pb2_grpc.OperatorStub(
            self._channel(self.target, "auditor", SUPERVISOR))
        secret = secrets.token_bytes(32)
        state = await supervisor.CommitSeedShare(operator_pb2.SeedShareCommit(
            request_id=request_id(), day=day.isoformat(),
            commitment=hashlib.sha256(secret).hexdigest()), timeout=30)
        if not state.coordinator_commitment:
            raise RuntimeError("the coordinator did not commit to its share")
        await supervisor.RevealSeedShare(operator_pb2.SeedShareReveal(
            request_id=request_id(), day=day.isoformat(), secret=secret.hex()), timeout=30)

    async def draw_all(self, progress: Progress, only: date | None = None) -> None:
        """The day plan: one Operator.PlanDay per day draws its projects, in plan order."""
        days = sorted({(p.window.start + timedelta(hours=8)).date()  # the demo runs in UTC+8
                       for p in self.projects.values() if only is None or only == (
                           p.window.start + timedelta(hours=8)).date()})
        total = sum(1 for p in self.projects.values()
                    if (p.window.start + timedelta(hours=8)).date() in days)
        task = progress.add_task(_("three-random draws (plan)"), total=total)
        self.plan_days = sorted(set(self.plan_days) | set(days))
        done = 0
        for day in days:
            summary = None
            try:
                await self.supervise(day)
                async for update in self.operator.PlanDay(operator_pb2.PlanDayRequest(
                        request_id=request_id(), day=day.isoformat()), timeout=600):
                    if update.HasField("summary"):
                        summary = update.summary
                    elif update.phase == "drawing":
                        progress.update(task, completed=done + update.done)
                        await self._pace()
            except grpc.aio.AioRpcError as exc:
                self.stats.errors.append(f"day plan {day}: {exc.details()}")
                continue
            if summary is None:
                self.stats.errors.append(f"day plan {day}: no summary")
                continue
            done += summary.projects
            for outcome in summary.outcomes:
                if outcome.outcome == "drawn":
                    self.drawn.append(outcome.project_id)
                    self.stats.projects_drawn += 1
                else:
                    self.stats.draws_refused += 1
                    self.stats.errors.append(f"draw {outcome.project_id}: {outcome.outcome}: "
                                             f"{outcome.reason}")

    async def answer_notices(self, progress: Progress) -> None:
        """Experts answer their notices; a decline triggers a supplementary draw."""
        from coordinator.notifier import read_outbox

        task = progress.add_task(_("experts answer notices"), total=None)
        outbox = self.data.outbox / "notices.jsonl"
        while True:
            fresh = [n for n in read_outbox(outbox) if n["notice_id"] not in self._answered]
            if not fresh:
                break
            progress.update(task, total=len(self._answered) + len(fresh))
            for notice in fresh:
                self._answered.add(notice["notice_id"])
                accept = self.rng.random() >= self.options.decline_rate
                reply = await self.operator.ReplyToNotice(operator_pb2.NoticeReplyRequest(
                    request_id=request_id(), notice_id=notice["notice_id"], accept=accept,
                    reason="" if accept else "schedule conflict"), timeout=60)
                if accept:
                    self.accepted.append(notice)
                else:
                    self.stats.declines += 1
                    if reply.outcome.endswith("redrawn"):
                        self.stats.redraws += 1
                    else:
                        self.stats.errors.append(f"decline without replacement: "
                                                 f"{reply.outcome}")
                progress.advance(task)

    async def evaluate_day(self, progress: Progress) -> None:
        by_start: dict[str, list[str]] = defaultdict(list)
        for project_id in self.drawn:
            by_start[self.projects[project_id].window.start.isoformat()].append(project_id)
        # An expert knows only the venue and the time from the notice: group by time.
        seats_by_start: dict[str, list[dict[str, str]]] = defaultdict(list)
        for notice in self.accepted:
            seats_by_start[datetime.fromisoformat(notice["start"]).astimezone(UTC).isoformat()
                           ].append(notice)
        task = progress.add_task(_("evaluate and report"), total=len(self.drawn))
        if self.options.plant_no_show and not self.stats.planted and seats_by_start:
            first = seats_by_start[min(seats_by_start)]
            self.stats.planted = min(n["expert_id"] for n in first)  # never shows up
        for start in sorted(by_start):
            await self.operator.AdvanceClock(operator_pb2.AdvanceClockRequest(
                to=to_timestamp(datetime.fromisoformat(start))), timeout=UNARY_DEADLINE_S)
            batch = by_start[start]
            for project_id in batch:
                await self.operator.StartEvaluation(operator_pb2.ProjectRequest(
                    request_id=request_id(), project_id=project_id), timeout=60)
            await self._sessions(seats_by_start[start])
            await self._pace(3)  # the no-shows stand in the operator's queue for a moment
            await self._settle(batch)
            for project_id in batch:
                try:
                    reply = await self.operator.CloseEvaluation(operator_pb2.ProjectRequest(
                        request_id=request_id(), project_id=project_id), timeout=60)
                    self.stats.reports += 1
                    report = json.loads(Path(reply.detail).read_text())
                    if report["report"]["evaluation"].get("failed"):
                        self.stats.failed_tenders += 1
                except grpc.aio.AioRpcError as exc:
                    self.stats.errors.append(f"close {project_id}: {exc.details()}")
                progress.advance(task)
                await self._pace()

    async def _settle(self, batch: list[str]) -> None:
        """The operator's exceptions: no-shows are redrawn; replacements come and score."""
        from coordinator.notifier import read_outbox

        outbox = self.data.outbox / "notices.jsonl"
        for _attempt in range(10):
            # Replacements first: they are notified at the window start and come at once.
            fresh = [n for n in read_outbox(outbox) if n["notice_id"] not in self._answered]
            for notice in fresh:
                self._answered.add(notice["notice_id"])
                await self.operator.ReplyToNotice(operator_pb2.NoticeReplyRequest(
                    request_id=request_id(), notice_id=notice["notice_id"], accept=True),
                    timeout=60)
            await self._sessions(fresh, late=True)
            # Whoever is still not signed in now did not show up.
            missing = 0
            for project_id in batch:
                seats = await self.operator.ProjectSeats(operator_pb2.ProjectRequest(
                    project_id=project_id), timeout=UNARY_DEADLINE_S)
                for seat in seats.seats:
                    if seat.status not in ("notified", "accepted"):
                        continue
                    missing += 1
                    reply = await self.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
                        request_id=request_id(), project_id=project_id,
                        session_id=seat.session_id, reason="no_show",
                        note="not signed in at the window start"), timeout=60)
                    if reply.outcome.endswith("redrawn"):
                        self.stats.redraws += 1
                    else:
                        self.stats.errors.append(f"no-show without replacement in "
                                                 f"{project_id}: {reply.outcome}")
            if not fresh and not missing:
                return

    async def _sessions(self, notices: list[dict[str, str]], *, late: bool = False) -> None:
        """Experts arriving at their venues at once; at most 16 booths busy in the demo."""
        limit = asyncio.Semaphore(16)

        async def one(notice: dict[str, str]) -> None:
            async with limit:
                await self._expert_session(notice, late=late)

        await asyncio.gather(*(one(n) for n in notices))

    async def _enrolled(self, site_id: str, ws: str, desk: booth_pb2_grpc.DeskStub) -> None:
        """The booth PC gets its certificate the real way, once: the desk issues a one-time
        code, the workstation makes its own key and enrols at the agent's enrolment port."""
        from evalgrid.pki.directory import paths_for
        from site_agent.enrolment import enrol_workstation

        async with self._enrolling.setdefault(f"{site_id}/{ws}", asyncio.Lock()):
            if paths_for(self.data.pki, "workstation", f"{site_id}/{ws}")[1].exists():
                return
            code = await desk.IssueActivationCode(booth_pb2.DeskActivationRequest(
                request_id=request_id(), workstation_id=ws), timeout=UNARY_DEADLINE_S)
            port = (self.data.agents / site_id / "enrol.port").read_text().strip()
            await enrol_workstation(pki_dir=self.data.pki, site_id=site_id, workstation_id=ws,
                                    agent=f"127.0.0.1:{port}", activation_code=code.code)

    async def _expert_session(self, notice: dict[str, str], *, late: bool) -> None:
        from site_agent.booth_terminal import BoothTerminal, Score

        expert = self.experts[notice["expert_id"]]
        if expert.id == self.stats.planted:
            self.stats.no_shows += 1
            return
        if not late and self.rng.random() < self.options.no_show_rate:
            self.stats.no_shows += 1  # never arrives; the operator will redraw the seat
            return
        site_id = self.site_of_venue[notice["venue_id"]]
        agent = f"127.0.0.1:{self.agent_ports[site_id]}"
        try:
            desk = booth_pb2_grpc.DeskStub(self._channel(agent, "site", site_id))
            checked = await desk.CheckIn(booth_pb2.DeskCheckInRequest(
                request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
                timeout=UNARY_DEADLINE_S)
            ws = checked.workstation_id
            await self._enrolled(site_id, ws, desk)
            booth = BoothTerminal(pki_dir=self.data.pki, site_id=site_id, workstation_id=ws,
                                  agent=agent)
            try:
                await booth.enrol()
                await booth.sign_in(expert.id_number, notice["code"])
                self.stats.sign_ins += 1
                form = await booth.form()
                if not late and self.rng.random() < self.options.recusal_rate:
                    reply_r = await booth.declare_recusal("former employee of a bidder")
                    self.stats.recusals += 1
                    if reply_r.outcome.endswith("redrawn"):
                        self.stats.redraws += 1
                    return
                scores = []
                quality = {b.code: self.rng.uniform(0.55, 0.95) for b in form.bids}
                for bid in form.bids:
                    for c in form.criteria:
                        top = Decimal(c.max_score)
                        value = top * Decimal(str(round(min(1.0, max(
                            0.0, quality[bid.code] + self.rng.uniform(-0.08, 0.08))), 2)))
                        if c.objective:
                            value = top * Decimal(str(round(quality[bid.code], 1)))
                        scores.append(Score(bid.code, c.id, str(value.quantize(Decimal("0.01")))))
                await booth.submit(scores, signed=False)
                reply = await booth.submit(scores, signed=True)
                if reply.accepted:
                    self.stats.sheets += 1
            finally:
                await booth.close()
        except grpc.aio.AioRpcError as exc:
            self.stats.errors.append(f"session for notice {notice['notice_id']}: "
                                     f"{exc.code().name} {exc.details()}")


def _print_summary(console: Console, summary: dict[str, Any], stats: DemoStats,
                   details: list[str]) -> None:
    table = Table(title=_("evalgrid demo - summary"), show_header=False)
    for key, value in summary.items():
        table.add_row(_(key.replace("_", " ")), str(value))
    console.print(table)
    for error in stats.errors[:10]:
        console.print(f"[red]{_('error:')}[/] {error}")
    for detail in details[:10]:
        console.print(f"[red]{_('violation:')}[/] {detail}")
    if summary["projects_reported"] == summary["projects"] and not details and not stats.errors:
        console.print("[green]" + _("every project reported; no double booking; no rule "
                                    "violation") + "[/]")
    console.print(_("reports: {path}  -  try `{export}` then `evalgrid draw verify d.json`").format(
        path=Path(summary["data_dir"]) / "reports",
        export=f"evalgrid draw export PROJECT --out d.json --data-dir {summary['data_dir']}"))


# The summary's lines, as `_print_summary` shows them.
SUMMARY_WORDS = (
    N_("sites"), N_("workstations"), N_("experts"), N_("projects"), N_("projects drawn"),
    N_("projects reported"), N_("failed tenders"), N_("declines"), N_("no shows"),
    N_("recusals"), N_("supplementary draws"), N_("days"), N_("planted no show"),
    N_("planted later seats"), N_("sign ins"), N_("sheets signed"), N_("double bookings"),
    N_("rule violations"), N_("audit entries"), N_("audit intact"), N_("errors"),
    N_("elapsed s"), N_("data dir"))
