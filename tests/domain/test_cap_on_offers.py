"""The independent checker's per-venue cap counts from the venue offers a draw recorded: a
redraw that found only a few venues left may seat more members at one, and the province's
state at the end of the day (other venues free again) must not turn that into a violation."""

from __future__ import annotations

from dataclasses import replace

from domain_factories import RULES, TODAY, inputs_for, seed_of, simple_province

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.violations import cap_on_offers, find_violations


def test_all_offers_keep_the_configured_cap() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    result = draw(inputs, seed_of(1))
    assert isinstance(result, DrawOutcome)
    assert cap_on_offers(inputs) == result.cap == RULES.per_venue_cap


def test_few_offers_raise_the_cap_as_the_draw_did() -> None:
    prov, proj = simple_province(n_per_city=6)
    full = inputs_for(prov, proj)
    # Offered only the venues of three cities (the others busy or lost at the time).
    cities = sorted({v.city for v in full.venues})[:3]
    few = replace(full, venues=tuple(v for v in full.venues if v.city in cities))
    result = draw(few, seed_of(2))
    assert isinstance(result, DrawOutcome)
    assert result.cap > RULES.per_venue_cap
    assert cap_on_offers(few) == result.cap

    members = [(s.expert_id, s.venue_id, s.workstation_id) for s in result.seats]
    # Recomputed from the province, every venue looks free: the draw looks over its cap ...
    recomputed = find_violations(prov, [(proj.id, members)], [], RULES, TODAY)
    assert any("seats" in p and "cap" in p for p in recomputed), recomputed
    # ... counted from what the draw was offered, it is within it.
    assert find_violations(prov, [(proj.id, members)], [], RULES, TODAY,
                           offered_caps={proj.id: cap_on_offers(few)}) == []
    # And a venue over even the offered cap is still caught.
    assert any("cap 1" in p for p in find_violations(
        prov, [(proj.id, members)], [], RULES, TODAY, offered_caps={proj.id: 1}))


def test_members_who_stay_count_toward_the_cap() -> None:
    prov, proj = simple_province(n_per_city=6)
    full = inputs_for(prov, proj)
    venue = full.venues[0]
    one = replace(full, venues=(venue,), seats=(0,),
                  occupied=((venue.venue_id, venue.free[0][1]),))
    # One seat to fill at a venue that already seats a member: the cap must reach 2.
    assert cap_on_offers(one) == 2
