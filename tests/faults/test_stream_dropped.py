"""A dropped stream: the agent reconnects, unacknowledged commands are sent again once, and
none takes effect twice; commands queued while the site is away arrive once it is back."""

from __future__ import annotations

from collections import Counter

from evalgrid_wire.v1 import operator_pb2, site_link_pb2
from fault_kit import behind_partition, workflow
from grid_fixture import Grid, focus_projects, wait_until

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_a_lost_ack_is_resent_once_and_applied_once(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    agent, partition = await behind_partition(grid, site_id)
    links = workflow(grid).links
    try:
        await wait_until(lambda: _drained(grid, site_id), f"{site_id} to ack its reserves")
        # (Counted from here: a restart before the acks were out may repeat the draw's.)
        base = len(grid.commands[site_id])
        seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
            project_id=project.id), timeout=UNARY_DEADLINE_S)
        seat = next(s for s in seats.seats if s.site_id == site_id)
        assert seat.session_id in agent.booths.reservations
        fence_before = agent.booths.highest_fence

        # Commands reach the agent, its acks do not reach the coordinator.
        partition.hold(up=True, down=False)
        seen = len(grid.commands[site_id])
        await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
            request_id=request_id(), project_id=project.id, session_id=seat.session_id,
            reason="leave", note="filed a leave"), timeout=UNARY_DEADLINE_S)
        await wait_until(lambda: _released(grid, site_id, seat.session_id),
                         "the agent to apply the release")

        async def all_applied() -> bool:  # the redraw may have queued more for this site
            applied = {c.command_id for c in grid.commands[site_id][seen:]}
            return {c.command_id for c in await links.pending(site_id)} <= applied

        await wait_until(all_applied, "every queued command to be applied at the agent")
        sent = {c.command_id for c in grid.commands[site_id][seen:]}
        pending = {c.command_id for c in await links.pending(site_id)}
        assert sent and sent == pending  # applied there, never acknowledged here

        partition.cut()  # the stream drops with the acks in flight
        partition.release()
        await wait_until(lambda: _drained(grid, site_id), "the resent commands to be acked")
        applied = Counter(c.command_id for c in grid.commands[site_id][base:])
        assert {applied[c] for c in sent} == {2}  # each sent again exactly once
        assert all(n == 1 for c, n in applied.items() if c not in sent)
        # ... and none took effect twice: the session is released, nothing else moved.
        assert seat.session_id not in agent.booths.reservations
        assert agent.booths.highest_fence >= fence_before
        held = [(r.workstation_id, r.start) for r in agent.booths.reservations.values()]
        assert len(held) == len(set(held))

        # While the site cannot reconnect, a command waits in Redis; it arrives once, after.
        partition.refusing = True
        partition.cut()
        await wait_until(lambda: _offline(grid, site_id), f"{site_id} to lose its stream")
        ping = site_link_pb2.CoordinatorCommand(ping=site_link_pb2.Ping())
        await links.enqueue(site_id, ping)
        assert [c.command_id for c in await links.pending(site_id)] == [ping.command_id]
        partition.refusing = False
        await wait_until(lambda: _drained(grid, site_id), "the queued command to arrive")
        assert Counter(c.command_id for c in grid.commands[site_id])[ping.command_id] == 1
    finally:
        await partition.stop()


async def _drained(grid: Grid, site_id: str) -> bool:
    agent = grid.agents[site_id]
    return agent.connected.is_set() and not await workflow(grid).links.pending(site_id)


async def _released(grid: Grid, site_id: str, session_id: str) -> bool:
    return session_id not in grid.agents[site_id].booths.reservations


async def _offline(grid: Grid, site_id: str) -> bool:
    return not grid.agents[site_id].connected.is_set()
