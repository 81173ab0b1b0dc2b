"""A server that is not the coordinator answers at the coordinator's address (in the chaos
day: an agent's desk bound on the port a standby coordinator had been given and not yet
taken). gRPC keeps that connection open, so the agent must open a new one to reach the
coordinator once it is there: it does, on the UNIMPLEMENTED that tells it so."""

from __future__ import annotations

from fault_kit import Partition, _connected, start_agent
from grid_fixture import Grid, wait_until


async def test_an_agent_leaves_a_server_that_is_not_the_coordinator(grid: Grid) -> None:
    site_id, other = sorted(grid.agents)[:2]
    relay = Partition(grid.agent_ports[other])  # another site's desk: mutual TLS, no SiteLink
    port = await relay.start()
    try:
        old = grid.agents[site_id]
        await old.stop()
        agent = await start_agent(grid, old, coordinator=f"127.0.0.1:{port}")

        async def refused_there() -> bool:
            return relay.accepted >= 1

        await wait_until(refused_there, "the agent reached the wrong server")
        relay.port = grid.port  # new connections now reach the coordinator
        await wait_until(lambda: _connected(grid, site_id), f"{site_id} at the coordinator",
                         timeout=30.0)
        assert relay.accepted >= 2  # it took a new connection to get there
        assert agent.connected.is_set()
    finally:
        await relay.stop()
