"""Commands to sites, kept in Redis until acknowledged, and the sites' live status.

Each site's pending commands live in a Redis hash (the durable queue); an in-process event is
the doorbell that wakes that site's stream. Every command carries a fencing token from one
counter that only grows, and a stream sends a site's commands in token order, so an agent
can refuse anything older than what it has applied.

Liveness (coordinator/domain/liveness.py) is fed from here: every message a site sends renews
its lease, on the lease clock (real time in production, injectable in tests); a site has at
most one stream: a new one ends the older (so no command is sent on two streams at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import redis.asyncio as aioredis
from evalgrid_wire.v1 import site_link_pb2

from coordinator.domain.liveness import Link, Liveness, LivenessPolicy, Transition
from coordinator.store.site_commands import SiteCommands
from evalgrid.clock import Clock, SystemClock
from evalgrid.ids import opaque_id
from evalgrid.tls import KEEPALIVE_OPTIONS
from evalgrid.wire import STATE_NAMES

log = logging.getLogger("evalgrid.coordinator")



def keepalive_bound() -> timedelta:
    """How long gRPC keepalive may take to notice a dead peer: ping interval + ping timeout."""
    options = dict(KEEPALIVE_OPTIONS)
    return timedelta(milliseconds=options["grpc.keepalive_time_ms"]
                     + options["grpc.keepalive_timeout_ms"])


def default_policy(heartbeat_interval_ms: int) -> LivenessPolicy:
    """Lease of 3 intervals; lost after twice the keepalive bound (at least 2 minutes), and
    as long a failover period after a coordinator start."""
    bound = keepalive_bound()
    lost = max(timedelta(minutes=2), 2 * bound)
    return LivenessPolicy(heartbeat_interval=timedelta(milliseconds=heartbeat_interval_ms),
                          lost_after=lost, failover=lost, keepalive_bound=bound)


#: Workstation states no draw or move offers.
OUT_OF_SERVICE: Final = frozenset({"fault", "offline"})


@dataclass
class SiteLive:
    connected: bool = False
    last_seen: datetime | None = None
    workstations: dict[str, str] = field(default_factory=dict)  # ws -> state name
    details: dict[str, str] = field(default_factory=dict)  # ws -> why it is marked faulty
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    # Reported faulty and not reported working since: only such a workstation (or one not yet
    # seen since this coordinator started) can close a workstation incident when it works.
    faulty: set[str] = field(default_factory=set)
    back: list[str] = field(default_factory=list)  # of the last report: working again


class SiteLinks:
    def __init__(self, redis: aioredis.Redis, clock: Clock, *,
                 liveness: LivenessPolicy | None = None,
                 lease_clock: Clock | None = None) -> None:
        self.redis = redis
        self.commands = SiteCommands(redis)
        self.clock = clock
        self.live: dict[str, SiteLive] = defaultdict(SiteLive)
        # Workstations last reported in an OUT_OF_SERVICE state, any site: kept as reports
        # come (every draw leaves them out; a national grid reports 30,000 workstations).
        self.out_of_service: set[str] = set()
        self._doorbells: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.lease_clock: Clock = lease_clock or SystemClock()
        self.liveness = Liveness(liveness or default_policy(2000),
                                 started_at=self.lease_clock.now())
        self._stream_stops: dict[str, list[asyncio.Event]] = defaultdict(list)
        self.closing = False

    # --- liveness --------------------------------------------------------------------------

    def heard(self, site_id: str) -> Transition | None:
        self.live[site_id].last_seen = self.clock.now()
        return self.liveness.heard(site_id, self.lease_clock.now())

    def stream_opened(self, site_id: str) -> tuple[Transition | None, asyncio.Event]:
        """A new stream of the site: older ones are told to end; returns its own stop event."""
        for older in self._stream_stops[site_id]:
            older.set()
        stop = asyncio.Event()
        self._stream_stops[site_id].append(stop)
        live = self.live[site_id]
        live.connected = True
        live.last_seen = self.clock.now()
        return self.liveness.stream_opened(site_id, self.lease_clock.now()), stop

    def stream_closed(self, site_id: str, stop: asyncio.Event) -> Transition | None:
        stops = self._stream_stops[site_id]
        if stop in stops:
            stops.remove(stop)
        self.live[site_id].connected = bool(stops)
        return self.liveness.stream_closed(site_id, self.lease_clock.now())

    def close_all(self) -> None:
        """Shutting down: end every stream now and open no new one (agents reconnect to the
        next coordinator; grpc's own shutdown may wait on a stream that never yields)."""
        self.closing = True
        for site_id in list(self._stream_stops):
            self.drop(site_id)

    def drop(self, site_id: str) -> bool:
        """End the site's stream(s) now (the agent reconnects): True if one was open."""
        stops = self._stream_stops.get(site_id, [])
        for stop in stops:
            stop.set()
        return bool(stops)

    def tick(self) -> list[Transition]:
        return self.liveness.tick(self.lease_clock.now())

    def link(self, site_id: str) -> Link:
        return self.liveness.link(site_id)

    async def current_fence(self) -> int:
        """The last fence handed out (an agent that registers starts from it)."""
        return await self.commands.current_fence()

    async def enqueue(self, site_id: str, command: site_link_pb2.CoordinatorCommand) -> None:
        """Queue a command durably with the next fence (set on `command`), then ring the
        site's doorbell."""
        if not command.command_id:
            command.command_id = opaque_id("cmd")
        command.ClearField("fence")  # taken as it is queued
        command.fence = await self.commands.queue(site_id, command.command_id,
                                                  command.SerializeToString())
        self._doorbells[site_id].set()

    @staticmethod
    def enqueue_in(pipe: Any, site_id: str,
                   command: site_link_pb2.CoordinatorCommand) -> None:
        """Queue inside a caller's MULTI or placement writes (command id set; the fence is
        taken as it is queued, `command.fence` left unset); ring later."""
        command.ClearField("fence")
        SiteCommands.stage_queue(pipe, site_id, command.command_id, command.SerializeToString())

    def ring(self, site_id: str) -> None:
        self._doorbells[site_id].set()

    async def pending(self, site_id: str) -> list[site_link_pb2.CoordinatorCommand]:
        commands = [site_link_pb2.CoordinatorCommand.FromString(raw)
                    for raw in await self.commands.pending(site_id)]
        return sorted(commands, key=lambda c: c.fence)


    async def commands_for(self, site_id: str) -> AsyncIterator[site_link_pb2.CoordinatorCommand]:
        """Every pending command for the site, in fence order, then new ones as they come."""
        sent_up_to = 0
        bell = self._doorbells[site_id]
        while True:
            bell.clear()
            # Shielded: a stream ended mid-read (dropped, superseded) must not cancel a Redis
            # reply half-read, which would leave the connection out of step for the next user.
            for command in await asyncio.shield(self.pending(site_id)):
                if command.fence > sent_up_to:
                    sent_up_to = command.fence
                    yield command
            await bell.wait()

    async def acknowledge(self, site_id: str, ack: site_link_pb2.CommandAck) -> None:
        await self.commands.done(site_id, ack.command_id)
        if not ack.ok:
            log.warning("site %s refused command %s: %s", site_id, ack.command_id, ack.error)
        live = self.live[site_id]
        live.acked.set()
        live.acked = asyncio.Event()

    def status(self, site_id: str, report: site_link_pb2.StatusReport) -> list[tuple[str, str]]:
        """Record a status report; returns the workstations whose state changed (and keeps,
        for `back_in_service`, those of them working again after a fault)."""
        live = self.live[site_id]
        live.last_seen = self.clock.now()
        changed = []
        live.back = []
        for ws in report.workstations:
            name = STATE_NAMES.get(ws.state, "unknown")
            before = live.workstations.get(ws.workstation_id)
            if before != name or \
                    live.details.get(ws.workstation_id, "") != ws.detail:
                if name == "fault":
                    live.faulty.add(ws.workstation_id)
                elif name != "offline" and (before is None or ws.workstation_id in live.faulty):
                    live.faulty.discard(ws.workstation_id)
                    live.back.append(ws.workstation_id)
                live.workstations[ws.workstation_id] = name
                if name in OUT_OF_SERVICE:
                    self.out_of_service.add(ws.workstation_id)
                else:
                    self.out_of_service.discard(ws.workstation_id)
                if ws.detail:
                    live.details[ws.workstation_id] = ws.detail
                else:
                    live.details.pop(ws.workstation_id, None)
                changed.append((ws.workstation_id, name))
        return changed

    def back_in_service(self, site_id: str) -> list[str]:
        """Workstations the site's last recorded report shows working after a fault (or for
        the first time since start): the only ones worth checking for an open incident, so a
        busy status stream (thousands of changes a second) does not read the incidents from
        Redis once per change."""
        return self.live[site_id].back

    def online(self) -> list[str]:
        """Sites whose lease holds (a stream open but silent past its lease does not count)."""
        return self.liveness.sites_in(Link.CONNECTED)
