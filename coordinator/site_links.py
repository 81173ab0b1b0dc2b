"""Commands to sites, kept in Redis until acknowledged, and the sites' live status.

Each site's pending commands live in a Redis hash (the durable queue); an in-process event is
the doorbell that wakes that site's stream. Every command carries a fencing token from one
counter that only grows, and a stream sends a site's commands in token order, so an agent
can refuse anything older than what it has applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import redis.asyncio as aioredis
from evalgrid_wire.v1 import site_link_pb2

from evalgrid.clock import Clock
from evalgrid.ids import opaque_id
from evalgrid.wire import STATE_NAMES

log = logging.getLogger("evalgrid.coordinator")

FENCE = "fence"



def _pending_key(site_id: str) -> str:
    return f"cmds:{site_id}"


@dataclass
class SiteLive:
    connected: bool = False
    last_seen: datetime | None = None
    workstations: dict[str, str] = field(default_factory=dict)  # ws -> state name
    details: dict[str, str] = field(default_factory=dict)  # ws -> why it is marked faulty
    acked: asyncio.Event = field(default_factory=asyncio.Event)


class SiteLinks:
    def __init__(self, redis: aioredis.Redis, clock: Clock) -> None:
        self.redis = redis
        self.clock = clock
        self.live: dict[str, SiteLive] = defaultdict(SiteLive)
        self._doorbells: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def next_fence(self) -> int:
        return int(await self.redis.incr(FENCE))

    async def enqueue(self, site_id: str, command: site_link_pb2.CoordinatorCommand) -> None:
        """Queue a command durably, then ring the site's doorbell."""
        if not command.command_id:
            command.command_id = opaque_id("cmd")
        if not command.fence:
            command.fence = await self.next_fence()
        await self.redis.hset(_pending_key(site_id), command.command_id,
                              command.SerializeToString())
        self._doorbells[site_id].set()

    def enqueue_in(self, pipe: aioredis.client.Pipeline, site_id: str,
                   command: site_link_pb2.CoordinatorCommand) -> None:
        """Queue inside a caller's MULTI (command id and fence already set); ring later."""
        pipe.hset(_pending_key(site_id), command.command_id, command.SerializeToString())

    def ring(self, site_id: str) -> None:
        self._doorbells[site_id].set()

    async def pending(self, site_id: str) -> list[site_link_pb2.CoordinatorCommand]:
        raw = await self.redis.hgetall(_pending_key(site_id))
        commands = [site_link_pb2.CoordinatorCommand.FromString(
            v if isinstance(v, bytes) else v.encode()) for v in raw.values()]
        return sorted(commands, key=lambda c: c.fence)


    async def commands_for(self, site_id: str) -> AsyncIterator[site_link_pb2.CoordinatorCommand]:
        """Every pending command for the site, in fence order, then new ones as they come."""
        sent_up_to = 0
        bell = self._doorbells[site_id]
        while True:
            bell.clear()
            for command in await self.pending(site_id):
                if command.fence > sent_up_to:
                    sent_up_to = command.fence
                    yield command
            await bell.wait()

    async def acknowledge(self, site_id: str, ack: site_link_pb2.CommandAck) -> None:
        await self.redis.hdel(_pending_key(site_id), ack.command_id)
        if not ack.ok:
            log.warning("site %s refused command %s: %s", site_id, ack.command_id, ack.error)
        live = self.live[site_id]
        live.acked.set()
        live.acked = asyncio.Event()

    def status(self, site_id: str, report: site_link_pb2.StatusReport) -> list[tuple[str, str]]:
        """Record a status report; returns the workstations whose state changed."""
        live = self.live[site_id]
        live.last_seen = self.clock.now()
        changed = []
        for ws in report.workstations:
            name = STATE_NAMES.get(ws.state, "unknown")
            if live.workstations.get(ws.workstation_id) != name or \
                    live.details.get(ws.workstation_id, "") != ws.detail:
                live.workstations[ws.workstation_id] = name
                if ws.detail:
                    live.details[ws.workstation_id] = ws.detail
                else:
                    live.details.pop(ws.workstation_id, None)
                changed.append((ws.workstation_id, name))
        return changed

    def online(self) -> list[str]:
        return sorted(s for s, live in self.live.items() if live.connected)
