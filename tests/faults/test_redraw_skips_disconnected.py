"""Supplementary draws place no replacement at a site recorded as disconnected: its agent
cannot receive the reservation, and the member would be sent to a dead site."""

from __future__ import annotations

from evalgrid_wire.v1 import operator_pb2
from fault_kit import kill_agent, workflow
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.domain.liveness import Link
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_replacements_avoid_disconnected_sites(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    await grid.draw(project.id)
    seats = (await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)).seats
    used = {s.site_id for s in seats}
    # Every guest site not already used is cut off: a replacement may only go where the
    # committee already sits (another room) or nowhere.
    cut = [s.id for s in grid.province.sites
           if s.id not in used and s.id != project.host_site_id]
    assert cut
    for site_id in cut:
        await kill_agent(grid, site_id)

    async def disconnected() -> bool:
        return all(workflow(grid).links.link(s) is Link.DISCONNECTED for s in cut)

    await wait_until(disconnected, "the cut sites to be recorded as disconnected")
    down = workflow(grid).down_workstations(unreachable=True)
    for site_id in cut:
        assert grid.workstations_of(site_id) and set(grid.workstations_of(site_id)) <= down
        assert not set(grid.workstations_of(site_id)) & workflow(grid).down_workstations()

    for seat in list(seats)[:2]:
        outcome = await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
            request_id=request_id(), project_id=project.id, session_id=seat.session_id,
            reason="leave", note="filed a leave"), timeout=UNARY_DEADLINE_S)
        assert outcome.outcome.startswith("left")
    after = (await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)).seats
    placed = {s.site_id for s in after if s.session_id not in {x.session_id for x in seats}}
    assert not placed & set(cut)
