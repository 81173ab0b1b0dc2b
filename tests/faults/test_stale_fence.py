"""A command carrying a fencing token older than one the agent has applied is refused, over
the wire as well as in the booth state: nothing it says happens."""

from __future__ import annotations

import base64
from typing import Any

from evalgrid_wire.v1 import site_link_pb2
from fault_kit import workflow
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.store.layout import SITE_COMMANDS
from evalgrid.ids import opaque_id
from evalgrid.wire import to_window


async def test_stale_fencing_tokens_are_refused(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    sites = {grid.site_of_venue(n["venue_id"]) for n in notices}
    links = workflow(grid).links
    for site in sites:
        await wait_until(lambda s=site: _drained(grid, s), f"{site} to apply its reserves")
    # The site that applied the highest token: one below it is stale there.
    site_id = max(sites, key=lambda s: grid.agents[s].booths.highest_fence)
    agent = grid.agents[site_id]
    acks: list[site_link_pb2.CommandAck] = []
    acknowledge = links.acknowledge

    async def recording(site: str, ack: site_link_pb2.CommandAck) -> Any:
        if site == site_id:
            acks.append(ack)
        return await acknowledge(site, ack)

    links.acknowledge = recording
    held = dict(agent.booths.reservations)
    highest = agent.booths.highest_fence
    session = next(iter(held.values()))
    free = next(ws for ws in grid.workstations_of(site_id)
                if ws not in {r.workstation_id for r in held.values()})
    assert highest >= 2

    stale_release = site_link_pb2.CoordinatorCommand(
        command_id=opaque_id("cmd"), fence=highest - 1,
        release=site_link_pb2.Release(session_id=session.session_id,
                                      workstation_id=session.workstation_id, reason="stale"))
    stale_reserve = site_link_pb2.CoordinatorCommand(
        command_id=opaque_id("cmd"), fence=1,
        reserve=site_link_pb2.Reserve(session_id=opaque_id("ses"), workstation_id=free,
                                      window=to_window(project.window.start,
                                                       project.window.end)))
    for command in (stale_release, stale_reserve):  # a deposed coordinator's late writes,
        await links.redis.hset(SITE_COMMANDS.format(site_id),  # fences taken long ago
                               command.command_id, command.SerializeToString())
    links.ring(site_id)
    # A stream sends only tokens above what it sent already: the replay comes with the next
    # stream, which sends the whole queue in token order, as after any reconnection.
    assert links.drop(site_id)
    await wait_until(lambda: _drained(grid, site_id), "the stale commands to be answered")

    answers = {a.command_id: a for a in acks}
    for command in (stale_release, stale_reserve):
        ack = answers[command.command_id]
        assert not ack.ok and f"stale token {command.fence}" in ack.error
    assert agent.booths.reservations == held  # neither took effect
    assert agent.booths.highest_fence == highest
    remembered = {r["command"] for r in agent.offline.journal.of_kind("cmd")}
    for command in (stale_release, stale_reserve):  # nor remembered for a restart
        assert base64.b64encode(command.SerializeToString()).decode() not in remembered


async def _drained(grid: Grid, site_id: str) -> bool:
    agent = grid.agents[site_id]
    return agent.connected.is_set() and not await workflow(grid).links.pending(site_id) \
        and bool(agent.booths.reservations)
