"""Party-based recusal: each rule excludes the expert it should, and only that expert."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from domain_factories import RULES, TODAY, company, expert, project

from coordinator.domain.conflicts import ConflictIndex, Reason, registry_places, years_before
from coordinator.domain.model import (
    City,
    Company,
    CompanyRef,
    District,
    Employment,
    Expert,
    Relative,
)
from coordinator.domain.rules import Rules

COMPANIES = (
    company("T", "Tenderer City Works Co., Ltd.", principal="T-boss"),
    company("B1", "Acme Bridge Co., Ltd.", code="91110000100012345X", key_staff=("B1-eng",)),
    company("B2", "北京建工集团有限责任公司", group="G"),
    company("B2-sister", "Beijing Jiangong Road Co", group="G"),
    company("X", "Unrelated Trading Ltd"),
)
BY_ID = {c.id: c for c in COMPANIES}
PROJECT = project(bidders=("B1", "B2"), department="Municipal Housing Bureau")


def reasons(
    *experts: Expert,
    rules: Rules = RULES,
    companies: tuple[Company, ...] = COMPANIES,
    today: date = TODAY,
) -> dict[str, list[Reason]]:
    index = ConflictIndex.build(experts, companies, rules)
    return index.ineligible_for(PROJECT, {c.id: c for c in companies}, today)


def codes(found: dict[str, list[Reason]], eid: str) -> set[str]:
    return {r.code for r in found.get(eid, [])}


def job(name: str, start: date, end: date | None = None, code: str | None = None) -> Employment:
    return Employment(CompanyRef(name, code), start, end)


def test_current_employee_of_a_bidder_by_name_variant() -> None:
    e = expert("E1", employments=(job("ACME BRIDGE COMPANY LIMITED", date(2010, 1, 1)),))
    assert codes(reasons(e), "E1") == {"employer"}


def test_employee_of_the_tenderer() -> None:
    e = expert("E1", employments=(job("tenderer city works", date(2010, 1, 1)),))
    found = reasons(e)
    assert codes(found, "E1") == {"employer"}
    assert "tenderer T" in found["E1"][0].detail


def test_credit_code_matches_despite_a_different_name() -> None:
    e = expert(
        "E1", employments=(job("ABC Holdings", date(2020, 1, 1), None, "9111 0000 1000 12345x"),)
    )
    assert codes(reasons(e), "E1") == {"employer"}


def test_look_back_window() -> None:
    since = years_before(TODAY, RULES.look_back_years)
    inside = expert("IN", employments=(job("Acme Bridge", date(2000, 1, 1), since),))
    day_before = since - timedelta(days=1)
    outside = expert("OUT", employments=(job("Acme Bridge", date(2000, 1, 1), day_before),))
    future = expert("FUT", employments=(job("Acme Bridge", date(TODAY.year + 1, 1, 1)),))
    found = reasons(inside, outside, future)
    assert codes(found, "IN") == {"employer"}
    assert "OUT" not in found
    assert "FUT" not in found
    # a longer look-back catches the older job
    assert "OUT" in reasons(outside, rules=replace(RULES, look_back_years=10))


def test_economic_interest() -> None:
    e = expert("E1", interests=(CompanyRef("Acme Bridge Ltd."),))
    assert codes(reasons(e), "E1") == {"interest"}


def test_declared_conflict() -> None:
    e = expert("E1", declared_conflicts=(CompanyRef("Tenderer City Works"),))
    assert codes(reasons(e), "E1") == {"declared"}


@pytest.mark.parametrize(
    "tie",
    [
        {"employments": (job("Beijing Jiangong Road Company Limited", date(2019, 1, 1)),)},
        {"interests": (CompanyRef("BEIJING JIANGONG ROAD CO., LTD."),)},
        {"declared_conflicts": (CompanyRef("beijing jiangong road"),)},
    ],
)
def test_a_group_counts_as_one_party(tie: dict[str, object]) -> None:
    e = expert("E1", **tie)
    found = reasons(e)
    assert codes(found, "E1") == {"group"}
    assert "group member B2-sister" in found["E1"][0].detail


def test_group_member_that_is_itself_a_bidder_is_direct() -> None:
    e = expert("E1", employments=(job("北京建工（集团）有限责任公司", date(2019, 1, 1)),))
    assert codes(reasons(e), "E1") == {"employer"}


@pytest.mark.parametrize(
    ("person", "relation"),
    [
        ("B1-rep", "spouse"),
        ("B1-eng", "sibling"),
        ("T-boss", "child"),
        ("B2-rep", "cousin"),
        ("B1-rep", "sibling_in_law"),
    ],
)
def test_close_relatives_of_party_people(person: str, relation: str) -> None:
    e = expert("E1", relatives=(Relative(person, "Someone", relation),))
    assert codes(reasons(e), "E1") == {"relative"}


def test_relations_outside_the_rules_do_not_count() -> None:
    friend = expert("E1", relatives=(Relative("B1-rep", "Pal", "friend"),))
    assert reasons(friend) == {}
    narrow = replace(RULES, relations=frozenset({"spouse"}))
    cousin = expert("E2", relatives=(Relative("B1-rep", "Kin", "cousin"),))
    assert reasons(cousin, rules=narrow) == {}
    assert codes(reasons(cousin), "E2") == {"relative"}


def test_relative_of_a_stranger_does_not_count() -> None:
    e = expert("E1", relatives=(Relative("X-rep", "Someone", "spouse"),))
    assert reasons(e) == {}


def test_competent_department() -> None:
    e = expert("E1", departments=("municipal housing bureau",))
    assert codes(reasons(e), "E1") == {"department"}
    other = expert("E2", departments=("Water Bureau",))
    assert reasons(other) == {}


def test_unrelated_experts_are_not_touched() -> None:
    e = expert(
        "E1",
        employments=(job("Unrelated Trading", date(2020, 1, 1)),),
        interests=(CompanyRef("Acme Bridges International"),),
    )
    assert reasons(e) == {}


def test_all_reasons_are_reported() -> None:
    e = expert(
        "E1",
        employments=(job("Acme Bridge", date(2020, 1, 1)),),
        interests=(CompanyRef("Tenderer City Works"),),
        relatives=(Relative("B1-rep", "S", "spouse"),),
        departments=("Municipal Housing Bureau",),
    )
    assert codes(reasons(e), "E1") == {"employer", "interest", "relative", "department"}


def test_unknown_party_is_an_error() -> None:
    index = ConflictIndex.build([], COMPANIES, RULES)
    with pytest.raises(KeyError, match="B9"):
        index.ineligible_for(project(bidders=("B9",)), BY_ID, TODAY)


def test_company_registered_after_the_index_still_matches() -> None:
    """References stay unresolved, so a bidder unknown at build time matches by name."""
    e = expert("E1", employments=(job("Newcomer Ltd", date(2024, 1, 1)),))
    index = ConflictIndex.build([e], COMPANIES, RULES)
    newcomer = company("B9", "NEWCOMER CO., LTD.")
    found = index.ineligible_for(project(bidders=("B9",)), {**BY_ID, "B9": newcomer}, TODAY)
    assert {r.code for r in found["E1"]} == {"employer"}


def test_resolve() -> None:
    index = ConflictIndex.build([], COMPANIES, RULES)
    assert index.resolve(CompanyRef("acme bridge company limited")) == {"B1"}
    assert index.resolve(CompanyRef("?", "91110000100012345x")) == {"B1"}
    assert index.resolve(CompanyRef("Nobody")) == frozenset()


@pytest.mark.parametrize(
    ("bidder_name", "employer"),
    [
        ("浙江省中恒建设集团有限公司", "中恒建设集团有限公司"),
        ("中恒建设集团有限公司", "浙江省中恒建设集团有限公司"),
        ("杭州市华建建设有限公司", "杭州华建建设有限公司"),
        ("华建建设有限公司", "杭州市西湖区华建建设有限公司"),
        ("Zhejiang Zhongheng Construction Group Co., Ltd.", "Zhongheng Construction Co Ltd"),
        ("Hangzhou Huajian Construction Co., Ltd.", "Hangchow City Huajian Construction Co"),
    ],
)
def test_an_employee_of_a_bidder_named_with_or_without_its_place(
        bidder_name: str, employer: str) -> None:
    places = registry_places([City("Hangzhou", ("杭州市", "Hangchow"),
                                   (District("Xihu", ("西湖区",)),))])
    companies = (*COMPANIES[:1], company("B1", bidder_name), *COMPANIES[2:])
    e = expert("E1", employments=(job(employer, date(2010, 1, 1)),))
    index = ConflictIndex.build([e], companies, RULES, places)
    found = index.ineligible_for(PROJECT, {c.id: c for c in companies}, TODAY)
    assert codes(found, "E1") == {"employer"}
    # An unrelated company of another city's name stays unrelated.
    other = expert("E2", employments=(job("宁波交通运输局", date(2010, 1, 1)),))
    index = ConflictIndex.build([other], companies, RULES, places)
    assert "E2" not in index.ineligible_for(PROJECT, {c.id: c for c in companies}, TODAY)
