"""The independent checker notices each kind of breach."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from domain_factories import (
    RULES,
    TODAY,
    WINDOW,
    expert,
    inputs_for,
    local_window,
    project,
    seed_of,
    simple_province,
)

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.model import (
    CompanyRef,
    Employment,
    Penalty,
    Province,
    Quota,
    Relative,
    Sitting,
)
from coordinator.domain.violations import find_violations


def clean() -> tuple[Province, list[tuple[str, str, str]]]:
    prov, proj = simple_province()
    result = draw(inputs_for(prov, proj), seed_of(0))
    assert isinstance(result, DrawOutcome)
    return prov, [(s.expert_id, s.venue_id, s.workstation_id) for s in result.seats]


def check(prov: Province, members: list[tuple[str, str, str]], sittings=()) -> list[str]:  # type: ignore[no-untyped-def]
    return find_violations(prov, [("P1", members)], list(sittings), RULES, TODAY)


def test_clean_allocation() -> None:
    prov, members = clean()
    assert check(prov, members) == []


def swap_expert(prov: Province, members: list[tuple[str, str, str]], **changes: object):  # type: ignore[no-untyped-def]
    """Give the first member's expert record the changes (a rule breach)."""
    eid = members[0][0]
    experts = tuple(replace(e, **changes) if e.id == eid else e for e in prov.experts)  # type: ignore[arg-type]
    return replace(prov, experts=experts), eid


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"status": "suspended"}, "status is suspended"),
        ({"penalties": (Penalty(TODAY - timedelta(days=10), "bribe"),)}, "penalised"),
        ({"birth_date": date(1950, 1, 1)}, "aged 76"),
        ({"work_city": "C0"}, "works in C0"),
        (
            {"employments": (Employment(CompanyRef("B2 ENGINEERING"), date(2020, 1, 1)),)},
            "employed by bidder B2",
        ),
        ({"interests": (CompanyRef("T Engineering Company Limited"),)}, "interest in tenderer T"),
        (
            {"declared_conflicts": (CompanyRef("B1 Engineering"),)},
            "declared conflict with bidder B1",
        ),
        ({"relatives": (Relative("B1-rep", "R", "spouse"),)}, "spouse of B1-rep"),
    ],
)
def test_each_expert_rule(changes: dict[str, object], needle: str) -> None:
    prov, members = clean()
    prov, eid = swap_expert(prov, members, **changes)
    problems = check(prov, members)
    assert any(eid in p and needle in p for p in problems), problems


def test_group_and_department() -> None:
    prov, members = clean()
    companies = tuple(
        replace(c, group_id="G") if c.id in ("B1", "X") else c for c in prov.companies
    )
    prov = replace(prov, companies=companies)
    prov, _ = swap_expert(
        prov, members, interests=(CompanyRef("X Engineering"),), departments=("Housing",)
    )
    proj = replace(prov.projects[0], competent_department="housing")
    prov = replace(prov, projects=(proj,))
    problems = check(prov, members)
    assert any("interest in bidder B1 (group X)" in p for p in problems), problems
    assert any("works for housing" in p for p in problems), problems


def test_sittings_rules() -> None:
    prov, members = clean()
    eid = members[0][0]
    day = WINDOW.start.date()
    overlap = Sitting(eid, "PX", "Z", local_window(day, 10, 1))
    cool = Sitting(eid, "PY", "T", local_window(day - timedelta(days=20), 9, 3))
    workload = Sitting(eid, "PZ", "Z", local_window(day, 7, 1))
    assert any("overlapping session PX" in p for p in check(prov, members, [overlap]))
    assert any("cool-off" in p for p in check(prov, members, [cool]))
    assert any("workload" in p for p in check(prov, members, [workload]))


def test_venue_rules() -> None:
    prov, members = clean()
    (e0, v0, w0), (e1, v1, w1) = members[0], members[1]
    room0 = w0.split("-r")[1][0]
    other_room_ws = f"{v0}-r{1 - int(room0)}-w0"
    # two members at one venue, different rooms: still over the cap of 1
    problems = check(prov, [(e0, v0, w0), (e1, v0, other_room_ws), *members[2:]])
    assert any(f"venue {v0} seats 2 members, cap 1" in p for p in problems), problems
    # an expert outside the venue's catchment, on a workstation someone else has
    problems = check(prov, [(e0, v1, w1), *members[1:]])
    assert any(f"{e0}: venue {v1}" in p and "outside catchment" in p for p in problems)
    assert any(f"workstation {w1} given to 2 members" in p for p in problems)
    # a workstation that is not at the venue
    problems = check(prov, [(e0, v0, w1), *members[1:]])
    assert any(f"workstation {w1} is not at venue {v0}" in p for p in problems)
    # a venue in the project's city
    sites = tuple(
        replace(s, city="C0") if s.venues and s.venues[0].id == v0 else s for s in prov.sites
    )
    problems = check(replace(prov, sites=sites), members)
    assert any(f"{e0}: venue {v0} is in" in p and "a barred city" in p for p in problems)


def test_same_room_and_same_workstation() -> None:
    prov, proj = simple_province()
    prov = replace(prov, projects=(replace(proj, quotas=(Quota("W.01", 5),)),))
    members = [
        ("EC10", "SC1-v", "SC1-v-r0-w0"),
        ("EC11", "SC1-v", "SC1-v-r0-w1"),
        ("EC20", "SC2-v", "SC2-v-r0-w0"),
        ("EC30", "SC3-v", "SC3-v-r0-w0"),
        ("EC40", "SC4-v", "SC4-v-r0-w0"),
    ]
    problems = check(prov, members)
    assert any("share room SC1-v-r0" in p for p in problems), problems


def test_quotas_and_counts() -> None:
    prov, members = clean()
    proj = replace(prov.projects[0], quotas=(Quota("W.01.02", 5),))
    prov = replace(prov, projects=(proj,))
    assert any("quotas not met" in p for p in check(prov, members))
    prov, members = clean()
    assert any("4 members drawn, 5 seats" in p for p in check(prov, members[:4]))
    assert any("drawn 2 times" in p for p in check(prov, [members[0], *members[:4]]))
    assert any(
        "unknown expert" in p for p in check(prov, [("ghost", *members[0][1:]), *members[1:]])
    )


def test_double_booking_across_projects() -> None:
    prov, members = clean()
    p2 = project(
        "P2", tenderer="X", bidders=("B1",), window=local_window(WINDOW.start.date(), 10, 2)
    )
    prov = replace(prov, projects=(*prov.projects, p2))
    # P2 reuses the first member and another member's workstation
    other = [m for m in prov.experts if m.id not in {x[0] for x in members}]
    p2_members = [members[0]] + [(other[i].id, members[1][1], members[1][2]) for i in range(4)]
    problems = find_violations(prov, [("P1", members), ("P2", p2_members)], [], RULES, TODAY)
    assert any(p.startswith(f"P2: {members[0][0]}: overlapping session P1") for p in problems)
    assert any(f"workstation {members[1][2]} already booked for P1" in p for p in problems)


def test_unknown_project() -> None:
    prov, members = clean()
    assert find_violations(prov, [("NOPE", members)], [], RULES, TODAY) == ["NOPE: unknown project"]


def test_checker_independent_of_screening_experts() -> None:
    """An expert the draw never saw (age limit) is still judged from the raw record."""
    prov, members = clean()
    old = expert("OLD", "C6", birth=date(1940, 1, 1))
    prov = replace(prov, experts=(*prov.experts, old))
    problems = check(prov, [("OLD", "SC6-v", "SC6-v-r0-w0"), *members[1:]])
    assert any("OLD: aged" in p for p in problems)


def test_a_committee_short_of_replacements_awaits_an_operator_not_a_breach() -> None:
    prov, members = clean()
    fewer = members[1:]  # a departure no replacement draw could fill (refused or starved)
    assert any("members drawn" in p for p in check(prov, fewer))
    assert find_violations(prov, [("P1", fewer)], [], RULES, TODAY, short={"P1"}) == []
    # Short allows fewer, never more, and never a member outside the quotas.
    more = [*members, members[0]]
    assert any("members drawn" in p for p in find_violations(
        prov, [("P1", more)], [], RULES, TODAY, short={"P1"}))
