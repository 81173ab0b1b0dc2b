"""Per-expert rules: each one excludes the expert it should, through the day screen, and says
which rule did (the reason codes of the masks that hit)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from domain_factories import (
    RULES,
    TODAY,
    WINDOW,
    expert,
    grid,
    local_window,
    parties,
    project,
    screened,
)

from coordinator.domain.eligibility import (
    SITTING_RULES,
    DayScreen,
    PoolIndex,
    falls_under,
    half_days,
    sitting_rule,
    specialty_prefixes,
)
from coordinator.domain.model import (
    CompanyRef,
    Employment,
    Expert,
    Penalty,
    Project,
    Province,
    Quota,
    Sitting,
)
from coordinator.domain.registry_snapshot import DECLARED_CODES
from coordinator.domain.rules import Rules

PROJECT = project()  # city C0, host site H0 in C0, tenderer T, window 2026-05-10 09:00-12:00 local


def run(
    *experts: Expert,
    proj: Project = PROJECT,
    sittings: dict[str, list[Sitting]] | None = None,
    rules: Rules = RULES,
    sites: tuple = (),  # type: ignore[type-arg]
) -> tuple[set[str], dict[str, set[str]]]:
    prov = Province(sites=sites or grid(), experts=experts, companies=parties())
    result = screened(prov, proj, sittings=sittings, rules=rules)
    return set(result.eligible), {e: set(codes) for e, codes in result.excluded.items()}


def test_a_clean_expert_is_eligible() -> None:
    eligible, excluded = run(expert("OK"))
    assert eligible == {"OK"} and excluded == {}


@pytest.mark.parametrize("status", ["suspended", "blacklisted", "retired"])
def test_status(status: str) -> None:
    eligible, excluded = run(expert("E", status=status), expert("OK"))
    assert eligible == {"OK"}
    assert excluded == {"E": {"status"}}


def test_penalty_within_look_back_only() -> None:
    recent = expert("NEW", penalties=(Penalty(TODAY - timedelta(days=400), "collusion"),))
    old = expert("OLD", penalties=(Penalty(date(2020, 1, 1), "late"),))
    eligible, excluded = run(recent, old)
    assert eligible == {"OLD"}
    assert excluded == {"NEW": {"penalty"}}


def test_age_limit_in_full_years() -> None:
    seventy = expert("70", birth=date(TODAY.year - 70, TODAY.month, TODAY.day))  # 70 today
    seventy_one = expert("71", birth=date(TODAY.year - 71, TODAY.month, TODAY.day))  # 71 today
    almost = expert("~71", birth=date(TODAY.year - 71, TODAY.month, TODAY.day + 1))
    eligible, excluded = run(seventy, seventy_one, almost)
    assert eligible == {"70", "~71"}
    assert excluded == {"71": {"age"}}


def test_lives_or_works_in_the_project_city() -> None:
    lives = expert("LIVES", "C0", work_city="C2")
    works = expert("WORKS", "C2", work_city="C0")
    eligible, excluded = run(lives, works, expert("OK", "C2"))
    assert eligible == {"OK"}
    assert excluded == {"LIVES": {"city"}, "WORKS": {"city"}}


def test_host_city_is_barred_too() -> None:
    sites = grid()
    proj = replace(PROJECT, city="C5")  # opened at host H0 in C0, project city C5
    eligible, excluded = run(
        expert("C0", "C0"), expert("C5", "C5"), expert("OK", "C2"), proj=proj, sites=sites
    )
    assert eligible == {"OK"}
    assert set(excluded) == {"C0", "C5"}


def sitting(eid: str, window, tenderer: str = "OTHER", pid: str = "PX") -> Sitting:  # type: ignore[no-untyped-def]
    return Sitting(eid, pid, tenderer, window)


def test_cool_off_for_the_same_tenderer() -> None:
    day = WINDOW.start.date()
    recent = sitting("RECENT", local_window(day - timedelta(days=60), 9, 3), tenderer="T")
    long_ago = sitting("LONG", local_window(day - timedelta(days=100), 9, 3), tenderer="T")
    other = sitting("OTHER", local_window(day - timedelta(days=5), 9, 3), tenderer="Z")
    after = sitting("AFTER", local_window(day + timedelta(days=30), 9, 3), tenderer="T")
    experts = [expert(e) for e in ("RECENT", "LONG", "OTHER", "AFTER")]
    sittings = {s.expert_id: [s] for s in (recent, long_ago, other, after)}
    eligible, excluded = run(*experts, sittings=sittings)
    assert eligible == {"LONG", "OTHER"}
    assert excluded == {"RECENT": {"cool_off"}, "AFTER": {"cool_off"}}


def test_overlapping_session() -> None:
    day = WINDOW.start.date()
    s = sitting("E", local_window(day, 11, 4))  # 11:00-15:00 overlaps 09:00-12:00
    _, excluded = run(expert("E"), sittings={"E": [s]})
    assert excluded == {"E": {"overlap", "workload"}}


def test_workload_cap_per_half_day() -> None:
    day = WINDOW.start.date()
    morning = sitting("AM", local_window(day, 7, 1))  # 07:00-08:00: same morning, no overlap
    afternoon = sitting("PM", local_window(day, 13, 3))
    other_day = sitting("DAY", local_window(day + timedelta(days=1), 9, 3))
    experts = [expert(e) for e in ("AM", "PM", "DAY")]
    sittings = {s.expert_id: [s] for s in (morning, afternoon, other_day)}
    eligible, excluded = run(*experts, sittings=sittings)
    assert eligible == {"PM", "DAY"}
    assert excluded == {"AM": {"workload"}}
    # a cap of two allows one more sitting in the half-day
    eligible, excluded = run(
        *experts, sittings=sittings, rules=replace(RULES, workload_cap_per_half_day=2)
    )
    assert eligible == {"AM", "PM", "DAY"}


def test_a_new_sitting_rule_is_one_registered_function() -> None:
    """README "Adding a sitting rule": the registered function alone bars, with its code."""
    assert tuple(SITTING_RULES) == ("cool_off", "overlap", "workload")
    assert ("conduct", *SITTING_RULES) == DECLARED_CODES  # what archives declare

    def only_e(screen: DayScreen, proj: Project) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([screen.snapshot.expert_rows()["E"]], dtype=np.intp)

    sitting_rule("test_only")(only_e)
    try:
        eligible, excluded = run(expert("E"), expert("OK"))
        with pytest.raises(ValueError, match="registered twice"):
            sitting_rule("test_only")(only_e)
    finally:
        del SITTING_RULES["test_only"]
    assert eligible == {"OK"} and excluded == {"E": {"test_only"}}
    assert run(expert("E"))[0] == {"E"}


def test_half_days_are_local_time() -> None:
    day = date(2026, 5, 10)
    assert len(half_days(local_window(day, 9, 3), 480)) == 1  # 09:00-12:00 local
    assert len(half_days(local_window(day, 9, 4), 480)) == 2  # runs past noon
    assert len(half_days(local_window(day, 8, 4), 480)) == 1  # ends at noon exactly
    # 03:00-05:00 UTC is 11:00-13:00 local: two half-days, though one in UTC
    assert len(half_days(local_window(day, 11, 2), 480)) == 2
    assert len(half_days(local_window(day, 11, 2), 0)) == 1


def test_party_rules_flow_through_the_day_screen() -> None:
    e = expert("E", employments=(Employment(CompanyRef("B1 Engineering Ltd"), date(2024, 1, 1)),))
    eligible, excluded = run(e, expert("OK"))
    assert eligible == {"OK"}
    assert excluded == {"E": {"employer"}}


def test_only_quota_experts_are_considered() -> None:
    proj = project(quotas=(Quota("W.01", 3), Quota("G.02", 2, "economic")))
    experts = [
        expert("W01", specialties=("W.01",)),
        expert("W0103", specialties=("W.01.03",)),
        expert("W011", specialties=("W.011",)),
        expert("G02T", specialties=("G.02",)),  # technical: wrong kind for the G.02 quota
        expert("G02E", specialties=("G.02.01",), kind="economic"),
        expert("BAD", specialties=("W.01",), status="retired"),
    ]
    prov = Province(sites=grid(), experts=tuple(experts), companies=parties())
    result = screened(prov, proj)
    assert result.eligible == ("G02E", "W01", "W0103")
    assert result.per_quota == ((3, 2), (1, 1))
    assert result.reasons == {"status": 1}


def test_reason_counter_counts_each_expert_once_per_code() -> None:
    experts = [
        expert("A", "C0", status="suspended"),
        expert("B", "C0"),
        expert("C", status="retired"),
    ]
    prov = Province(sites=grid(), experts=tuple(experts), companies=parties())
    result = screened(prov, PROJECT)
    # A is barred for the whole day (status): the day's snapshot leaves A out, so the
    # per-project masks never see A and only the day's reason is told.
    assert result.reasons == {"city": 1, "status": 2}
    assert result.excluded == {"A": ("status",), "B": ("city",), "C": ("status",)}
    assert result.eligible == ()


def test_candidates_follow_the_catchment_rule() -> None:
    e = expert("E", "C1", catchment=("C2", "C3"), specialties=("W.01.",))
    assert PoolIndex.build([e], RULES).candidate("E").catchment_cities == ("C1",)
    configured = replace(RULES, catchment="configured")
    c = PoolIndex.build([e], configured).candidate("E")
    assert c.catchment_cities == ("C2", "C3")
    assert c.specialties == ("W.01",)  # normalised
    plain = expert("P", "C4")
    assert PoolIndex.build([plain], configured).candidate("P").catchment_cities == ("C4",)


def test_specialty_codes() -> None:
    assert specialty_prefixes("W.01.03") == ("W", "W.01", "W.01.03")
    assert falls_under("W.01.03", "W.01")
    assert falls_under("W.01", "W.01")
    assert not falls_under("W.011", "W.01")
    assert not falls_under("W", "W.01")


def test_duplicate_expert_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        PoolIndex.build([expert("E"), expert("E")], RULES)
