"""The coordinator's picture of the sites' workstations: those out of service are kept as the
reports come, not scanned for at every draw."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis
from evalgrid_wire.v1 import common_pb2, site_link_pb2
from hypothesis import given
from hypothesis import strategies as st

from coordinator.site_links import OUT_OF_SERVICE, SiteLinks
from evalgrid.clock import SimClock
from evalgrid.wire import STATE_NAMES

STATES = sorted(STATE_NAMES)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@given(st.lists(st.tuples(st.sampled_from(["S1", "S2"]),
                          st.lists(st.tuples(st.sampled_from(["W1", "W2", "W3"]),
                                             st.sampled_from(STATES)), max_size=4)),
                max_size=12))
def test_out_of_service_is_every_workstation_last_reported_so(
        reports: list[tuple[str, list[tuple[str, int]]]]) -> None:
    links = SiteLinks(aioredis.Redis(), SimClock(T0))  # no command is sent
    for site, rows in reports:
        links.status(site, site_link_pb2.StatusReport(workstations=[
            site_link_pb2.WorkstationStatus(workstation_id=f"{site}-{ws}", state=state)
            for ws, state in rows]))
        last = {ws: state for live in links.live.values()
                for ws, state in live.workstations.items()}
        assert links.out_of_service == {ws for ws, s in last.items() if s in OUT_OF_SERVICE}
    assert {STATE_NAMES[common_pb2.WORKSTATION_STATE_FAULT],
                              STATE_NAMES[common_pb2.WORKSTATION_STATE_OFFLINE]} == OUT_OF_SERVICE
