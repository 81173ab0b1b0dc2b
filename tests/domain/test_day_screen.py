"""DayScreen: the day's screening as bitmaps gives exactly what `screen` and the offers give."""

from __future__ import annotations

from domain_factories import TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_draw_properties import SEEDS, scenarios

from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.draw import DrawOutcome, build_venue_offers, draw
from coordinator.domain.eligibility import (
    DayScreen,
    PoolIndex,
    SittingIndex,
    day_snapshot,
    host_city_of,
    screen,
)
from coordinator.domain.model import Province, Sitting
from coordinator.domain.rules import Rules


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), SEEDS, st.data())
def test_bitmaps_agree_with_screen_and_offers(
    scenario: tuple[Province, Rules, list[Sitting]], seed: bytes, data: st.DataObject
) -> None:
    prov, rules, sittings = scenario
    pool = PoolIndex.build(prov.experts, rules)
    index = ConflictIndex.build(prov.experts, prov.companies, rules)
    stations = sorted(ws.id for s in prov.sites for v in s.venues for ws in v.workstations)
    down = set(data.draw(st.lists(st.sampled_from(stations), max_size=3))) if stations else set()
    day = DayScreen(pool, index, prov.sites, rules, TODAY, sittings=sittings, down=down)
    history = list(sittings)
    booked: list[tuple[str, Sitting]] = []
    for proj in prov.projects:
        host = host_city_of(proj, prov.sites)
        expected = screen(
            proj, pool, index, SittingIndex.build(history, rules), rules, TODAY, host_city=host
        )
        busy = down | {ws for ws, s in booked if s.window.overlaps(proj.window)}
        inputs = day.inputs(proj, host)
        matching = [pool.matching(q) for q in proj.quotas]
        got = {
            c.expert_id
            for c in inputs.resolved_candidates()
            if any(c.expert_id in m for m in matching)
        }
        assert got == set(expected.eligible)
        assert day.eligible_count(proj, day.barred(proj, host)) == len(expected.eligible)
        assert inputs.resolved_venues() == build_venue_offers(prov.sites, proj, host, busy)
        outcome = draw(inputs, seed)
        if isinstance(outcome, DrawOutcome):
            day.book(proj, [(s.expert_id, s.workstation_id) for s in outcome.seats])
            for s in outcome.seats:
                sitting = Sitting(s.expert_id, proj.id, proj.tenderer_id, proj.window)
                history.append(sitting)
                booked.append((s.workstation_id, sitting))


def test_removing_a_booking_restores_the_picture() -> None:
    from domain_factories import RULES, simple_province

    prov, proj = simple_province()
    pool = PoolIndex.build(prov.experts, RULES)
    index = ConflictIndex.build(prov.experts, prov.companies, RULES)
    day = DayScreen(pool, index, prov.sites, RULES, TODAY)
    host = host_city_of(proj, prov.sites)
    before = day.inputs(proj, host)
    outcome = draw(before, b"\x01" * 32)
    assert isinstance(outcome, DrawOutcome)
    day.book(proj, [(s.expert_id, s.workstation_id) for s in outcome.seats])
    after = day.inputs(proj, host)
    assert after.candidate_count() == before.candidate_count() - len(outcome.seats)
    assert after.barred != before.barred and after.unavailable != before.unavailable
    w = proj.window
    for s in outcome.seats:
        day.remove_sitting(Sitting(s.expert_id, proj.id, proj.tenderer_id, w))
        day.remove_booking(s.workstation_id, w.start_ts, w.end_ts)
    again = day.inputs(proj, host)
    assert (again.barred, again.unavailable) == (before.barred, before.unavailable)


def test_snapshot_leaves_out_pool_level_exclusions() -> None:
    from dataclasses import replace

    from domain_factories import RULES, simple_province

    prov, _ = simple_province()
    experts = list(prov.experts)
    experts[0] = replace(experts[0], status="suspended")
    pool = PoolIndex.build(experts, RULES)
    snap = day_snapshot(pool, prov.sites, RULES, TODAY)
    ids = [c.expert_id for c in snap.candidates]
    assert experts[0].id not in ids and len(ids) == len(experts) - 1
    assert ids == sorted(ids)
    assert snap.workstation_count() == sum(
        len(v.workstations) for s in prov.sites if "guest" in s.roles for v in s.venues
    )
