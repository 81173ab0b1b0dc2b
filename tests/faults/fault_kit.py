"""What the fault tests inject, on top of the in-process grid (tests/integration/grid_fixture).

- `Partition`: a loopback TCP relay between one agent and the coordinator that can hold the
  bytes in either direction (a silent partition: the connection stays open, nothing passes),
  cut every connection, or refuse new ones.
- agents killed without a goodbye and started again on their data directory (the journal);
  the coordinator stopped and started again on the same port and state;
- the lease clock moved by hand, with the other sites heard at the new time before leases are
  checked (so only the silenced site can lapse).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from evalgrid_wire.v1 import booth_pb2
from grid_fixture import Grid, _record_commands, focus_projects, wait_until

from coordinator.domain.audit import AuditEntry
from coordinator.domain.liveness import Link, Transition
from coordinator.server import Coordinator, CoordinatorConfig
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.agent import SiteAgent


class Partition:
    """A relay to `port` that can go silent (`hold`), `cut` connections, or `refuse` new ones."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self.up = asyncio.Event()  # agent -> coordinator flowing
        self.down = asyncio.Event()  # coordinator -> agent flowing
        self.up.set()
        self.down.set()
        self.refusing = False
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, self.up),
                             self._pipe(up_reader, writer, self.down), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    flowing: asyncio.Event) -> None:
        try:
            while data := await reader.read(65536):
                await flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    def hold(self, *, up: bool = True, down: bool = True) -> None:
        if up:
            self.up.clear()
        if down:
            self.down.clear()

    def release(self) -> None:
        self.up.set()
        self.down.set()

    def cut(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def stop(self) -> None:
        self.release()
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def workflow(grid: Grid) -> Any:
    return grid.coordinator.workflow


async def entries(grid: Grid, kind: str, subject: str | None = None) -> list[AuditEntry]:
    return [e for e in await workflow(grid).audit.entries()
            if e.kind == kind and (subject is None or e.subject == subject)]


async def kill_agent(grid: Grid, site_id: str) -> SiteAgent:
    """Stop an agent the way a crash does: no graceful goodbye, only what it fsynced stays."""
    agent = grid.agents[site_id]
    for task in (agent._link_task, agent._forwarding, agent._crl_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for served in (agent.served, agent.enrolment):
        if served is not None:
            await served.server.stop(None)
    await agent.link.channel.close()
    return agent


async def start_agent(grid: Grid, old: SiteAgent, *, coordinator: str | None = None,
                      same_port: bool = True) -> SiteAgent:
    """A new agent process for the same site and data directory (its journal)."""
    site_id = old.config.site_id
    config = dataclasses.replace(
        old.config, coordinator=coordinator or old.config.coordinator,
        bind=f"127.0.0.1:{grid.agent_ports[site_id]}" if same_port else old.config.bind)
    agent = SiteAgent(config, old.inventory)
    _record_commands(agent, grid.commands[site_id])
    grid.agents[site_id] = agent
    grid.agent_ports[site_id] = await agent.start()
    return agent


async def behind_partition(grid: Grid, site_id: str) -> tuple[SiteAgent, Partition]:
    """Restart the site's agent so it reaches the coordinator through a `Partition`."""
    partition = Partition(grid.port)
    port = await partition.start()
    old = grid.agents[site_id]
    await old.stop()
    agent = await start_agent(grid, old, coordinator=f"127.0.0.1:{port}")
    await wait_until(lambda: _connected(grid, site_id), f"{site_id} back through the relay")
    return agent, partition


@dataclasses.dataclass
class SeatBehindPartition:
    """A drawn member checked in at a guest site whose agent reaches the coordinator through a
    relay, the seat pass arrived and the booth enrolled: ready for the link to go silent."""

    project: Any
    notice: dict[str, Any]
    site_id: str
    expert: Any
    agent: SiteAgent
    partition: Partition
    held: Any
    booth: Any


async def seat_behind_partition(grid: Grid) -> SeatBehindPartition:
    """The first focus project drawn and accepted, its first member seated behind a relay
    (the relay is stopped again if the set-up fails; else the caller stops it)."""
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    notice = notices[0]
    site_id = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    agent, partition = await behind_partition(grid, site_id)
    try:
        await grid.advance_to(project.window.start)
        await grid.start(project.id)
        checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
            request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
            timeout=UNARY_DEADLINE_S)
        held = agent.booths.current_reservation(checked.workstation_id)
        assert held is not None

        async def pass_arrived() -> bool:
            return held.session_id in agent.offline.passes

        await wait_until(pass_arrived, "the seat pass sent at evaluation start")
        booth = await grid.booth(site_id, checked.workstation_id)
        await booth.enrol()
    except BaseException:
        await partition.stop()
        raise
    return SeatBehindPartition(project, notice, site_id, expert, agent, partition, held, booth)


async def _connected(grid: Grid, site_id: str) -> bool:
    return bool(grid.agents[site_id].connected.is_set()
                and workflow(grid).links.link(site_id) is Link.CONNECTED)


async def stop_coordinator(grid: Grid) -> datetime:
    """Stop the coordinator (its Redis stays); returns its clock's time, to resume from."""
    now: datetime = grid.coordinator.workflow.now()
    await grid.coordinator.stop()
    return now


async def start_coordinator(grid: Grid, now: datetime) -> Coordinator:
    """A new coordinator on the same port, data, Redis and lease clock."""
    fresh = Coordinator(CoordinatorConfig(
        data_dir=grid.data.root, bind=f"127.0.0.1:{grid.port}", sim_clock_start=now,
        lease_clock=grid.lease_clock, seed_wait=grid.coordinator.config.seed_wait))
    await fresh.start()
    grid.coordinator = fresh
    return fresh


async def restart_coordinator(grid: Grid) -> Coordinator:
    return await start_coordinator(grid, await stop_coordinator(grid))


def quicken(grid: Grid, interval_s: float = 0.1) -> None:
    """Agents heartbeat this often (real time): leases are judged on the lease clock."""
    for agent in grid.agents.values():
        agent.heartbeat_interval_s = interval_s


async def move_leases(grid: Grid, by: timedelta, *, silent: set[str]) -> list[Transition]:
    """Move the lease clock, let every other connected site be heard at the new time, then
    check the leases; returns the transitions."""
    assert grid.lease_clock is not None
    now = grid.lease_clock.advance_to(grid.lease_clock.now() + by)
    links = workflow(grid).links
    others = [s.id for s in grid.province.sites
              if s.id not in silent and links.link(s.id) is Link.CONNECTED]

    async def heard() -> bool:
        return all((links.liveness.view(s).last_heard or now - by) >= now for s in others)

    await wait_until(heard, "the other sites to be heard at the new lease time")
    transitions: list[Transition] = await workflow(grid).faults.check_liveness()
    return transitions


async def silence_until(grid: Grid, site_id: str, link: Link, step: timedelta) -> None:
    """Move the lease clock in steps until `site_id` is in `link` (a few steps at most)."""
    for _ in range(6):
        await move_leases(grid, step, silent={site_id})
        if workflow(grid).links.link(site_id) is link:
            return
    raise AssertionError(f"{site_id} never became {link}")
