"""DayScreen, the coordinator's one screening path, against the independent checker's rules
(violations.py re-derives each rule over the raw province) and a plain venue-offer rule."""

from __future__ import annotations

from domain_factories import TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_draw_properties import SEEDS, scenarios

from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.inputs import VenueOffer
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.eligibility import (
    DayScreen,
    PoolIndex,
    day_snapshot,
    falls_under,
    host_city_of,
)
from coordinator.domain.model import Expert, Project, Province, Sitting
from coordinator.domain.rules import Rules
from coordinator.domain.violations import _Province, expert_breaches


def _fits(e: Expert, proj: Project) -> bool:
    return any((q.kind is None or q.kind == e.kind) and any(falls_under(c, q.specialty)
                                                            for c in e.specialties)
               for q in proj.quotas)


def _offers(prov: Province, proj: Project, host: str, busy: set[str]) -> tuple[VenueOffer, ...]:
    """Guest venues outside the project's and the host's city, with their free workstations."""
    barred = {proj.city, host}
    out = []
    for s in prov.sites:
        if "guest" not in s.roles or s.city in barred:
            continue
        for v in s.venues:
            free = tuple(sorted((w.id, w.room_id) for w in v.workstations if w.id not in busy))
            if v.city not in barred and free:
                out.append(VenueOffer(v.id, s.id, v.city, free))
    return tuple(sorted(out, key=lambda o: o.venue_id))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), SEEDS, st.data())
def test_masks_agree_with_the_independent_checker_and_the_offers(
    scenario: tuple[Province, Rules, list[Sitting]], seed: bytes, data: st.DataObject
) -> None:
    prov, rules, sittings = scenario
    pool = PoolIndex.build(prov.experts, rules)
    index = ConflictIndex.build(prov.experts, prov.companies, rules)
    raw = _Province(prov)
    stations = sorted(ws.id for s in prov.sites for v in s.venues for ws in v.workstations)
    down = set(data.draw(st.lists(st.sampled_from(stations), max_size=3))) if stations else set()
    day = DayScreen(pool, index, prov.sites, rules, TODAY, sittings=sittings, down=down)
    history = list(sittings)
    booked: list[tuple[str, Sitting]] = []
    for proj in prov.projects:
        host = host_city_of(proj, prov.sites)
        expected = {e.id for e in prov.experts if _fits(e, proj)
                    and not expert_breaches(raw, proj, e, history, rules, TODAY)}
        busy = down | {ws for ws, s in booked if s.window.overlaps(proj.window)}
        inputs = day.inputs(proj, host)
        matching = [pool.matching(q) for q in proj.quotas]
        got = {
            c.expert_id
            for c in inputs.resolved_candidates()
            if any(c.expert_id in m for m in matching)
        }
        assert got == expected
        assert day.eligible_count(proj, day.barred(proj, host)) == len(expected)
        explained = day.explain(proj, host)
        assert set(explained) == set().union(*matching) - expected  # a reason for each barred
        assert inputs.resolved_venues() == _offers(prov, proj, host, busy)
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


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_rows_within_a_mask_come_back_ascending_and_distinct(data: st.DataObject) -> None:
    """The declared bars' row lists (`_ascending`: sorted under a share of the pool, through
    the scratch mask above; the share moved so a small pool takes both) against a per-row
    look; the scratch is left clear."""
    from unittest import mock

    import numpy as np
    from domain_factories import RULES, simple_province

    from coordinator.domain import eligibility

    prov, _ = simple_province()
    pool = PoolIndex.build(prov.experts, RULES)
    day = DayScreen(pool, ConflictIndex.build(prov.experts, prov.companies, RULES), prov.sites,
                    RULES, TODAY)
    n = len(day.snapshot.candidates)
    rows = data.draw(st.lists(st.integers(0, n - 1), max_size=3 * n))
    within = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    share = data.draw(st.sampled_from([1, eligibility._SORT_BELOW, n + 1]))
    with mock.patch.object(eligibility, "_SORT_BELOW", share):
        got = day._ascending(np.array(rows, dtype=np.intp), np.array(within, dtype=np.bool_))
    assert got.tolist() == sorted({r for r in rows if within[r]})
    assert not day._scratch.any()


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_kept_workload_rows_equal_the_rows_read_back(data: st.DataObject) -> None:
    """The workload rule's declared rows as kept per quota (`_workload_declared`, merged in as
    experts reach the cap) against its rows read back through the quota mask (`_ascending`),
    after every booking or release, on a forked screen too (a plan draws in a fork)."""
    from dataclasses import replace

    import numpy as np
    from domain_factories import RULES, expert, local_window, project, simple_province

    from coordinator.domain.model import Quota

    prov, _ = simple_province()
    codes = ("W.01", "W.01.02", "W.02", "G.01")
    experts = tuple(expert(f"X{i}", f"C{1 + i % 6}", kind="economic" if i % 5 == 0
                           else "technical", specialties=(codes[i % 4], codes[i * 7 % 4]))
                    for i in range(40))
    rules = replace(RULES, workload_cap_per_half_day=data.draw(st.sampled_from([1, 2])))
    pool = PoolIndex.build(experts, rules)
    screen = DayScreen(pool, ConflictIndex.build(experts, prov.companies, rules), prov.sites,
                       rules, TODAY)
    windows = [local_window(TODAY, h, n) for h, n in ((8, 3), (10, 4), (14, 2), (9, 1))]
    shapes = [(Quota("W.01", 2),), (Quota("W.01.02", 1), Quota("W.02", 1)),
              (Quota("W.01", 2, "technical"), Quota("W.01", 1, "economic")),
              (Quota("G", 1), Quota("W", 1))]
    screens = [(screen, list[Sitting]())]  # a fork books on, apart from its original
    for step in range(data.draw(st.integers(1, 30))):
        screen, booked = screens[data.draw(st.integers(0, len(screens) - 1))]
        if booked and data.draw(st.booleans()) and data.draw(st.booleans()):
            screen.remove_sitting(booked.pop(data.draw(st.integers(0, len(booked) - 1))))
        else:
            s = Sitting(f"X{data.draw(st.integers(0, 39))}", f"P{step}", f"T{step % 3}",
                        data.draw(st.sampled_from(windows)))
            screen.add_sitting(s)
            booked.append(s)
        if data.draw(st.booleans()):
            screens.append((screen.fork(), list(booked)))
        for screen, _ in screens:
            for w in windows:
                for quotas in shapes:
                    proj = project(quotas=quotas, window=w)
                    got = screen._workload_declared(proj)  # first: on a stale list too
                    expected = screen._ascending(screen._workload(proj), screen.relevant(proj))
                    assert got.tolist() == expected.tolist()
                    assert got.dtype == np.intp
