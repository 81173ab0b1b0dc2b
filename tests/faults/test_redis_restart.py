"""Redis killed (SIGKILL) and started again under a running coordinator: every acknowledged
write is still there, calls during the outage are refused as retryable (never a crash), and
the coordinator carries on without a restart of its own."""

from __future__ import annotations

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from fault_kit import entries
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.checker import check_grid
from coordinator.store.embedded_redis import EmbeddedRedis
from evalgrid.wire import UNARY_DEADLINE_S


async def test_redis_restart_keeps_acknowledged_writes(grid: Grid) -> None:
    first = focus_projects(grid.province)[0]
    second = next(p for p in grid.province.projects if p.id != first.id)
    await grid.register(first)
    drawn, _ = await grid.draw(first.id)  # acknowledged: the operator has the reply
    seats_before = await _seats(grid, first.id)
    placed_before = await entries(grid, "draw.placed", first.id)
    assert grid.redis_server is not None

    grid.redis_server.kill()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await grid.operator.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    grid.redis_server = EmbeddedRedis(grid.redis_server.directory).start()

    async def answering() -> bool:
        try:
            status = await grid.operator.Status(operator_pb2.StatusRequest(),
                                                timeout=UNARY_DEADLINE_S)
        except grpc.aio.AioRpcError:
            return False
        return status.sites_online == len(grid.province.sites)

    await wait_until(answering, "the coordinator to answer with every site online again")
    assert await _seats(grid, first.id) == seats_before
    assert [e.detail["draw_id"] for e in await entries(grid, "draw.placed", first.id)] == \
        [e.detail["draw_id"] for e in placed_before] == [drawn.draw_id]

    # It rides through: the next project registers, draws and reaches its guest agents.
    await grid.register(second)
    again, notices = await grid.draw(second.id)
    assert again.seats == len(notices) > 0
    sessions = {s.session_id: s.site_id for s in await _seats(grid, second.id)}

    async def delivered() -> bool:
        return all(session in grid.agents[site].booths.reservations
                   for session, site in sessions.items())

    await wait_until(delivered, "the second project's reservations at its guest agents")
    result = await check_grid(grid.data.root, grid.redis_url)
    assert result.audit_intact and result.double_bookings == 0, result.details


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)
