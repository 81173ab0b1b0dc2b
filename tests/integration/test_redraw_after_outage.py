"""A departure stored just before the store went away, and never retried, is redrawn by the
schedule's next pass: the committee is whole again without anyone asking twice."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.workflow import REDRAW_PENDING, Workflow


async def test_a_decline_cut_off_by_an_outage_is_redrawn_at_the_next_pass(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    real = workflow.bookings.release
    cut: list[int] = []

    async def outage(*args: Any, **kwargs: Any) -> Any:
        if not cut:  # the decline is stored; then the store goes away
            cut.append(1)
            raise ConnectionError("Redis went away")
        return await real(*args, **kwargs)

    workflow.bookings.release = outage  # type: ignore[method-assign]
    with pytest.raises(grpc.aio.AioRpcError):
        await grid.reply(notices[0]["notice_id"], False, "ill")
    assert await workflow.redis.scard(REDRAW_PENDING) == 1  # the outage left it pending

    before = len(grid.notices())
    workflow._schedule_wake.set()  # the next pass: no retry of the decline comes

    async def whole() -> bool:
        seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
            project_id=focus.id), timeout=30)
        active = [s for s in seats.seats if s.status not in ("declined",)]
        return len(active) == len(notices) and len(grid.notices()) == before + 1 \
            and await workflow.redis.scard(REDRAW_PENDING) == 0

    await wait_until(whole, "the replacement drawn at the schedule's pass")
    assert grid.notices()[-1]["expert_id"] != notices[0]["expert_id"]
