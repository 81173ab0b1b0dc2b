"""The coordinator process: Redis (embedded or configured), keys, workflow, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from evalgrid_wire.v1 import operator_pb2_grpc, site_link_pb2_grpc

from coordinator.domain.rules import load_rules
from coordinator.enrolment import Enrolments
from coordinator.notifier import FileOutbox
from coordinator.revocation_feed import CrlFeed
from coordinator.seed_shares import DEFAULT_WAIT
from coordinator.service import OperatorService, SiteLinkService
from coordinator.site_links import default_policy
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.keys import load_or_create_master_key, load_or_create_signing_key
from coordinator.workflow import Workflow
from evalgrid.clock import Clock, SimClock, SystemClock
from evalgrid.datadir import DataDir
from evalgrid.lifecycle import run_until_signalled
from evalgrid.lockout import LockoutPolicy
from evalgrid.pki import ensure_signing_certificate
from evalgrid.revocation import RevocationGuard, Revocations
from evalgrid.serving import Served, start_server
from evalgrid.tls import server_credentials

log = logging.getLogger("evalgrid.coordinator")


@dataclass
class CoordinatorConfig:
    data_dir: Path
    bind: str = "127.0.0.1:0"
    redis_url: str | None = None
    sim_clock_start: datetime | None = None
    rules_path: Path | None = None
    heartbeat_interval_ms: int = 2000
    # Site leases run on this clock (the system clock unless a test injects one it moves).
    lease_clock: Clock | None = None
    executor: str = "local"  # batch work (the day plan): local, local:N, ray[:N], ray:auto, ray://
    # Wrong one-time codes allowed per seat, workstation and desk before sign-in locks there.
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    # How long a day plan waits for the supervisor's seed share before the audited fallback.
    seed_wait: timedelta = DEFAULT_WAIT


def open_redis(data: DataDir, redis_url: str | None) -> tuple[str, EmbeddedRedis | None]:
    """The configured Redis, or a private one under the data directory."""
    if redis_url:
        return redis_url, None
    embedded = EmbeddedRedis(data.redis).start()
    return embedded.url, embedded


class Coordinator:
    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.data = DataDir(config.data_dir).ensure()
        self.embedded: EmbeddedRedis | None = None
        self.served: Served | None = None
        self.workflow: Workflow | None = None
        self.redis: aioredis.Redis | None = None
        self._schedule: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.revocations: Revocations | None = None

    async def start(self) -> int:
        url, self.embedded = open_redis(self.data, self.config.redis_url)
        self.redis = aioredis.Redis.from_url(url)
        clock: Clock = (SimClock(self.config.sim_clock_start)
                        if self.config.sim_clock_start else SystemClock())
        self.workflow = Workflow(
            redis=self.redis, clock=clock, rules=load_rules(self.config.rules_path),
            master_key=load_or_create_master_key(self.data.keys / "master.key"),
            signing_key=load_or_create_signing_key(self.data.keys / "audit-signing.pem"),
            notifier=FileOutbox(self.data.outbox / "notices.jsonl"),
            reports_dir=self.data.reports,
            liveness=default_policy(self.config.heartbeat_interval_ms),
            lease_clock=self.config.lease_clock,
            lockout=self.config.lockout,
        )
        self.workflow.seed_shares.wait = self.config.seed_wait
        self.workflow.signer_certificate = ensure_signing_certificate(
            self.data.pki, self.workflow.signing_key.public_key())
        await self.workflow.load()
        self._schedule = asyncio.create_task(self.workflow.run_schedule(), name="schedule")
        # Revocation: the CRL in pki/ is watched, enforced per call, audited and sent to sites.
        self.revocations = Revocations(self.data.pki, owner="coordinator")
        feed = CrlFeed(self.workflow, self.revocations)
        self._tasks = [asyncio.create_task(self.revocations.watch(), name="crl-watch"),
                       asyncio.create_task(feed.run(), name="crl-feed")]
        if not isinstance(self.workflow.links.lease_clock, SimClock):  # else ticked by hand
            self._tasks.append(asyncio.create_task(self.workflow.faults.run(
                self.config.heartbeat_interval_ms / 2000), name="liveness"))
        enrolments = Enrolments(self.redis, clock, self.data.pki, self.workflow.master_key,
                                self.workflow._record)
        self.served = await start_server(
            bind=self.config.bind,
            credentials=server_credentials(self.data.pki, "coordinator", "coordinator"),
            services=[
                (site_link_pb2_grpc.add_SiteLinkServicer_to_server,
                 SiteLinkService(self.workflow, self.config.heartbeat_interval_ms,
                                 enrolments),
                 "evalgrid.v1.SiteLink"),
                (operator_pb2_grpc.add_OperatorServicer_to_server,
                 OperatorService(self.workflow,
                                 sim_clock=self.config.sim_clock_start is not None,
                                 executor=self.config.executor),
                 "evalgrid.v1.Operator"),
            ],
            extra_interceptors=[RevocationGuard(self.revocations)],
        )
        (self.data.root / "coordinator.port").write_text(str(self.served.port))
        log.info("coordinator listening on port %d", self.served.port)
        return self.served.port

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._schedule] if self._schedule else [])]:
            await _cancel(task)
        if self.workflow is not None:
            self.workflow.links.close_all()  # site streams end first, cleanly
        if self.served is not None:
            await self.served.server.stop(grace=1)
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded is not None:
            self.embedded.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel until it ends: on Python 3.11, `asyncio.wait_for` swallows a cancellation that
    races its inner wait completing, and a loop around it would then never stop."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def run_forever(config: CoordinatorConfig) -> None:
    coordinator = Coordinator(config)
    await coordinator.start()
    await run_until_signalled(coordinator.stop)
