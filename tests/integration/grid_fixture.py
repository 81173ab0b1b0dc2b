"""The in-process grid on loopback: a real redis-server, the coordinator and every site agent.

`start_grid()` generates a small province (3 cities, 6 sites, 120 workstations, 1,200 experts,
4 projects on one day), makes a test CA with certificates for the coordinator, an operator, an
auditor and each site, starts a private `redis-server` on a unix socket under the data dir,
imports sites/experts/companies (the projects come later, from their host sites), starts the
coordinator on a simulated clock set to the evening before the day, and one `SiteAgent` per
site. It waits until the coordinator counts every site online, and tears everything down in
reverse order whatever happens. What depends on the seed alone (the province files, the
certificates, the store with the province imported) is made once per process and copied into
each grid's own data dir (`_template`).

The data directory lives under /tmp with a short name (`tempfile.mkdtemp(prefix="eg-")`): a unix
socket path is limited to ~100 bytes and pytest's `tmp_path` is too long for it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import grpc
from evalgrid_wire.v1 import (
    booth_pb2,
    booth_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    site_link_pb2,
    site_link_pb2_grpc,
)

from coordinator.domain.model import Expert, Project, Province
from coordinator.notifier import read_outbox
from coordinator.offline import import_province
from coordinator.province.codec.places import site_to_dict
from coordinator.province.codec.projects import project_to_dict
from coordinator.province.files import write_province
from coordinator.province.generator import generate_province
from coordinator.server import Coordinator, CoordinatorConfig
from coordinator.store.embedded_redis import EmbeddedRedis
from evalgrid.clock import SimClock
from evalgrid.datadir import DataDir
from evalgrid.ids import request_id
from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.directory import paths_for
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S, from_window, to_timestamp
from site_agent.agent import AgentConfig, SiteAgent
from site_agent.booth_terminal import BoothTerminal, Score
from site_agent.enrolment import enrol_workstation
from site_agent.inventory import load_inventory

T = TypeVar("T")

DAY = date(2026, 3, 2)
LOCAL = timedelta(hours=8)
# The draw happens the evening before the day (18:00 in UTC+8), as in the demo.
EVENING_BEFORE = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) - LOCAL - timedelta(hours=6)
OPERATOR = "op-alice"
AUDITOR = "aud-bob"
# generate_province needs two guest sites per city: 6 sites give 3 cities.
PROVINCE_SIZE = {"cities": 3, "sites": 6, "workstations": 120, "experts": 1200,
                 "companies": 200, "projects": 4}


async def wait_until(check: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class DoneSeat:
    """What one expert's booth session produced."""

    notice: dict[str, str]
    site_id: str
    workstation_id: str
    session_id: str
    expert_ref: str
    digest: str


@dataclass
class Grid:
    root: Path
    data: DataDir
    province: Province
    redis_url: str
    coordinator: Coordinator
    port: int
    agents: dict[str, SiteAgent]
    agent_ports: dict[str, int]
    operator: operator_pb2_grpc.OperatorStub
    # Every command each agent applied, in order (recorded around SiteAgent.apply).
    commands: dict[str, list[site_link_pb2.CoordinatorCommand]] = field(
        default_factory=lambda: defaultdict(list))
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _booths: list[BoothTerminal] = field(default_factory=list)
    _by_party: dict[tuple[str, str, str], grpc.aio.Channel] = field(default_factory=dict)
    # The coordinator's lease clock, and the Redis server (a fault test may replace either
    # the coordinator or the server: teardown stops the ones the grid holds then).
    lease_clock: SimClock | None = None
    redis_server: EmbeddedRedis | None = None

    # --- lookups -------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def agent_target(self, site_id: str) -> str:
        return f"127.0.0.1:{self.agent_ports[site_id]}"

    @functools.cached_property
    def experts(self) -> dict[str, Expert]:
        return {e.id: e for e in self.province.experts}

    @functools.cached_property
    def projects(self) -> dict[str, Project]:
        return {p.id: p for p in self.province.projects}

    def site_of_venue(self, venue_id: str) -> str:
        return next(s.id for s in self.province.sites for v in s.venues if v.id == venue_id)

    def workstations_of(self, site_id: str) -> list[str]:
        site = next(s for s in self.province.sites if s.id == site_id)
        return [ws.id for v in site.venues for ws in v.workstations]

    @property
    def outbox(self) -> Path:
        return self.data.outbox / "notices.jsonl"

    def notices(self) -> list[dict[str, str]]:
        return read_outbox(self.outbox)

    # --- clients ---------------------------------------------------------------------------

    def channel(self, target: str, role: str, subject: str) -> grpc.aio.Channel:
        """A channel to `target` with the certificate of `role`/`subject` (one per triple)."""
        key = (target, role, subject)
        if key not in self._by_party:
            self._by_party[key] = self.track(
                secure_channel(target, channel_credentials(self.data.pki, role, subject)))
        return self._by_party[key]

    def track(self, channel: grpc.aio.Channel) -> grpc.aio.Channel:
        self._channels.append(channel)
        return channel

    def site_link(self, site_id: str) -> site_link_pb2_grpc.SiteLinkStub:
        return site_link_pb2_grpc.SiteLinkStub(self.channel(self.target, "site", site_id))

    def operator_as(self, role: str, subject: str) -> operator_pb2_grpc.OperatorStub:
        return operator_pb2_grpc.OperatorStub(self.channel(self.target, role, subject))

    def desk(self, site_id: str) -> booth_pb2_grpc.DeskStub:
        return booth_pb2_grpc.DeskStub(
            self.channel(self.agent_target(site_id), "site", site_id))

    def enrol_target(self, site_id: str) -> str:
        """The agent's enrolment port (server-only TLS: for workstations without a cert)."""
        port = self.agents[site_id].enrolment
        assert port is not None
        return f"127.0.0.1:{port.port}"

    async def activation_code(self, site_id: str, workstation_id: str) -> str:
        """The site desk asks for a one-time enrolment code for one of its workstations."""
        reply = await self.desk(site_id).IssueActivationCode(booth_pb2.DeskActivationRequest(
            request_id=request_id(), workstation_id=workstation_id), timeout=UNARY_DEADLINE_S)
        return str(reply.code)

    async def enrol(self, site_id: str, workstation_id: str) -> None:
        """Device-bound enrolment: desk code, key made by the workstation, CSR signed."""
        code = await self.activation_code(site_id, workstation_id)
        await enrol_workstation(pki_dir=self.data.pki, site_id=site_id,
                                workstation_id=workstation_id,
                                agent=self.enrol_target(site_id), activation_code=code)

    async def booth(self, site_id: str, workstation_id: str) -> BoothTerminal:
        """A booth terminal with its own workstation certificate: enrolled with a one-time
        code the first time (the workstation makes its key; the coordinator signs it)."""
        if not paths_for(self.data.pki, "workstation", f"{site_id}/{workstation_id}")[1].exists():
            await self.enrol(site_id, workstation_id)
        terminal = BoothTerminal(pki_dir=self.data.pki, site_id=site_id,
                                 workstation_id=workstation_id,
                                 agent=self.agent_target(site_id))
        self._booths.append(terminal)
        return terminal

    async def board(self, site_id: str) -> booth_pb2.BoardReply:
        reply: booth_pb2.BoardReply = await self.desk(site_id).Board(
            booth_pb2.BoardRequest(), timeout=UNARY_DEADLINE_S)
        return reply

    # --- workflow steps --------------------------------------------------------------------

    async def register(self, project: Project) -> site_link_pb2.RegisterProjectReply:
        reply: site_link_pb2.RegisterProjectReply = await self.site_link(
            project.host_site_id).RegisterProject(site_link_pb2.RegisterProjectRequest(
                request_id=request_id(),
                project_json=json.dumps(project_to_dict(project))),
            timeout=UNARY_DEADLINE_S)
        return reply

    async def register_all(self) -> None:
        for project in self.province.projects:
            reply = await self.register(project)
            assert reply.project_id == project.id and not reply.duplicate

    async def draw(self, project_id: str) -> tuple[operator_pb2.DrawReply, list[dict[str, str]]]:
        """Draw one project; return the reply and the notices that draw sent (in order)."""
        before = len(self.notices())
        reply: operator_pb2.DrawReply = await self.operator.Draw(
            operator_pb2.DrawRequest(request_id=request_id(), project_id=project_id), timeout=60)
        return reply, self.notices()[before:]

    async def reply(self, notice_id: str, accept: bool, reason: str = "") -> str:
        reply: operator_pb2.NoticeReplyReply = await self.operator.ReplyToNotice(
            operator_pb2.NoticeReplyRequest(request_id=request_id(), notice_id=notice_id,
                                            accept=accept, reason=reason), timeout=60)
        return reply.outcome

    async def advance_to(self, when: datetime) -> datetime:
        reply = await self.operator.AdvanceClock(
            operator_pb2.AdvanceClockRequest(to=to_timestamp(when)), timeout=UNARY_DEADLINE_S)
        return reply.now.ToDatetime(tzinfo=UTC)

    async def start(self, project_id: str) -> str:
        reply = await self.operator.StartEvaluation(
            operator_pb2.ProjectRequest(request_id=request_id(), project_id=project_id),
            timeout=60)
        return str(reply.state)

    async def close(self, project_id: str) -> operator_pb2.ProjectReply:
        reply: operator_pb2.ProjectReply = await self.operator.CloseEvaluation(
            operator_pb2.ProjectRequest(request_id=request_id(), project_id=project_id),
            timeout=60)
        return reply

    def held(self, site_id: str) -> dict[str, site_link_pb2.Reserve]:
        """Sessions the site's agent holds now: reserves applied, less releases applied."""
        held: dict[str, site_link_pb2.Reserve] = {}
        for command in self.commands[site_id]:
            kind = command.WhichOneof("body")
            if kind == "reserve":
                held[command.reserve.session_id] = command.reserve
            elif kind == "release":
                held.pop(command.release.session_id, None)
        return held

    async def wait_held(self, expected: Counter[tuple[str, datetime]]) -> None:
        """Wait until each site's agent holds exactly the expected sessions per window start."""
        async def check() -> bool:
            actual: Counter[tuple[str, datetime]] = Counter(
                (site.id, from_window(r.window)[0])
                for site in self.province.sites for r in self.held(site.id).values())
            return actual == expected

        await wait_until(check, f"the guest agents to hold {dict(expected)}")

    async def evaluate_seat(self, notice: dict[str, str]) -> DoneSeat:
        """One expert's day: desk check-in, booth sign-in, a scored and signed sheet."""
        expert = self.experts[notice["expert_id"]]
        site_id = self.site_of_venue(notice["venue_id"])
        checked = await self.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
            request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
            timeout=UNARY_DEADLINE_S)
        booth = await self.booth(site_id, checked.workstation_id)
        await booth.enrol()
        signed_in = await booth.sign_in(expert.id_number, notice["code"])
        form = await booth.form()
        reply = await booth.submit(fair_scores(form), signed=True)
        assert reply.accepted and not reply.duplicate
        await booth.close()
        return DoneSeat(notice, site_id, checked.workstation_id, signed_in.session_id,
                        signed_in.expert_ref, reply.digest)

    async def aclose(self) -> None:
        for booth in self._booths:
            with contextlib.suppress(Exception):
                await booth.close()
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()


def fair_scores(form: Any, share: str = "0.8") -> list[Score]:
    """A complete sheet: every bid, every criterion, `share` of the maximum (2 decimals)."""
    part = Decimal(share)
    return [Score(bid.code, c.id, str((Decimal(c.max_score) * part).quantize(Decimal("0.01"))))
            for bid in form.bids for c in form.criteria]


def _agent_pki(pki: Path, site_id: str, to: Path) -> Path:
    """A site host's PKI folder: the CA certificate and the site's own key and certificate."""
    for path in (pki / "ca.pem", *paths_for(pki, "site", site_id)):
        target = to / path.relative_to(pki)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(path, target)
    return to


def _record_commands(agent: SiteAgent, sink: list[site_link_pb2.CoordinatorCommand]) -> None:
    """Keep a copy of every command the agent applies (test instrumentation only)."""
    apply = agent.apply

    def recording(command: site_link_pb2.CoordinatorCommand) -> site_link_pb2.CommandAck:
        copy = site_link_pb2.CoordinatorCommand()
        copy.CopyFrom(command)
        sink.append(copy)
        return apply(command)

    agent.apply = recording  # type: ignore[method-assign]


def focus_projects(province: Province) -> list[Project]:
    """Projects of the earliest window that experts actually score (criteria on the sheet)."""
    first = min(p.window.start for p in province.projects)
    return sorted((p for p in province.projects
                   if p.window.start == first and p.scoring.criteria), key=lambda p: p.id)


def small_province(seed: int) -> Province:
    """The first province from `seed` on whose earliest window has a scored project.

    The tests walk one such project through every step; trying the next seed keeps them
    independent of how the generator happens to lay out one seed.
    """
    for candidate in range(seed, seed + 50):
        province = generate_province(seed=candidate, day=DAY, **PROVINCE_SIZE)
        if focus_projects(province):
            return province
    raise AssertionError(f"no suitable province from seed {seed} on")


@dataclass(frozen=True)
class _Template:
    root: Path  # a data dir to copy: province files, certificates, master key, the store
    province: Province


_TEMPLATES: dict[int, _Template] = {}


async def _template(seed: int) -> _Template:
    """The parts of a grid's data dir that depend on the seed alone, made once per process:
    the province files, the test CA and its certificates, the master key, and the store with
    the province imported (its append-only file). Making them was most of a grid's start;
    every grid still gets its own copy, and its own redis-server on it."""
    if seed in _TEMPLATES:
        return _TEMPLATES[seed]
    root = Path(tempfile.mkdtemp(prefix="eg-t"))
    atexit.register(shutil.rmtree, root, True)
    data = DataDir(root / "d").ensure()
    province = await asyncio.to_thread(small_province, seed)
    write_province(province, data.province)

    def make_pki() -> None:
        init_ca(data.pki)
        issue(data.pki, "coordinator", "coordinator")
        issue(data.pki, "operator", OPERATOR)
        issue(data.pki, "auditor", AUDITOR)
        for site in province.sites:
            issue(data.pki, "site", site.id)

    await asyncio.to_thread(make_pki)
    server = EmbeddedRedis(data.redis).start()
    try:
        await import_province(data.province, data.root, server.url, include_projects=False)
    finally:
        server.stop()
    _TEMPLATES[seed] = _Template(root, province)
    return _TEMPLATES[seed]


@asynccontextmanager
async def start_grid(seed: int = 7) -> AsyncIterator[Grid]:
    root = Path(tempfile.mkdtemp(prefix="eg-"))
    redis_server: EmbeddedRedis | None = None
    coordinator: Coordinator | None = None
    agents: dict[str, SiteAgent] = {}
    grid: Grid | None = None
    try:
        template = await _template(seed)
        await asyncio.to_thread(shutil.copytree, template.root / "d", root / "d",
                                ignore=shutil.ignore_patterns("*.sock"))
        data = DataDir(root / "d").ensure()
        province = template.province
        redis_server = EmbeddedRedis(data.redis).start()
        # No redis_url: the coordinator attaches to the private server of its data dir.
        # Site leases run on a clock the tests move (tests/faults); left alone, no site's
        # lease ever lapses, however slow the machine.
        lease_clock = SimClock(EVENING_BEFORE)
        # No supervisor takes part unless a test brings one: plans fall back at once (audited).
        coordinator = Coordinator(CoordinatorConfig(
            data_dir=data.root, bind="127.0.0.1:0", sim_clock_start=EVENING_BEFORE,
            lease_clock=lease_clock, seed_wait=timedelta(0)))
        port = await coordinator.start()
        recorded: dict[str, list[site_link_pb2.CoordinatorCommand]] = defaultdict(list)
        agent_ports = {}
        for site in province.sites:
            inventory_path = data.agents / site.id / "inventory.json"
            inventory_path.parent.mkdir(parents=True, exist_ok=True)
            inventory_path.write_text(json.dumps(site_to_dict(site)))
            site_id, inventory = load_inventory(inventory_path)
            # Each agent keeps its own PKI folder, as on its own host: the CRL reaches it only
            # over its link to the coordinator.
            agent_pki = await asyncio.to_thread(_agent_pki, data.pki, site_id,
                                                data.agents / site_id / "pki")
            agent = SiteAgent(AgentConfig(site_id=site_id, pki_dir=agent_pki,
                                          coordinator=f"127.0.0.1:{port}",
                                          data_dir=data.agents / site_id), inventory)
            _record_commands(agent, recorded[site_id])
            agents[site_id] = agent
            agent_ports[site_id] = await agent.start()
        operator_channel = secure_channel(
            f"127.0.0.1:{port}", channel_credentials(data.pki, "operator", OPERATOR))
        grid = Grid(root=root, data=data, province=province, redis_url=redis_server.url,
                    coordinator=coordinator, port=port, agents=agents, agent_ports=agent_ports,
                    operator=operator_pb2_grpc.OperatorStub(operator_channel),
                    commands=recorded, lease_clock=lease_clock, redis_server=redis_server)
        grid.track(operator_channel)

        async def all_online() -> bool:
            status = await grid.operator.Status(operator_pb2.StatusRequest(),
                                                timeout=UNARY_DEADLINE_S)
            return status.sites_online == len(province.sites)

        await wait_until(all_online, "every site agent online", timeout=30)
        yield grid
    finally:
        if grid is not None:
            await grid.aclose()
            coordinator, redis_server = grid.coordinator, grid.redis_server
        for agent in agents.values():
            with contextlib.suppress(Exception):
                await agent.stop()
        if coordinator is not None:
            with contextlib.suppress(Exception):
                await coordinator.stop()
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)
