"""Generator: reproducible, loads cleanly, and looks like a real province."""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from datetime import UTC, date, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from coordinator.domain.model import Province
from coordinator.province.codec.fields import CREDIT_CODE_RE, is_specialty_code
from coordinator.province.codec.province import province_to_dicts
from coordinator.province.files import load_province, write_province
from coordinator.province.generator import (
    AGE_LIMIT,
    CITY_NAMES,
    ECONOMIC_SPECIALTY,
    LOCAL_TZ,
    SPECIALTY_TREE,
    generate_province,
    name_variant,
)

DAY = date(2025, 3, 4)
SMALL = {
    "cities": 4,
    "sites": 12,
    "workstations": 200,
    "experts": 600,
    "companies": 150,
    "projects": 20,
}


@pytest.fixture(scope="module")
def province() -> Province:
    return generate_province(seed=42, day=DAY, **SMALL)


def canonical(name: str) -> str:
    """How a matcher might normalise company names: width, case, legal form, punctuation."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum()).replace("companylimited", "coltd")


def under(code: str, prefix: str) -> bool:
    return code == prefix or code.startswith(prefix + ".")


def test_same_seed_same_province_other_seed_other(province: Province) -> None:
    again = generate_province(seed=42, day=DAY, **SMALL)
    assert again == province
    assert province_to_dicts(again) == province_to_dicts(province)
    other = generate_province(seed=43, day=DAY, **SMALL)
    assert other != province
    assert [x.name for x in other.experts] != [x.name for x in province.experts]


def test_sizes_are_respected(province: Province) -> None:
    assert len(province.sites) == 12 and len(province.experts) == 600
    assert len(province.companies) == 150 and len(province.projects) == 20
    stations = [ws for s in province.sites for v in s.venues for ws in v.workstations]
    assert 200 <= len(stations) <= 210
    assert {s.city for s in province.sites} == set(CITY_NAMES[:4])


def test_generated_province_loads_cleanly(province: Province, tmp_path: Path) -> None:
    write_province(province, tmp_path)
    assert load_province(tmp_path) == province


def test_every_city_has_two_guest_sites_and_a_host(province: Province) -> None:
    guests = Counter(s.city for s in province.sites if "guest" in s.roles)
    hosts = Counter(s.city for s in province.sites if "host" in s.roles)
    for city in CITY_NAMES[:4]:
        assert guests[city] >= 2 and hosts[city] >= 1


def test_site_layout(province: Province) -> None:
    for site in province.sites:
        if "guest" in site.roles:
            assert 1 <= len(site.venues) <= 2
        for venue in site.venues:
            assert venue.city == site.city
            for room in venue.rooms:
                assert 4 <= len(room.workstations) <= 12


def test_extra_cities_get_placeholder_names() -> None:
    p = generate_province(
        seed=1, day=DAY, cities=18, sites=40, workstations=200, experts=50, companies=20, projects=2
    )
    assert {"City-17", "City-18"} <= {s.city for s in p.sites}


def test_expert_realism(province: Province) -> None:
    experts = province.experts
    kinds = Counter(x.kind for x in experts)
    assert 0.65 < kinds["technical"] / len(experts) < 0.85
    codes = {code for code, _ in SPECIALTY_TREE}
    for x in experts:
        assert 1 <= len(x.specialties) <= 3
        assert all(c in codes and 2 <= c.count(".") + 1 <= 3 for c in x.specialties)
        economic = all(under(c, ECONOMIC_SPECIALTY) for c in x.specialties)
        assert economic == (x.kind == "economic")
        assert 30 <= (DAY - x.birth_date).days / 365.25 <= 77
        assert x.id_number[6:14] == f"{x.birth_date:%Y%m%d}"
        assert _id_check_ok(x.id_number)
        for e in x.employments:
            assert e.start <= DAY and (e.end is None or e.start <= e.end <= DAY)
    assert any((DAY - x.birth_date).days / 365.25 > AGE_LIMIT for x in experts)
    statuses = Counter(x.status for x in experts)
    assert statuses["active"] > 0.85 * len(experts)
    assert statuses["active"] < len(experts)
    assert any(x.penalties for x in experts) and any(x.departments for x in experts)
    assert any(x.declared_conflicts for x in experts) and any(x.catchment for x in experts)
    assert len({x.id_number for x in experts}) == len(experts)


def _id_check_ok(number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(w * int(c) for w, c in zip(weights, number[:17], strict=True))
    return "10X98765432"[total % 11] == number[17]


def test_employers_use_name_variants_and_credit_codes(province: Province) -> None:
    names = {c.name for c in province.companies}
    by_key = {canonical(c.name): c for c in province.companies}
    codes = {c.credit_code for c in province.companies if c.credit_code}
    refs = [e.company for x in province.experts for e in x.employments]
    variants = [r for r in refs if r.name and r.name not in names and canonical(r.name) in by_key]
    assert len(variants) >= 5
    assert any(r.name == "" and r.credit_code in codes for r in refs)
    assert any(r.name in names for r in refs)
    for ref in variants:
        if ref.credit_code is not None:
            assert by_key[canonical(ref.name)].credit_code == ref.credit_code
    # Registry names stay distinct once variants are folded away.
    assert len(by_key) == len(province.companies)


def test_relatives_point_at_registry_people(province: Province) -> None:
    people = {p.person_id: p for c in province.companies for p in c.people}
    linked = [r for x in province.experts for r in x.relatives if r.person_id in people]
    assert linked
    assert all(people[r.person_id].name == r.name for r in linked)


def test_companies(province: Province) -> None:
    companies = province.companies
    with_code = [c for c in companies if c.credit_code]
    assert len(with_code) > 0.75 * len(companies)
    assert all(CREDIT_CODE_RE.fullmatch(c.credit_code or "") for c in with_code)
    assert all(_uscc_check_ok(c.credit_code or "") for c in with_code)
    grouped = [c for c in companies if c.group_id]
    assert 0.08 < len(grouped) / len(companies) < 0.4
    assert all(Counter(c.group_id for c in grouped)[g] >= 2 for g in {c.group_id for c in grouped})


def _uscc_check_ok(code: str) -> bool:
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(w * chars.index(c) for w, c in zip(weights, code[:17], strict=True))
    return chars[(31 - total % 31) % 31] == code[17]


def test_projects_are_well_formed_and_fillable(province: Province) -> None:
    sites = {s.id: s for s in province.sites}
    active = [x for x in province.experts if x.status == "active"]
    for p in province.projects:
        host = sites[p.host_site_id]
        assert "host" in host.roles and p.city == host.city
        assert sum(q.count for q in p.quotas) + p.tenderer_reps == p.committee_size
        assert p.committee_size == (7 if p.large else 5)
        assert 3 <= len(p.bids) <= 8 and p.tenderer_id not in p.bidder_ids
        assert all(b.price == b.price.quantize(Decimal("0.01")) for b in p.bids)
        start = p.window.start.astimezone(LOCAL_TZ).time()
        end = p.window.end.astimezone(LOCAL_TZ).time()
        assert (start, end) in {(time(9), time(12)), (time(14), time(17, 30))}
        assert p.window.start.tzinfo == UTC and p.window.start.date() == DAY
        for q in p.quotas:
            assert is_specialty_code(q.specialty)
            pool = [
                x
                for x in active
                if x.city != p.city and any(under(c, q.specialty) for c in x.specialties)
            ]
            assert len(pool) >= 3 * q.count, (p.id, q)
        economic = [q for q in p.quotas if q.kind == "economic"]
        assert [q.specialty for q in economic] == [ECONOMIC_SPECIALTY]
        technical = [q for q in p.quotas if q.kind == "technical"]
        top = {"works": "W", "goods": "G", "services": "S"}[p.category]
        assert all(q.specialty[0] == top for q in technical)


def test_scoring_matches_category(province: Province) -> None:
    p = generate_province(seed=5, day=DAY, **{**SMALL, "projects": 120})
    methods = Counter((x.category, x.scoring.method) for x in p.projects)
    assert methods[("works", "works")] and methods[("goods", "comprehensive")]
    assert methods[("services", "comprehensive")]
    assert any(m == "lowest_price" for _, m in methods)
    for project in p.projects:
        s = project.scoring
        if s.method == "lowest_price":
            continue
        assert 3 <= len(s.criteria) <= 6
        assert s.price_weight + sum(c.max_score for c in s.criteria) == 100
        if project.category == "goods":
            assert 30 <= s.price_weight <= 40
        if project.category == "services":
            assert 10 <= s.price_weight <= 30
        if s.method == "works":
            assert project.category == "works"
    assert any(not b.valid for x in p.projects for b in x.bids)


def test_name_variant_differs_but_normalises_the_same() -> None:
    rng = random.Random(3)
    for name in (
        "Hangzhou Hengda Construction Engineering Co., Ltd.",
        "Hengda Machinery (Ningbo) Co., Ltd.",
        "Zhejiang Ruilong Cost Consulting Company Limited",
    ):
        seen = {name_variant(rng, name) for _ in range(30)}
        assert name not in seen and len(seen) > 5
        assert {canonical(v) for v in seen} == {canonical(name)}


def test_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="two guest sites"):
        generate_province(seed=1, day=DAY, cities=10, sites=15)
    with pytest.raises(ValueError, match="at least 4 companies"):
        generate_province(
            seed=1, day=DAY, cities=2, sites=4, workstations=20, experts=10, companies=2
        )


def test_national_scale_at_one_hundredth_keeps_its_counts_and_is_drawable() -> None:
    """The national size divided by 100 (generating the real one takes half a minute): every
    count is what was asked, the day is cut into slots, and every project can be drawn."""
    from coordinator.domain.conflicts import ConflictIndex
    from coordinator.domain.draw.algorithm import draw
    from coordinator.domain.draw.outcome import DrawOutcome
    from coordinator.domain.eligibility import DayScreen, PoolIndex
    from coordinator.domain.rules import load_rules
    from coordinator.province.generator import SCALES, count_relations

    national = SCALES["national"]
    documented = ("experts", "sites", "workstations", "relations", "projects")
    assert [national[k] for k in documented] == [300_000, 3_000, 30_000, 1_000_000, 20_000]
    size = {k: v // 100 for k, v in national.items()}
    prov = generate_province(seed=7, day=DAY, **size)
    assert len(prov.experts) == size["experts"] and len(prov.sites) == size["sites"]
    assert len(prov.companies) == size["companies"] and len(prov.projects) == size["projects"]
    assert len({s.city for s in prov.sites}) == size["cities"]
    stations = sum(len(v.workstations) for s in prov.sites for v in s.venues)
    assert size["workstations"] <= stations <= size["workstations"] * 1.05
    assert size["relations"] <= count_relations(prov.experts) <= size["relations"] * 1.01

    windows = Counter((p.window.start, p.window.end) for p in prov.projects)
    assert len(windows) == 8  # four one-hour slots in each half-day
    for start, end in windows:
        local = start.astimezone(LOCAL_TZ), end.astimezone(LOCAL_TZ)
        assert local[0].date() == DAY and (local[0].hour < 12) == (local[1].hour <= 12)
        assert end - start == timedelta(hours=1)

    rules = load_rules()
    pool = PoolIndex.build(prov.experts, rules)
    day = DayScreen(pool, ConflictIndex.build(prov.experts, prov.companies, rules), prov.sites,
                    rules, DAY - timedelta(days=1))
    host_city = {s.id: s.city for s in prov.sites}
    drawn = 0
    for p in sorted(prov.projects, key=lambda p: (p.window.start, p.id)):
        result = draw(day.inputs(p, host_city[p.host_site_id]), bytes(32))
        if isinstance(result, DrawOutcome):
            day.book(p, [(s.expert_id, s.workstation_id) for s in result.seats])
            drawn += 1
    assert drawn == len(prov.projects)
