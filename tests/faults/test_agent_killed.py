"""An agent killed mid-evaluation and started again: it holds its seats and sign-ins from its
journal before the coordinator answers, signed sheets are intact, nothing is double-booked,
and the member still signed in carries on."""

from __future__ import annotations

from collections import Counter

from evalgrid_wire.v1 import booth_pb2
from fault_kit import entries, kill_agent, start_agent
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from coordinator.checker import check_grid
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_killed_agent_restarts_from_its_journal(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    by_site = Counter(grid.site_of_venue(n["venue_id"]) for n in notices)
    site_id = next((s for s, n in by_site.most_common() if n >= 2), None) or \
        by_site.most_common(1)[0][0]
    mine = [n for n in notices if grid.site_of_venue(n["venue_id"]) == site_id]
    await grid.advance_to(project.window.start)
    await grid.start(project.id)

    # The first member signs a sheet; the second (if the site has one) is mid-way.
    done = await grid.evaluate_seat(mine[0])
    working = None
    if len(mine) > 1:
        expert = grid.experts[mine[1]["expert_id"]]
        checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
            request_id=request_id(), id_number=expert.id_number, code=mine[1]["code"]),
            timeout=UNARY_DEADLINE_S)
        booth = await grid.booth(site_id, checked.workstation_id)
        await booth.enrol()
        working = await booth.sign_in(expert.id_number, mine[1]["code"])
        draft = await booth.submit(fair_scores(await booth.form(), "0.6"), signed=False)
        assert draft.accepted
        await booth.close()
    before = dict(grid.agents[site_id].booths.reservations)

    old = await kill_agent(grid, site_id)
    agent = await start_agent(grid, old)
    # From its journal alone (before the coordinator has answered anything):
    assert agent.booths.reservations == before
    assert agent.booths.booths[done.workstation_id].submitted
    if working is not None:
        booth_state = agent.booths.booths[checked.workstation_id]
        assert booth_state.signed_in_session == working.session_id
        assert booth_state.expert_ref == working.expert_ref

    await wait_until(lambda: _connected(grid, site_id), "the restarted agent to reconnect")
    held = [(r.workstation_id, r.start) for r in agent.booths.reservations.values()]
    assert len(held) == len(set(held)) == len(before)  # resent reservations changed nothing

    # The signed sheet is intact: one signed sheet, same digest, signed once in the audit.
    signed = [e for e in await entries(grid, "sheet.signed", project.id)
              if e.detail["expert_ref"] == done.expert_ref]
    assert [e.detail["digest"] for e in signed] == [done.digest]

    if working is not None:  # the member signed in before the crash carries on
        booth = await grid.booth(site_id, checked.workstation_id)
        form = await booth.form()
        booth.session_id, booth.sheet_id = working.session_id, f"sheet-{working.session_id}"
        final = await booth.submit(fair_scores(form), signed=True)
        assert final.accepted and not final.duplicate and final.digest
        signins = [e for e in await entries(grid, "expert.signed_in", project.id)
                   if e.detail["session"] == working.session_id]
        assert len(signins) == 1  # never signed in twice

    result = await check_grid(grid.data.root, grid.redis_url)
    assert result.double_bookings == 0, result.details
    assert result.audit_intact, result.details


async def _connected(grid: Grid, site_id: str) -> bool:
    return grid.agents[site_id].connected.is_set()
