"""Codec: exact round trips and one precise, located error per broken rule."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.domain.model import (
    CATEGORIES,
    EXPERT_KINDS,
    EXPERT_STATUSES,
    RELATIONS,
    SITE_ROLES,
    Bid,
    Category,
    Company,
    CompanyRef,
    Criterion,
    Employment,
    Expert,
    Penalty,
    Person,
    Project,
    Province,
    Quota,
    Relative,
    Room,
    ScoringMethod,
    ScoringMethodName,
    Site,
    Venue,
    Window,
    Workstation,
)
from coordinator.province.codec.companies import company_from_dict, company_to_dict
from coordinator.province.codec.experts import expert_from_dict, expert_to_dict
from coordinator.province.codec.fields import FieldError, RecordError, is_specialty_code
from coordinator.province.codec.places import city_from_dict, site_from_dict, site_to_dict
from coordinator.province.codec.projects import project_from_dict, project_to_dict
from coordinator.province.codec.province import province_to_dicts

# --- valid sample records, as they appear in the files --------------------------------------


def site_dict() -> dict[str, Any]:
    return {
        "id": "S01",
        "name": "Hangzhou Public Resource Trading Centre",
        "city": "Hangzhou",
        "roles": ["guest", "host"],
        "venues": [
            {
                "id": "S01-V1",
                "name": "Evaluation Area A",
                "city": "Hangzhou",
                "rooms": [
                    {
                        "id": "S01-V1-R01",
                        "name": "Room 301",
                        "workstations": [
                            {"id": "S01-V1-R01-W01", "attributes": ["dual-monitor"]},
                            {"id": "S01-V1-R01-W02", "attributes": []},
                        ],
                    },
                    {
                        "id": "S01-V1-R02",
                        "name": "Room 302",
                        "workstations": [{"id": "S01-V1-R02-W01"}],
                    },
                ],
            }
        ],
    }


def company_dict() -> dict[str, Any]:
    return {
        "id": "C0001",
        "name": "Hangzhou Hengda Construction Engineering Co., Ltd.",
        "credit_code": "91330100MA2B3C4D5X",
        "group_id": "G001",
        "legal_rep": {"person_id": "P001", "name": "Wang Wei"},
        "principal": None,
        "key_staff": [{"person_id": "P002", "name": "Li Fang"}],
    }


def expert_dict() -> dict[str, Any]:
    return {
        "id": "E0001",
        "name": "Zhang Min",
        "id_number": "330102197001011234",
        "phone": "13800000000",
        "city": "Ningbo",
        "work_city": "Ningbo",
        "birth_date": "1970-01-01",
        "kind": "technical",
        "specialties": ["W.01", "W.01.03"],
        "status": "active",
        "employments": [
            {
                "company": {"name": "Ningbo University", "credit_code": None},
                "start": "1995-07-01",
                "end": "2005-06-30",
            },
            {
                "company": {"name": "HANGZHOU HENGDA CONSTRUCTION ENGINEERING CO LTD"},
                "start": "2005-07-01",
                "end": None,
            },
        ],
        "interests": [{"name": "", "credit_code": "91330100MA2B3C4D5X"}],
        "relatives": [{"person_id": "P002", "name": "Li Fang", "relation": "spouse"}],
        "departments": ["Ningbo Transportation Bureau"],
        "declared_conflicts": [],
        "penalties": [{"on": "2023-05-06", "reason": "late for evaluation"}],
        "catchment": ["Ningbo", "Shaoxing"],
    }


def project_dict() -> dict[str, Any]:
    return {
        "id": "P20250304-001",
        "name": "Riverside Road Reconstruction",
        "host_site_id": "S01",
        "city": "Hangzhou",
        "tenderer_id": "C0009",
        "category": "goods",
        "committee_size": 5,
        "tenderer_reps": 0,
        "large": False,
        "quotas": [
            {"specialty": "G.01", "count": 4, "kind": "technical"},
            {"specialty": "S.05", "count": 1, "kind": "economic"},
        ],
        "window": {"start": "2025-03-04T09:00:00+08:00", "end": "2025-03-04T12:00:00+08:00"},
        "scoring": {
            "method": "comprehensive",
            "price_weight": "30",
            "criteria": [
                {"id": "C1", "name": "Technical compliance", "max_score": "40.5"},
                {"id": "C2", "name": "After-sales service", "max_score": 20},
                {"id": "C3", "name": "Certifications", "max_score": "9.5", "objective": True},
            ],
            "deduction_per_point": "1",
            "deviation_threshold": "0.30",
        },
        "bids": [
            {"bidder_id": "C0001", "price": "1234567.89", "valid": True},
            {"bidder_id": "C0002", "price": 1200000},
            {"bidder_id": "C0003", "price": "1250000.5", "valid": False},
        ],
        "competent_department": "Hangzhou Finance Bureau",
        "double_blind": False,
    }


Decoder = Callable[[object], object]


def problems(decode: Decoder, data: object) -> list[tuple[str, str]]:
    with pytest.raises(RecordError) as info:
        decode(data)
    return [(e.field, e.reason) for e in info.value.errors]


def has(found: list[tuple[str, str]], field: str, fragment: str) -> bool:
    return any(f == field and fragment in r for f, r in found)


# --- the samples decode, and what they decode to ---------------------------------------------


def test_samples_decode_to_the_model() -> None:
    site = site_from_dict(site_dict())
    assert site.roles == frozenset({"host", "guest"})
    ws = site.venues[0].rooms[0].workstations[0]
    assert (ws.site_id, ws.venue_id, ws.room_id) == ("S01", "S01-V1", "S01-V1-R01")
    assert ws.attributes == frozenset({"dual-monitor"})
    assert len(site.venues[0].workstations) == 3

    expert = expert_from_dict(expert_dict())
    assert expert.birth_date == date(1970, 1, 1)
    assert expert.employments[1].end is None
    assert expert.interests == (CompanyRef("", "91330100MA2B3C4D5X"),)

    project = project_from_dict(project_dict())
    assert project.window.start == datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
    assert project.window.start.utcoffset() == timedelta(0)
    assert project.scoring.criteria[1].max_score == Decimal(20)
    assert project.bids[2] == Bid("C0003", Decimal("1250000.50"), valid=False)
    assert project.bids[1].valid is True

    company = company_from_dict(company_dict())
    assert company.people == (Person("P001", "Wang Wei"), Person("P002", "Li Fang"))


def test_optional_fields_take_model_defaults() -> None:
    data = expert_dict()
    for key in ("status", "employments", "interests", "relatives", "departments"):
        del data[key]
    for key in ("declared_conflicts", "penalties", "catchment"):
        del data[key]
    expert = expert_from_dict(data)
    assert expert.status == "active"
    assert expert.employments == () and expert.catchment_cities == ("Ningbo",)

    proj = project_dict()
    for key in ("tenderer_reps", "large", "competent_department", "double_blind"):
        del proj[key]
    del proj["scoring"]["deduction_per_point"], proj["scoring"]["deviation_threshold"]
    project = project_from_dict(proj)
    assert project.tenderer_reps == 0 and project.scoring.deviation_threshold == Decimal("0.30")


def test_to_dict_writes_every_field_in_canonical_form() -> None:
    site = site_from_dict(site_dict())
    out = site_to_dict(site)
    assert out["roles"] == ["guest", "host"]
    assert out["venues"][0]["rooms"][1]["workstations"] == [
        {"id": "S01-V1-R02-W01", "attributes": []}
    ]
    proj = project_to_dict(project_from_dict(project_dict()))
    assert proj["window"] == {
        "start": "2025-03-04T01:00:00+00:00",
        "end": "2025-03-04T04:00:00+00:00",
    }
    assert proj["bids"][1]["price"] == "1200000"
    assert proj["scoring"]["criteria"][1]["max_score"] == "20"
    # Whatever the text form, an exponent never reaches the file.
    scoring = ScoringMethod("lowest_price", Decimal("1E+2"), ())
    project = project_from_dict(proj)
    weird = project_to_dict(
        Project(**{**_fields(project), "scoring": scoring})  # type: ignore[arg-type]
    )
    assert weird["scoring"]["price_weight"] == "100"
    assert json.loads(json.dumps(proj)) == proj


def _fields(project: Project) -> dict[str, object]:
    return {name: getattr(project, name) for name in Project.__dataclass_fields__}


def test_to_dict_rejects_what_cannot_round_trip() -> None:
    project = project_from_dict(project_dict())
    naive = Window(datetime(2025, 3, 4, 9), datetime(2025, 3, 4, 12))
    with pytest.raises(ValueError, match="naive"):
        project_to_dict(Project(**{**_fields(project), "window": naive}))  # type: ignore[arg-type]
    site = site_from_dict(site_dict())
    venue = site.venues[0]
    moved = Venue(venue.id, "elsewhere", venue.name, venue.city, venue.rooms)
    with pytest.raises(ValueError, match="disagree"):
        site_to_dict(Site(site.id, site.name, site.city, site.roles, (moved,)))


# --- every rule, located ----------------------------------------------------------------------


def _set(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set a dotted/indexed path such as ``employments[0].start``; `_DEL` deletes it."""
    node: Any = data
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    key: Any = int(last) if last.isdigit() else last
    if value is _DEL:
        del node[key]
    else:
        node[key] = value
    return data


_DEL = object()

EXPERT_CASES = [
    ("name", _DEL, "name", "required field missing"),
    ("nickname", "x", "nickname", "unknown field"),
    ("id", "E 1", "id", "not an id"),
    ("id", 17, "id", "expected an id string, got number"),
    ("name", "  ", "name", "must not be empty"),
    ("kind", "legal", "kind", "not one of technical, economic: 'legal'"),
    ("status", "on_leave", "status", "not one of active"),
    ("birth_date", "1970-1-1", "birth_date", "not a date (YYYY-MM-DD): '1970-1-1'"),
    ("birth_date", "19700101", "birth_date", "not a date (YYYY-MM-DD)"),
    ("specialties", [], "specialties", "at least one specialty"),
    ("specialties", ["W.1"], "specialties[0]", "not a specialty code"),
    ("specialties", ["X.01"], "specialties[0]", "not a specialty code"),
    ("specialties", ["W.01.02.03.04.05"], "specialties[0]", "not a specialty code"),
    ("specialties", ["W.01", "W.01"], "specialties[1]", "duplicate value 'W.01'"),
    ("specialties", "W.01", "specialties", "expected an array, got string"),
    (
        "employments[0].start",
        "2021-13-01",
        "employments[0].start",
        "not a date (YYYY-MM-DD): '2021-13-01'",
    ),
    (
        "employments[0].end",
        "1990-01-01",
        "employments[0].end",
        "ends (1990-01-01) before it starts",
    ),
    ("employments[0].company", {"name": ""}, "employments[0].company.name", "must not be empty"),
    (
        "employments[1].company.credit_code",
        "91330100ma2b3c4d5x",
        "employments[1].company.credit_code",
        "not a unified social credit code",
    ),
    ("employments[0].company", _DEL, "employments[0].company", "required field missing"),
    ("relatives[0].relation", "friend", "relatives[0].relation", "not one of spouse"),
    ("relatives[0].person_id", "", "relatives[0].person_id", "not an id"),
    ("penalties[0].on", None, "penalties[0].on", "expected a date string"),
    ("catchment", ["Ningbo", ""], "catchment[1]", "must not be empty"),
    ("departments", [3], "departments[0]", "expected a string, got number"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), EXPERT_CASES)
def test_expert_rules(path: str, value: object, field: str, reason: str) -> None:
    found = problems(expert_from_dict, _set(expert_dict(), path, value))
    assert has(found, field, reason), found


PROJECT_CASES = [
    ("committee_size", 6, "committee_size", "odd and at least 5"),
    ("committee_size", 3, "committee_size", "odd and at least 5"),
    ("committee_size", True, "committee_size", "expected an integer, got boolean"),
    ("committee_size", "5", "committee_size", "expected an integer, got string"),
    ("large", True, "committee_size", "large, complex purchase needs at least 7"),
    (
        "quotas[0].count",
        3,
        "quotas",
        "quota counts (4) + tenderer_reps (0) must equal committee_size (5)",
    ),
    ("tenderer_reps", 1, "quotas", "quota counts (5) + tenderer_reps (1)"),
    ("tenderer_reps", -1, "tenderer_reps", "must not be negative"),
    ("quotas[0].count", 0, "quotas[0].count", "must be at least 1"),
    ("quotas[0].specialty", "G.1", "quotas[0].specialty", "not a specialty code"),
    ("quotas[1].kind", "legal", "quotas[1].kind", "not one of technical, economic"),
    ("quotas", [], "quotas", "at least one quota"),
    (
        "quotas[1]",
        {"specialty": "G.01", "count": 1, "kind": "technical"},
        "quotas[1]",
        "duplicate quota",
    ),
    ("category", "land", "category", "not one of works, goods, services: 'land'"),
    ("window.start", "2025-03-04T09:00:00", "window.start", "without a UTC offset"),
    ("window.start", "2025-03-04", "window.start", "without a UTC offset"),
    ("window.end", "noon", "window.end", "not an ISO 8601 datetime"),
    ("window.end", "2025-03-04T09:00:00+08:00", "window.end", "must be after window.start"),
    ("window.end", "2025-03-04T00:59:00Z", "window.end", "must be after window.start"),
    ("scoring.method", "lottery", "scoring.method", "not one of comprehensive"),
    ("scoring.method", "works", "scoring.method", "works projects only, not goods"),
    (
        "scoring.price_weight",
        "25",
        "scoring.price_weight",
        "goods: price weight must be at least 30",
    ),
    ("scoring.price_weight", "31", "scoring", "must total 100 points, got 101"),
    ("scoring.price_weight", 30.0, "scoring.price_weight", "floats are inexact"),
    ("scoring.price_weight", "1e2", "scoring.price_weight", "not a decimal number"),
    ("scoring.price_weight", "NaN", "scoring.price_weight", "not a decimal number"),
    ("scoring.price_weight", "101", "scoring.price_weight", "between 0 and 100"),
    ("scoring.criteria[1].id", "C1", "scoring.criteria[1].id", "duplicate criterion id 'C1'"),
    ("scoring.criteria[0].max_score", "0", "scoring.criteria[0].max_score", "must be positive"),
    ("scoring.deviation_threshold", "1.5", "scoring.deviation_threshold", "above 0 and at most 1"),
    ("scoring.deduction_per_point", "0", "scoring.deduction_per_point", "must be positive"),
    (
        "bids[1].bidder_id",
        "C0001",
        "bids[1].bidder_id",
        "duplicate bidder 'C0001', also at bids[0]",
    ),
    ("bids[2].bidder_id", "C0009", "bids[2].bidder_id", "tenderer 'C0009' cannot bid"),
    ("bids[0].price", 1234567.89, "bids[0].price", "floats are inexact"),
    ("bids[0].price", "12.345", "bids[0].price", "at most 2 decimal places"),
    ("bids[0].price", "-5", "bids[0].price", "must be positive"),
    ("bids[0].valid", "yes", "bids[0].valid", "expected true or false"),
    ("bids", [], "bids", "at least one bid"),
    ("host_site_id", "S 01", "host_site_id", "not an id"),
    ("window", _DEL, "window", "required field missing"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), PROJECT_CASES)
def test_project_rules(path: str, value: object, field: str, reason: str) -> None:
    found = problems(project_from_dict, _set(project_dict(), path, value))
    assert has(found, field, reason), found


def test_services_price_weight_floor_and_works_method() -> None:
    data = project_dict()
    data["category"] = "services"
    _set(data, "scoring.price_weight", "5")
    _set(data, "scoring.criteria[0].max_score", "65.5")
    found = problems(project_from_dict, data)
    assert found == [
        ("scoring.price_weight", "services: price weight must be at least 10 of 100 points, got 5")
    ]
    # The works method belongs to works projects, where no price-weight floor applies.
    data["category"] = "works"
    _set(data, "scoring.method", "works")
    assert project_from_dict(data).scoring.method == "works"
    # Lowest price ranks by price alone: the points rule does not apply.
    data["category"] = "goods"
    _set(data, "scoring.method", "lowest_price")
    _set(data, "scoring.price_weight", "100")
    assert project_from_dict(data).scoring.price_weight == 100


SITE_CASES = [
    ("roles", ["judge"], "roles[0]", "not one of host, guest: 'judge'"),
    ("roles", [], "roles", "at least one role"),
    ("venues", [], "venues", "a guest site needs at least one venue with a workstation"),
    ("venues[0].rooms", [], "venues[0].rooms", "a venue needs at least one room"),
    (
        "venues[0].rooms[0].workstations",
        [],
        "venues[0].rooms[0].workstations",
        "at least one workstation",
    ),
    (
        "venues[0].rooms[1].workstations[0].id",
        "S01-V1-R01-W02",
        "venues[0].rooms[1].workstations[0].id",
        "duplicate workstation id 'S01-V1-R01-W02' (also at venues[0].rooms[0].workstations[1].id)",
    ),
    ("venues[0].rooms[1].id", "S01-V1-R01", "venues[0].rooms[1].id", "duplicate room id"),
    (
        "venues[0].rooms[0].workstations[0].attributes",
        "x",
        "venues[0].rooms[0].workstations[0].attributes",
        "expected an array",
    ),
    (
        "venues[0].rooms[0].workstations[0]",
        [],
        "venues[0].rooms[0].workstations[0]",
        "expected an object, got array",
    ),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), SITE_CASES)
def test_site_rules(path: str, value: object, field: str, reason: str) -> None:
    found = problems(site_from_dict, _set(site_dict(), path, value))
    assert has(found, field, reason), found


def test_host_only_site_needs_no_venue_and_venue_city_defaults() -> None:
    data = site_dict()
    data["roles"] = ["host"]
    data["venues"] = []
    assert site_from_dict(data).venues == ()
    data = site_dict()
    del data["venues"][0]["city"]
    assert site_from_dict(data).venues[0].city == "Hangzhou"


COMPANY_CASES = [
    ("credit_code", "91330100MA2B3C4D5", "credit_code", "not a unified social credit code"),
    ("credit_code", "91330100MA2B3C4D5I", "credit_code", "except I, O, S, V, Z"),
    ("group_id", "group one", "group_id", "not an id"),
    ("legal_rep", _DEL, "legal_rep", "required field missing"),
    ("legal_rep", None, "legal_rep", "expected an object, got null"),
    ("key_staff[0].name", "", "key_staff[0].name", "must not be empty"),
    ("principal", {"person_id": "P9"}, "principal.name", "required field missing"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), COMPANY_CASES)
def test_company_rules(path: str, value: object, field: str, reason: str) -> None:
    found = problems(company_from_dict, _set(company_dict(), path, value))
    assert has(found, field, reason), found


def test_every_problem_of_a_record_is_reported_at_once() -> None:
    data = expert_dict()
    data["kind"] = "legal"
    data["employments"][0]["start"] = "2021-13-01"
    data["specialties"] = ["W.01", "Q"]
    del data["phone"]
    found = problems(expert_from_dict, data)
    assert [f for f, _ in found] == ["phone", "kind", "specialties[1]", "employments[0].start"]
    with pytest.raises(RecordError) as info:
        expert_from_dict(data)
    assert "employments[0].start: not a date (YYYY-MM-DD): '2021-13-01'" in str(info.value)
    assert info.value.errors[0] == FieldError("phone", "required field missing")


@pytest.mark.parametrize(
    "decode", [site_from_dict, company_from_dict, expert_from_dict, project_from_dict]
)
def test_a_record_must_be_an_object(decode: Decoder) -> None:
    assert problems(decode, ["not", "an", "object"]) == [("", "expected an object, got array")]


def test_offsets_are_converted_to_utc() -> None:
    data = project_dict()
    data["window"] = {"start": "2025-03-04T01:00:00Z", "end": "2025-03-04T00:00:00-05:00"}
    window = project_from_dict(data).window
    assert window.start == datetime(2025, 3, 4, 1, tzinfo=UTC)
    assert window.end == datetime(2025, 3, 4, 5, tzinfo=UTC)
    assert window.end.tzinfo == UTC


def test_specialty_codes() -> None:
    for good in ("W", "G.02", "S.05.01", "W.01.02.03.04"):
        assert is_specialty_code(good)
    for bad in ("", "w", "WG", "W.1", "W.001", "W.01.", "G.02.01.05.06.07", "T.01"):
        assert not is_specialty_code(bad)


# --- round trips (hypothesis) ----------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16).filter(
    lambda s: bool(s.strip())
)
any_texts = st.text(st.characters(codec="utf-8"), max_size=16)
codes = st.from_regex(r"[WGS](\.[0-9]{2}){0,4}", fullmatch=True)
credit_codes = st.from_regex(r"[0-9A-HJ-NPQRTUWXY]{18}", fullmatch=True)
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
)


def cents(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda c: Decimal(c).scaleb(-2))


@st.composite
def sites(draw: st.DrawFn) -> Site:
    site_id = draw(ids)
    roles = draw(st.frozensets(st.sampled_from(SITE_ROLES), min_size=1))
    city = draw(texts)
    venues = []
    for v in range(draw(st.integers(1 if "guest" in roles else 0, 2))):
        venue_id = f"{site_id}-v{v}"
        rooms = []
        for r in range(draw(st.integers(1, 2))):
            room_id = f"{venue_id}-r{r}"
            stations = tuple(
                Workstation(
                    f"{room_id}-w{w}",
                    site_id,
                    venue_id,
                    room_id,
                    draw(st.frozensets(texts, max_size=2)),
                )
                for w in range(draw(st.integers(1, 3)))
            )
            rooms.append(Room(room_id, venue_id, draw(texts), stations))
        venues.append(
            Venue(venue_id, site_id, draw(texts), draw(st.just(city) | texts), tuple(rooms))
        )
    return Site(site_id, draw(texts), city, roles, tuple(venues))


company_refs = st.one_of(
    st.builds(CompanyRef, texts, st.none() | credit_codes),
    st.builds(CompanyRef, any_texts, credit_codes),
)
persons = st.builds(Person, ids, texts)
companies = st.builds(
    Company,
    id=ids,
    name=texts,
    credit_code=st.none() | credit_codes,
    group_id=st.none() | ids,
    legal_rep=persons,
    principal=st.none() | persons,
    key_staff=st.lists(persons, max_size=3).map(tuple),
)


@st.composite
def employments(draw: st.DrawFn) -> Employment:
    start = draw(dates)
    end = draw(st.none() | st.dates(min_value=start, max_value=date(2100, 12, 31)))
    return Employment(draw(company_refs), start, end)


def unique(
    strategy: st.SearchStrategy[str], min_size: int = 0
) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(strategy, min_size=min_size, max_size=3, unique=True).map(tuple)


experts = st.builds(
    Expert,
    id=ids,
    name=texts,
    id_number=texts,
    phone=texts,
    city=texts,
    work_city=texts,
    birth_date=dates,
    kind=st.sampled_from(EXPERT_KINDS),
    specialties=unique(codes, min_size=1),
    status=st.sampled_from(EXPERT_STATUSES),
    employments=st.lists(employments(), max_size=3).map(tuple),
    interests=st.lists(company_refs, max_size=2).map(tuple),
    relatives=st.lists(st.builds(Relative, ids, texts, st.sampled_from(RELATIONS)), max_size=2).map(
        tuple
    ),
    departments=unique(texts),
    declared_conflicts=st.lists(company_refs, max_size=2).map(tuple),
    penalties=st.lists(st.builds(Penalty, dates, texts), max_size=2).map(tuple),
    catchment=unique(texts),
)


def _split(draw: st.DrawFn, total: int, parts: int) -> list[int]:
    """`total` as `parts` positive parts (fewer when `total` is smaller: a 1 cannot split)."""
    parts = min(parts, total)
    if parts <= 1:
        return [total] if total else []
    cuts = sorted(
        draw(
            st.lists(st.integers(1, total - 1), min_size=parts - 1, max_size=parts - 1, unique=True)
        )
    )
    bounds = [0, *cuts, total]
    return [bounds[i + 1] - bounds[i] for i in range(parts)]


@st.composite
def projects(draw: st.DrawFn) -> Project:
    category: Category = draw(st.sampled_from(CATEGORIES))
    methods: list[ScoringMethodName] = ["comprehensive", "lowest_price"]
    if category == "works":
        methods.append("works")
    method = draw(st.sampled_from(methods))
    floor = {"goods": 3000, "services": 1000}.get(category, 0) if method == "comprehensive" else 0
    weight_cents = draw(st.integers(floor, 10000))
    if method == "lowest_price":
        points = [draw(st.integers(1, 5000)) for _ in range(draw(st.integers(0, 4)))]
    else:
        rest = 10000 - weight_cents
        points = _split(draw, rest, draw(st.integers(1, min(5, rest)))) if rest else []
    criteria = tuple(
        Criterion(f"c{i}", draw(texts), Decimal(p).scaleb(-2), draw(st.booleans()))
        for i, p in enumerate(points)
    )
    scoring = ScoringMethod(
        method,
        Decimal(weight_cents).scaleb(-2),
        criteria,
        draw(cents(1, 500)),
        draw(cents(1, 100)),
    )
    large = draw(st.booleans())
    size = draw(st.sampled_from([7, 9, 11] if large else [5, 7, 9]))
    reps = draw(st.integers(0, 2))
    drawn = size - reps
    counts = _split(draw, drawn, draw(st.integers(1, 3)))
    spec = draw(st.lists(codes, min_size=len(counts), max_size=len(counts), unique=True))
    quotas = tuple(
        Quota(s, c, draw(st.none() | st.sampled_from(EXPERT_KINDS)))
        for s, c in zip(spec, counts, strict=True)
    )
    start = draw(st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=zones))
    end = start + draw(st.timedeltas(timedelta(seconds=1), timedelta(days=2)))
    tenderer = draw(ids)
    bidders = draw(
        st.lists(ids.filter(lambda b: b != tenderer), min_size=1, max_size=5, unique=True)
    )
    bids = tuple(Bid(b, draw(cents(1, 10**12)), draw(st.booleans())) for b in bidders)
    return Project(
        id=draw(ids),
        name=draw(texts),
        host_site_id=draw(ids),
        city=draw(texts),
        tenderer_id=tenderer,
        category=category,
        committee_size=size,
        quotas=quotas,
        window=Window(start, end),
        scoring=scoring,
        bids=bids,
        competent_department=draw(any_texts),
        tenderer_reps=reps,
        double_blind=draw(st.booleans()),
        large=large,
    )


def _through_json(data: dict[str, Any]) -> object:
    return json.loads(json.dumps(data, ensure_ascii=False))


@settings(max_examples=60, deadline=None)
@given(sites())
def test_site_round_trip(site: Site) -> None:
    assert site_from_dict(site_to_dict(site)) == site
    assert site_from_dict(_through_json(site_to_dict(site))) == site


@settings(max_examples=60, deadline=None)
@given(companies)
def test_company_round_trip(company: Company) -> None:
    assert company_from_dict(_through_json(company_to_dict(company))) == company


@settings(max_examples=60, deadline=None)
@given(experts)
def test_expert_round_trip(expert: Expert) -> None:
    assert expert_from_dict(_through_json(expert_to_dict(expert))) == expert


@settings(max_examples=80, deadline=None)
@given(projects())
def test_project_round_trip(project: Project) -> None:
    out = project_to_dict(project)
    back = project_from_dict(_through_json(out))
    assert back == project
    assert back.window.start.tzinfo == UTC
    assert project_to_dict(back) == out  # canonical: a second pass changes nothing


def test_province_to_dicts_keeps_order() -> None:
    site = site_from_dict(site_dict())
    expert = expert_from_dict(expert_dict())
    province = Province(sites=(site,), experts=(expert, expert))
    out = province_to_dicts(province)
    assert list(out) == ["sites", "companies", "experts", "projects"]
    assert out["experts"] == [expert_to_dict(expert)] * 2 and out["projects"] == []


def test_documented_example_lines_decode() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "province-files.md"
    blocks = re.findall(r"```json\n(.*?)\n```", doc.read_text(encoding="utf-8"), re.S)
    decoders: list[Decoder] = [
        city_from_dict,
        site_from_dict,
        company_from_dict,
        expert_from_dict,
        project_from_dict,
    ]
    assert len(blocks) == len(decoders)
    for block, decode in zip(blocks, decoders, strict=True):
        decode(json.loads(block))
