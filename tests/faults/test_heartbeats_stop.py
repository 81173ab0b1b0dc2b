"""A guest site that goes silent is disconnected when its lease lapses, declared lost after the
grace period, and - before the window - its members are redrawn elsewhere; when it is heard
again it is reconnected and told to release the seats it lost."""

from __future__ import annotations

from datetime import timedelta

from evalgrid_wire.v1 import operator_pb2
from fault_kit import behind_partition, entries, move_leases, quicken, silence_until, workflow
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.domain.liveness import Link
from evalgrid.wire import UNARY_DEADLINE_S


async def test_silent_site_is_disconnected_then_lost_and_redrawn(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    # Which guest sites serve the project is known only after the draw: then the agent of
    # the first seat's site is restarted behind a relay (its journal keeps the seats).
    _, notices = await grid.draw(project.id)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    at_site = {n["notice_id"] for n in notices if grid.site_of_venue(n["venue_id"]) == site_id}
    agent, partition = await behind_partition(grid, site_id)
    try:
        await wait_until(lambda: _holds(grid, site_id, len(at_site)),
                         f"{site_id} to hold its seats again after its restart")
        quicken(grid)
        partition.hold()  # the connection stays open; nothing passes either way

        policy = workflow(grid).links.liveness.policy
        await silence_until(grid, site_id, Link.DISCONNECTED, policy.lease + timedelta(seconds=1))
        (lapsed,) = [e for e in await entries(grid, "site.disconnected", site_id)
                     if e.detail["reason"].startswith("no heartbeat")]
        assert lapsed.detail["was"] == "connected"
        assert await entries(grid, "site.lost", site_id) == []

        moved = await move_leases(grid, policy.lost_after, silent={site_id})
        assert [(t.site_id, t.after) for t in moved] == [(site_id, Link.LOST)]
        (lost,) = await entries(grid, "site.lost", site_id)
        assert lost.detail["silent_s"] >= policy.lost_after.total_seconds()

        # Before the window: every seat at the lost site was redrawn, with the reason.
        seats = await _seats(grid, project.id)
        displaced = [s for s in seats if s.site_id == site_id]
        assert displaced and all(s.status == "displaced" for s in displaced)
        reasons = [e.detail["reason"] for e in await entries(grid, "seat.displaced", project.id)]
        assert reasons == [f"guest site {site_id} lost"] * len(displaced)
        active = [s for s in seats if s.status != "displaced"]
        assert all(s.site_id != site_id for s in active)  # never redrawn into the lost site
        if len(active) < project.drawn_seats:  # this province had no replacement: said so
            assert await entries(grid, "fault.incident_opened", project.id)
        status = await grid.operator.Status(operator_pb2.StatusRequest(),
                                            timeout=UNARY_DEADLINE_S)
        assert status.sites_lost == 1
        watch = grid.operator.WatchGrid(operator_pb2.WatchGridRequest())
        snapshot = await watch.read()
        watch.cancel()
        (site,) = [x for x in snapshot.sites if x.site_id == site_id]
        assert (site.link, site.online) == ("lost", False)

        # The site comes back: reconnected (audited as such), and it releases what it lost.
        before = len(await entries(grid, "site.reconnected", site_id))
        partition.release()

        async def back() -> bool:
            return len(await entries(grid, "site.reconnected", site_id)) > before

        await wait_until(back, f"{site_id} to be heard again")
        again = (await entries(grid, "site.reconnected", site_id))[-1]
        assert again.detail["was"] == "lost" and workflow(grid).links.link(site_id) is \
            Link.CONNECTED
        gone = {s.session_id for s in displaced}
        await wait_until(lambda: _released(grid, site_id, gone),
                         f"{site_id} to release the seats it lost")
        assert not gone & set(agent.booths.reservations)
    finally:
        await partition.stop()


async def _holds(grid: Grid, site_id: str, count: int) -> bool:
    return len(grid.agents[site_id].booths.reservations) == count


async def _released(grid: Grid, site_id: str, sessions: set[str]) -> bool:
    return not sessions & set(grid.agents[site_id].booths.reservations)


async def _seats(grid: Grid, project_id: str) -> list[operator_pb2.SeatInfo]:
    reply = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    return list(reply.seats)
