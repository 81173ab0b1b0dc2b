"""The coordinator process: Redis (embedded or configured), keys, workflow, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from evalgrid_wire.v1 import operator_pb2_grpc, site_link_pb2_grpc

from coordinator.domain.liveness import Link
from coordinator.domain.rules import load_rules
from coordinator.enrolment import Enrolments
from coordinator.health_port import HealthPort
from coordinator.leadership import Leadership
from coordinator.metrics import CoordinatorMetrics, RpcTimer
from coordinator.notifier import FileOutbox, WebhookNotifier, make_notifier
from coordinator.revocation_feed import CrlFeed
from coordinator.seed_shares import DEFAULT_WAIT
from coordinator.service import OperatorService, SiteLinkService
from coordinator.site_links import default_policy
from coordinator.store.bookings import Fence
from coordinator.store.connection import store_client
from coordinator.store.embedded_redis import EmbeddedRedis, check_server_at
from coordinator.store.errors import STORE_OR_SOCKET_UNAVAILABLE
from coordinator.store.keys import load_or_create_master_key, load_or_create_signing_key
from coordinator.workflow import Workflow
from evalgrid.clock import Clock, SimClock, SystemClock
from evalgrid.datadir import DataDir
from evalgrid.lifecycle import announce, run_until_signalled
from evalgrid.lockout import LockoutPolicy
from evalgrid.pki.signer import ensure_signing_certificate
from evalgrid.revocation import RevocationGuard, Revocations
from evalgrid.serving import Served, start_server
from evalgrid.tls import server_credentials

log = logging.getLogger("evalgrid.coordinator")


@dataclass
class CoordinatorConfig:
    data_dir: Path
    bind: str = "127.0.0.1:0"
    redis_url: str | None = None
    redis_server: str | None = None  # the embedded server's binary (--redis-server)
    sim_clock_start: datetime | None = None
    rules_path: Path | None = None
    heartbeat_interval_ms: int = 2000
    # Site leases run on this clock (the system clock unless a test injects one it moves).
    lease_clock: Clock | None = None
    executor: str = "local"  # batch work (the day plan): local, local:N, ray[:N], ray:auto, ray://
    # Wrong one-time codes allowed per seat, workstation and desk before sign-in locks there.
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    # How notices reach experts: "outbox" (DATA_DIR/outbox/notices.jsonl) or "webhook:URL".
    notifier: str = "outbox"
    # The Prometheus endpoint (coordinator/metrics.py): None for none, 0 for any free port.
    metrics_port: int | None = None
    # How long a day plan waits for the supervisor's seed share before the audited fallback.
    seed_wait: timedelta = DEFAULT_WAIT
    # Lead under a lease against a shared Redis, or stand by (coordinator.leadership).
    failover: bool = False
    # A plain gRPC health port (coordinator/health_port.py): SERVING only while leading.
    health_bind: str | None = None


def open_redis(data: DataDir, redis_url: str | None,
               redis_server: str | None = None) -> tuple[str, EmbeddedRedis | None]:
    """The configured Redis (checked to be in the supported range), or a private one under
    the data directory."""
    if redis_url:
        log.info("store: %s at %s", check_server_at(redis_url), redis_url)
        return redis_url, None
    embedded = EmbeddedRedis(data.redis, server=redis_server).start()
    return embedded.url, embedded


class Coordinator:
    def __init__(self, config: CoordinatorConfig, fence: Fence | None = None) -> None:
        self.config = config
        self.fence = fence  # the leader's fencing token (failover), carried by every booking
        self.data = DataDir(config.data_dir).ensure()
        self.embedded: EmbeddedRedis | None = None
        self.served: Served | None = None
        self.workflow: Workflow | None = None
        self.redis: aioredis.Redis | None = None
        self._schedule: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.revocations: Revocations | None = None
        self.notifier: FileOutbox | WebhookNotifier | None = None
        self.metrics = CoordinatorMetrics()

    async def start(self) -> int:
        # The notifier first: a bad --notifier is refused before anything is started.
        self.notifier = notifier = make_notifier(self.config.notifier,
                                                 self.data.outbox / "notices.jsonl")
        url, self.embedded = open_redis(self.data, self.config.redis_url,
                                        self.config.redis_server)
        self.redis = store_client(url)
        start = self.config.sim_clock_start
        if start is not None:  # resume where this grid's simulated day was, if later
            saved = await Workflow.saved_clock(self.redis)
            start = max(start, saved) if saved is not None else start
        clock: Clock = SimClock(start) if start is not None else SystemClock()
        self.workflow = Workflow(
            redis=self.redis, clock=clock, rules=load_rules(self.config.rules_path),
            master_key=load_or_create_master_key(self.data.keys / "master.key"),
            signing_key=load_or_create_signing_key(self.data.keys / "audit-signing.pem"),
            notifier=notifier,
            reports_dir=self.data.reports,
            liveness=default_policy(self.config.heartbeat_interval_ms),
            lease_clock=self.config.lease_clock,
            lockout=self.config.lockout,
        )
        self.workflow.seed_shares.wait = self.config.seed_wait
        self.workflow.signer_certificate = ensure_signing_certificate(
            self.data.pki, self.workflow.signing_key.public_key())
        self.workflow.bookings.default_fence = self.fence
        await self.workflow.load()
        metrics = self.metrics
        self.workflow.audit.on_retry = metrics.audit_retries.inc
        if isinstance(notifier, WebhookNotifier):
            notifier.on_result = lambda ok: None if ok else metrics.notices_failed.inc()
        self._schedule = asyncio.create_task(self.workflow.run_schedule(), name="schedule")
        # Revocation: the CRL in pki/ is watched, enforced per call, audited and sent to sites.
        self.revocations = Revocations(self.data.pki, owner="coordinator")
        feed = CrlFeed(self.workflow, self.revocations)
        self._tasks = [asyncio.create_task(self.revocations.watch(), name="crl-watch"),
                       asyncio.create_task(feed.run(), name="crl-feed"),
                       asyncio.create_task(metrics.sample(self._figures), name="metrics")]
        if not isinstance(self.workflow.links.lease_clock, SimClock):  # else ticked by hand
            self._tasks.append(asyncio.create_task(self.workflow.faults.run(
                self.config.heartbeat_interval_ms / 2000), name="liveness"))
        site_link = SiteLinkService(self.workflow, self.config.heartbeat_interval_ms,
                                    Enrolments(self.redis, clock, self.data.pki,
                                               self.workflow.master_key, self.workflow.record))
        operator = OperatorService(self.workflow,
                                   sim_clock=self.config.sim_clock_start is not None,
                                   executor=self.config.executor)
        site_link.metrics = operator.metrics = metrics
        self.served = await self._serve([
            (site_link_pb2_grpc.add_SiteLinkServicer_to_server, site_link,
             "evalgrid.v1.SiteLink"),
            (operator_pb2_grpc.add_OperatorServicer_to_server, operator,
             "evalgrid.v1.Operator"),
        ])
        (self.data.root / "coordinator.port").write_text(str(self.served.port))
        if self.config.metrics_port is not None:
            host = self.config.bind.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
            port = metrics.serve(host, self.config.metrics_port)
            (self.data.root / "metrics.port").write_text(str(port))
        log.info("coordinator listening on port %d", self.served.port)
        return self.served.port

    async def _figures(self) -> dict[str, Any]:
        """What the metrics sampler sets: sites by link, queued commands and notices."""
        assert self.workflow is not None and self.redis is not None
        links = self.workflow.links
        sites = {link.value: len(links.liveness.sites_in(link)) for link in Link}
        pending = await links.commands.count(self.workflow.desk.sites)
        queued = self.notifier.queued if isinstance(self.notifier, WebhookNotifier) else 0
        return {"sites": sites, "pending": pending, "notices_queued": queued}

    async def _serve(self, services: list[tuple[Any, Any, str]]) -> Served:
        """Listen on `bind`; with port 0, first on the port this data directory's coordinator
        had (`coordinator.port`): the same command line restarted comes back where agents
        and consoles look. SO_REUSEPORT is off, so a coordinator still alive (frozen) keeps
        its port to itself and the new one takes another instead of sharing it."""
        host, _, port = self.config.bind.rpartition(":")
        recorded = self.data.root / "coordinator.port"
        binds = [self.config.bind]
        if port == "0" and recorded.is_file():
            previous = recorded.read_text().strip()
            if previous.isdigit():
                binds.insert(0, f"{host}:{previous}")
        for i, bind in enumerate(binds):
            try:
                return await self._start_server(bind, services)
            except RuntimeError:
                if i == len(binds) - 1:
                    raise
                log.warning("port %s is taken; listening on another", bind)
        raise AssertionError("unreachable")

    async def _start_server(self, bind: str, services: list[tuple[Any, Any, str]]) -> Served:
        assert self.revocations is not None
        return await start_server(
            bind=bind,
            credentials=server_credentials(self.data.pki, "coordinator", "coordinator"),
            services=services,
            extra_interceptors=[RevocationGuard(self.revocations), RpcTimer(self.metrics)],
            options=[("grpc.so_reuseport", 0)],
        )

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._schedule] if self._schedule else [])]:
            await _cancel(task)
        if self.workflow is not None:
            self.workflow.links.close_all()  # site streams end first, cleanly
        if self.served is not None:
            await self.served.server.stop(grace=1)
        if self.workflow is not None:  # announced draws' intents dropped (else the next
            # start sends their notices again; with the store out it does)
            with contextlib.suppress(TimeoutError, *STORE_OR_SOCKET_UNAVAILABLE):
                await asyncio.wait_for(self.workflow.announced.settle(), timeout=5)
        if isinstance(self.notifier, WebhookNotifier):  # deliver what is queued first
            await asyncio.to_thread(self.notifier.close)
        self.metrics.stop()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded is not None:
            self.embedded.stop()


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel until it ends: on Python 3.11, `asyncio.wait_for` swallows a cancellation that
    races its inner wait completing, and a loop around it would then never stop."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def _health_port(config: CoordinatorConfig) -> HealthPort | None:
    if config.health_bind is None:
        return None
    probe = HealthPort(config.health_bind)
    port = await probe.start()
    announce(f"health: gRPC (plain) on {config.health_bind.rsplit(':', 1)[0]}:{port}")
    return probe


async def run_forever(config: CoordinatorConfig) -> None:
    if config.failover:
        await _lead_or_stand_by(config)
        return
    probe = await _health_port(config)
    coordinator = Coordinator(config)
    port = await coordinator.start()
    if probe is not None:
        await probe.leading(True)
    host = config.bind.rsplit(":", 1)[0]
    notices = (config.notifier if config.notifier.startswith("webhook:")
               else f"outbox {coordinator.data.outbox / 'notices.jsonl'}")
    if coordinator.metrics.port:
        notices += f"; metrics: http://{host}:{coordinator.metrics.port}/metrics"
    announce(f"coordinator ready: gRPC (mutual TLS) on {host}:{port}, port written to "
          f"{coordinator.data.root / 'coordinator.port'}; notices: {notices}; "
          "SIGTERM or Ctrl-C stops it")

    async def stop() -> None:
        if probe is not None:
            await probe.stop()
        await coordinator.stop()

    await run_until_signalled(stop)
    announce("coordinator stopped")


class FailoverError(ValueError):
    """A failover configuration that cannot work; the message says why."""


async def lead_once(leadership: Leadership, config: CoordinatorConfig,
                    probe: HealthPort | None, make: Callable[..., Coordinator] | None = None
                    ) -> None:
    """Take the lease, start, lead until the lease cannot be renewed; then stop.

    The lease is renewed from the moment it is taken, start-up included: a start longer than
    the lease (a large registry to load) would otherwise let it lapse, and a standby would take
    over a coordinator still starting (and be overtaken in turn). Losing the lease while
    starting ends the start."""
    fence = await leadership.acquire()
    coordinator = (make or Coordinator)(config, fence=fence)
    held = asyncio.create_task(leadership.hold(), name="lease")
    try:
        starting = asyncio.create_task(coordinator.start(), name="start")
        await asyncio.wait({held, starting}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.warning("coordinator %s lost its lease while starting", leadership.node)
            await _cancel(starting)
            return
        starting.result()  # a start that failed: stand by again
        if probe is not None:
            await probe.leading(True)
        await held
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("coordinator failed while leading; standing by again")
    finally:
        await _cancel(held)
        if probe is not None:
            await probe.leading(False)
        await coordinator.stop()
        await leadership.resign()


async def _lead_or_stand_by(config: CoordinatorConfig) -> None:
    """Stand by until the lease is ours, lead while it is renewed, then stand by again."""
    if not config.redis_url:
        raise FailoverError("--failover: give --redis-url, the one Redis every coordinator "
                            "shares (the embedded one dies with its process)")
    redis = store_client(config.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    leadership = Leadership(redis)
    probe = await _health_port(config)

    async def lead_forever() -> None:
        while True:
            await lead_once(leadership, config, probe)

    task = asyncio.create_task(lead_forever(), name="leadership")

    async def stop() -> None:
        await _cancel(task)
        if probe is not None:
            await probe.stop()
        await redis.aclose()

    await run_until_signalled(stop)
