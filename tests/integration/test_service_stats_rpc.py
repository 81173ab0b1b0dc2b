"""Operator.ServiceStats on a real grid: the figures `report service` gives, over gRPC."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import AUDITOR, DAY, LOCAL, Grid, focus_projects


async def test_service_stats_count_each_sign_in_at_its_site(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    await grid.advance_to(project.window.start)
    assert await grid.start(project.id) == "evaluating"
    done = [await grid.evaluate_seat(n) for n in notices[:2]]

    request = operator_pb2.ServiceStatsRequest(from_day=DAY.isoformat(),
                                               to_day=DAY.isoformat())
    reply = await grid.operator.ServiceStats(request, timeout=60)
    sites = {s.site_id: s for s in reply.sites}
    assert set(sites) == {s.id for s in grid.province.sites}
    served = Counter(d.site_id for d in done)
    for site_id, site in sites.items():
        assert site.seat_services == served[site_id], site_id
        assert site.guest_projects == (1 if served[site_id] else 0), site_id
    # The project was registered before DAY: hosted in a period that takes that day in.
    month = await grid.operator.ServiceStats(operator_pb2.ServiceStatsRequest(
        from_day=(DAY - timedelta(days=30)).isoformat(), to_day=DAY.isoformat()), timeout=60)
    assert [s.site_id for s in month.sites if s.host_projects] == [project.host_site_id]
    assert sum(s.seat_services for s in month.sites) == len(done)
    # Workstation use by half-day, in local time: the window's half of DAY.
    half = "AM" if (project.window.start + LOCAL).hour < 12 else "PM"
    for site_id in served:
        assert [(h.day, h.half, h.workstations) for h in sites[site_id].half_days] == [
            (DAY.isoformat(), half, len({d.workstation_id for d in done
                                         if d.site_id == site_id}))]
    cities = {c.city: c for c in reply.cities}
    assert sum(c.seat_services for c in cities.values()) == len(done)
    assert sum(c.sites for c in cities.values()) == len(sites)

    # An auditor may read them too; a day before the grid did anything counts nothing.
    auditor = grid.operator_as("auditor", AUDITOR)
    before = await auditor.ServiceStats(operator_pb2.ServiceStatsRequest(
        from_day=(DAY - timedelta(days=3)).isoformat(),
        to_day=(DAY - timedelta(days=3)).isoformat()), timeout=60)
    assert sum(s.seat_services for s in before.sites) == 0

    # Bad periods name the field.
    for bad, field in ((("2026-13-01", DAY.isoformat()), "from_day"),
                       ((DAY.isoformat(), (DAY - timedelta(days=1)).isoformat()), "to_day"),
                       ((DAY.isoformat(), (DAY + timedelta(days=400)).isoformat()), "to_day")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grid.operator.ServiceStats(operator_pb2.ServiceStatsRequest(
                from_day=bad[0], to_day=bad[1]), timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in str(refused.value.details())
