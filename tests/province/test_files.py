"""Importer: all-or-nothing loads that name file, line, field and reason for every problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordinator.domain.model import Province
from coordinator.province.files import (
    FILE_NAMES,
    ImportFailed,
    ImportProblem,
    load_province,
    write_province,
)


def _ws(site: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{site}-W{i}", "attributes": []} for i in range(1, n + 1)]


def _site(site_id: str, city: str, roles: list[str]) -> dict[str, Any]:
    rooms = [{"id": f"{site_id}-R1", "name": "Room 1", "workstations": _ws(site_id, 4)}]
    venues = [{"id": f"{site_id}-V1", "name": "Area A", "rooms": rooms}] if "guest" in roles else []
    return {"id": site_id, "name": f"{city} centre", "city": city, "roles": roles, "venues": venues}


def _company(company_id: str) -> dict[str, Any]:
    return {
        "id": company_id,
        "name": f"Company {company_id} Co., Ltd.",
        "legal_rep": {"person_id": f"P-{company_id}", "name": "Wang Wei"},
    }


def _expert(expert_id: str, city: str) -> dict[str, Any]:
    return {
        "id": expert_id,
        "name": "Zhang Min",
        "id_number": "330102197001011234",
        "phone": "13800000000",
        "city": city,
        "work_city": city,
        "birth_date": "1970-01-01",
        "kind": "technical",
        "specialties": ["W.01"],
        "employments": [
            {"company": {"name": "company c2 co ltd"}, "start": "2001-01-01", "end": None}
        ],
    }


def _project(project_id: str, host: str = "S1", tenderer: str = "C1") -> dict[str, Any]:
    return {
        "id": project_id,
        "name": "School building",
        "host_site_id": host,
        "city": "Hangzhou",
        "tenderer_id": tenderer,
        "category": "works",
        "committee_size": 5,
        "quotas": [
            {"specialty": "W.01", "count": 4, "kind": "technical"},
            {"specialty": "S.05", "count": 1, "kind": "economic"},
        ],
        "window": {"start": "2025-03-04T09:00:00+08:00", "end": "2025-03-04T12:00:00+08:00"},
        "scoring": {
            "method": "works",
            "price_weight": "50",
            "criteria": [{"id": "C1", "name": "Design", "max_score": "50"}],
        },
        "bids": [
            {"bidder_id": "C2", "price": "1000000.00"},
            {"bidder_id": "C3", "price": "990000.00"},
            {"bidder_id": "C4", "price": "1010000.00"},
        ],
    }


def good_records() -> dict[str, list[dict[str, Any]]]:
    return {
        "cities.jsonl": [
            {"name": "Hangzhou", "aliases": ["杭州", "杭州市", "Hangchow"],
             "districts": [{"name": "Xihu", "aliases": ["西湖区"]}]},
            {"name": "Ningbo", "aliases": ["宁波", "宁波市"]},
            {"name": "Wenzhou"},
            {"name": "Lishui", "aliases": ["丽水市"]},
        ],
        "sites.jsonl": [
            _site("S1", "Hangzhou", ["host", "guest"]),
            _site("S2", "Ningbo", ["guest"]),
            _site("S3", "Ningbo", ["host"]),
        ],
        "companies.jsonl": [_company(f"C{i}") for i in range(1, 6)],
        "experts.jsonl": [_expert("E1", "Ningbo"), _expert("E2", "Wenzhou")],
        "projects.jsonl": [_project("P1"), _project("P2", host="S3")],
    }


def write_records(directory: Path, records: dict[str, list[Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in records.items():
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        (directory / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return directory


def load_problems(directory: Path, **kwargs: int) -> ImportFailed:
    with pytest.raises(ImportFailed) as info:
        load_province(directory, **kwargs)
    return info.value


def where(failed: ImportFailed) -> set[tuple[str, int, str]]:
    return {(p.file, p.line, p.field) for p in failed.problems}


def test_good_files_load(tmp_path: Path) -> None:
    province = load_province(write_records(tmp_path, good_records()))
    assert [s.id for s in province.sites] == ["S1", "S2", "S3"]
    assert len(province.companies) == 5 and len(province.experts) == 2
    assert province.projects[1].host_site_id == "S3"
    assert province.sites[0].venues[0].city == "Hangzhou"


def test_write_then_load_is_identity_and_deterministic(tmp_path: Path) -> None:
    province = load_province(write_records(tmp_path / "in", good_records()))
    write_province(province, tmp_path / "a")
    write_province(province, tmp_path / "b")
    assert load_province(tmp_path / "a") == province
    for name in FILE_NAMES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(FILE_NAMES)


def test_empty_province_round_trips(tmp_path: Path) -> None:
    write_province(Province(), tmp_path)
    assert load_province(tmp_path) == Province()


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    records: dict[str, list[Any]] = good_records()
    bad = _expert("E3", "Ningbo")
    bad["birth_date"] = "1970-02-30"
    records["experts.jsonl"] = ["", records["experts.jsonl"][0], "   ", bad]
    failed = load_problems(write_records(tmp_path, records))
    assert where(failed) == {("experts.jsonl", 4, "birth_date")}
    records["experts.jsonl"] = ["", "", *good_records()["experts.jsonl"], ""]
    assert len(load_province(write_records(tmp_path, records)).experts) == 2


def test_several_bad_rows_are_all_reported_and_nothing_returned(tmp_path: Path) -> None:
    records: dict[str, list[Any]] = good_records()
    expert = _expert("E3", "Ningbo")
    expert["employments"][0]["start"] = "2021-13-01"
    expert["kind"] = "lawyer"
    records["experts.jsonl"].append(expert)  # line 3
    records["companies.jsonl"][1]["credit_code"] = "123"  # line 2
    records["projects.jsonl"][0]["quotas"][0]["count"] = 3  # line 1
    records["sites.jsonl"].append('{"id": "S9", ')  # line 4
    records["sites.jsonl"].append("[1, 2]")  # line 5
    failed = load_problems(write_records(tmp_path, records))
    assert where(failed) == {
        ("sites.jsonl", 4, ""),
        ("sites.jsonl", 5, ""),
        ("companies.jsonl", 2, "credit_code"),
        ("experts.jsonl", 3, "kind"),
        ("experts.jsonl", 3, "employments[0].start"),
        ("projects.jsonl", 1, "quotas"),
    }
    assert failed.total == 6
    text = str(failed)
    assert text.startswith("6 problems in province files:")
    assert "experts.jsonl:3: employments[0].start: not a date (YYYY-MM-DD): '2021-13-01'" in text
    assert "sites.jsonl:4: invalid JSON" in text
    assert "sites.jsonl:5: expected an object, got array" in text
    # Problems come in file order, then line order.
    files = [p.file for p in failed.problems]
    assert files == sorted(files, key=FILE_NAMES.index)


def test_problem_text() -> None:
    problem = ImportProblem(
        "experts.jsonl", 17, "employments[0].start", "not a date (YYYY-MM-DD): '2021-13-01'"
    )
    assert (
        str(problem)
        == "experts.jsonl:17: employments[0].start: not a date (YYYY-MM-DD): '2021-13-01'"
    )
    assert (
        str(ImportProblem("sites.jsonl", 0, "", "file not found")) == "sites.jsonl: file not found"
    )


def test_duplicate_ids_across_records(tmp_path: Path) -> None:
    records = good_records()
    records["experts.jsonl"].append(_expert("E1", "Lishui"))  # line 3
    other = _site("S4", "Lishui", ["guest"])
    other["venues"][0]["rooms"][0]["workstations"][2]["id"] = "S1-W1"
    other["venues"][0]["id"] = "S2-V1"
    records["sites.jsonl"].append(other)  # line 4
    records["sites.jsonl"].append(_site("S2", "Lishui", ["host"]))  # line 5
    records["companies.jsonl"].append(_company("C3"))  # line 6
    records["projects.jsonl"].append(_project("P1"))  # line 3
    failed = load_problems(write_records(tmp_path, records))
    reasons = {(p.file, p.line, p.field): p.reason for p in failed.problems}
    assert reasons == {
        ("experts.jsonl", 3, "id"): "duplicate expert id 'E1' (first at line 1)",
        ("sites.jsonl", 4, "venues[0].id"): "duplicate venue id 'S2-V1' (first at line 2)",
        ("sites.jsonl", 4, "venues[0].rooms[0].workstations[2].id"): (
            "duplicate workstation id 'S1-W1' (first at line 1)"
        ),
        ("sites.jsonl", 5, "id"): "duplicate site id 'S2' (first at line 2)",
        ("companies.jsonl", 6, "id"): "duplicate company id 'C3' (first at line 3)",
        ("projects.jsonl", 3, "id"): "duplicate project id 'P1' (first at line 1)",
    }


def test_dangling_references_and_host_role(tmp_path: Path) -> None:
    records = good_records()
    records["projects.jsonl"] = [
        _project("P1", host="S404"),
        _project("P2", host="S2"),  # a guest-only site
        _project("P3", tenderer="C404"),
    ]
    records["projects.jsonl"][0]["bids"][1]["bidder_id"] = "C405"
    failed = load_problems(write_records(tmp_path, records))
    reasons = {(p.line, p.field): p.reason for p in failed.problems}
    assert reasons == {
        (1, "host_site_id"): "no site 'S404' in sites.jsonl",
        (1, "bids[1].bidder_id"): "no company 'C405' in companies.jsonl",
        (2, "host_site_id"): "site 'S2' lacks the host role",
        (3, "tenderer_id"): "no company 'C404' in companies.jsonl",
    }
    assert {p.file for p in failed.problems} == {"projects.jsonl"}


def test_a_broken_record_does_not_cascade_into_dangling_references(tmp_path: Path) -> None:
    records = good_records()
    records["companies.jsonl"][0]["legal_rep"] = None  # C1, the tenderer, fails itself
    records["sites.jsonl"][0]["roles"] = ["host", "judge"]  # S1, the host, fails itself
    failed = load_problems(write_records(tmp_path, records))
    assert where(failed) == {("companies.jsonl", 1, "legal_rep"), ("sites.jsonl", 1, "roles[1]")}


def test_missing_files_and_bad_bytes(tmp_path: Path) -> None:
    records = good_records()
    del records["projects.jsonl"]
    directory = write_records(tmp_path, records)
    with (directory / "experts.jsonl").open("ab") as handle:
        handle.write(b'{"id": "E\xff"}\n')
    failed = load_problems(directory)
    assert where(failed) == {("projects.jsonl", 0, ""), ("experts.jsonl", 3, "")}
    assert any("not valid UTF-8" in p.reason for p in failed.problems)
    assert load_problems(tmp_path / "nowhere").total == 5  # the five files


def test_problem_list_is_capped_but_counted(tmp_path: Path) -> None:
    records: dict[str, list[Any]] = good_records()
    records["experts.jsonl"] = ["not json"] * 250
    failed = load_problems(write_records(tmp_path, records), max_listed=50)
    assert failed.total == 250 and len(failed.problems) == 50
    assert str(failed).endswith("... and 200 more")
    default = load_problems(tmp_path)
    assert len(default.problems) == 200 and default.total == 250


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    directory = write_records(tmp_path, good_records())
    path = directory / "companies.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_province(directory).companies) == 5


# --- the city registry and the committee rules ---------------------------------------------


def test_an_unknown_city_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    records = good_records()
    records["projects.jsonl"][1]["city"] = "Hangzho"
    records["experts.jsonl"][0]["work_city"] = "Ningpo"
    records["experts.jsonl"][1]["catchment"] = ["Wenzhou", "Atlantis"]
    records["sites.jsonl"][1]["venues"][0]["city"] = "Ningbo "
    failed = load_problems(write_records(tmp_path, records))
    shown = [str(p) for p in failed.problems]
    assert "projects.jsonl:2: city: unknown city 'Hangzho' (did you mean 'Hangzhou'?)" in shown
    assert "experts.jsonl:1: work_city: unknown city 'Ningpo' (did you mean 'Ningbo'?)" in shown
    assert "experts.jsonl:2: catchment[1]: unknown city 'Atlantis'" in shown
    assert "sites.jsonl:2: venues[0].city: unknown city 'Ningbo ' (did you mean 'Ningbo'?)" \
        in shown
    assert failed.total == 4


def test_a_city_alias_is_stored_as_the_city(tmp_path: Path) -> None:
    records = good_records()
    records["projects.jsonl"][0]["city"] = "杭州市"
    records["experts.jsonl"][0]["city"] = "宁波"
    records["sites.jsonl"][0]["city"] = "Hangchow"
    province = load_province(write_records(tmp_path, records))
    assert province.projects[0].city == "Hangzhou"
    assert province.experts[0].city == "Ningbo"
    assert province.sites[0].city == "Hangzhou"
    assert province.cities[0].districts[0].aliases == ("西湖区",)


def test_the_city_registry_itself_is_checked(tmp_path: Path) -> None:
    records = good_records()
    records["cities.jsonl"].append({"name": "Ningbo2", "aliases": ["杭州"]})
    records["cities.jsonl"].append({"name": "", "districts": [{"aliases": []}]})
    failed = load_problems(write_records(tmp_path, records))
    assert where(failed) == {("cities.jsonl", 5, "aliases"), ("cities.jsonl", 6, "name"),
                             ("cities.jsonl", 6, "districts[0].name")}
    (tmp_path / "cities.jsonl").unlink()
    assert ("cities.jsonl", 0, "") in where(load_problems(tmp_path))


def test_committee_rules_apply_at_import(tmp_path: Path) -> None:
    records = good_records()
    # 7 members, 3 of them tenderer's representatives: 4/7 < 2/3.
    records["projects.jsonl"][0]["committee_size"] = 7
    records["projects.jsonl"][0]["tenderer_reps"] = 3
    records["projects.jsonl"][0]["quotas"][0]["count"] = 3
    # A large project needs 7 members.
    records["projects.jsonl"][1]["large"] = True
    failed = load_problems(write_records(tmp_path, records))
    shown = [str(p) for p in failed.problems]
    assert shown[0] == \
        "projects.jsonl:1: tenderer_reps: share: technical and economic experts 4/7 < 2/3"
    assert shown[1].startswith("projects.jsonl:2: committee_size: ") and len(shown) == 2
