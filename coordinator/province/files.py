"""The province on disk: five JSON-lines files, read all-or-nothing with every problem listed.

An import feeds the draw, so a half-loaded registry is worse than none: `load_province` either
returns the whole province or raises `ImportFailed` naming file, line, field and reason for each
problem (the first `MAX_LISTED`, with the total), including references between records that the
codec alone cannot see. Files are read line by line so a national pool (300,000 experts) streams
through without holding the text in memory.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from coordinator.domain.committee import check_composition
from coordinator.domain.model import City, Company, Expert, Project, Province, Site
from coordinator.domain.rules import Rules, load_rules
from coordinator.province.codec.companies import company_from_dict, company_to_dict
from coordinator.province.codec.experts import expert_from_dict, expert_to_dict
from coordinator.province.codec.fields import JsonDict, RecordError
from coordinator.province.codec.places import (
    city_from_dict,
    city_to_dict,
    site_from_dict,
    site_to_dict,
)
from coordinator.province.codec.projects import project_from_dict, project_to_dict

__all__ = [
    "CITIES_FILE",
    "COMPANIES_FILE",
    "EXPERTS_FILE",
    "FILE_NAMES",
    "MAX_LISTED",
    "PROJECTS_FILE",
    "SITES_FILE",
    "ImportFailed",
    "ImportProblem",
    "load_province",
    "write_province",
]

CITIES_FILE = "cities.jsonl"
SITES_FILE = "sites.jsonl"
COMPANIES_FILE = "companies.jsonl"
EXPERTS_FILE = "experts.jsonl"
PROJECTS_FILE = "projects.jsonl"
# Read in this order: everything names cities; projects refer to sites and companies.
FILE_NAMES = (CITIES_FILE, SITES_FILE, COMPANIES_FILE, EXPERTS_FILE, PROJECTS_FILE)
MAX_LISTED = 200

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One problem in one file: line 0 means the file as a whole (e.g. missing)."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class ImportFailed(Exception):
    """Nothing was imported; `problems` lists the first problems found, `total` counts all."""

    def __init__(self, problems: list[ImportProblem], total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        lines = [str(p) for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"... and {self.total - len(self.problems)} more")
        noun = "problem" if self.total == 1 else "problems"
        super().__init__(f"{self.total} {noun} in province files:\n" + "\n".join(lines))


class _Problems:
    """Counts every problem but keeps only the first `cap`, so a garbage file stays cheap."""

    __slots__ = ("cap", "items", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: list[ImportProblem] = []
        self.total = 0

    def add(self, file: str, line: int, field: str, reason: str) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(ImportProblem(file, line, field, reason))


class _Ids:
    """First line of each id of one kind, to report duplicates across records."""

    __slots__ = ("file", "first", "kind", "problems")

    def __init__(self, problems: _Problems, file: str, kind: str) -> None:
        self.problems = problems
        self.file = file
        self.kind = kind
        self.first: dict[str, int] = {}

    def see(self, ident: str, line: int, field: str) -> None:
        first = self.first.setdefault(ident, line)
        # Duplicates inside one record were already reported by the codec.
        if first != line:
            self.problems.add(
                self.file,
                line,
                field,
                f"duplicate {self.kind} id {ident!r} (first at line {first})",
            )


def _records(
    directory: Path,
    name: str,
    decode: Callable[[object], R],
    problems: _Problems,
    failed_ids: set[str],
) -> Iterator[tuple[int, R]]:
    """Yield (line number, record) for each good line; report the bad ones and go on.

    The ids of records that failed validation go to `failed_ids`, so references to them are not
    reported a second time as dangling.
    """
    path = directory / name
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        problems.add(name, 0, "", f"file not found in {directory}")
        return
    except OSError as exc:
        problems.add(name, 0, "", f"cannot read: {exc.strerror or exc}")
        return
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.add(name, line_no, "", f"not valid UTF-8 (byte {exc.start + 1})")
                continue
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                data: Any = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.add(name, line_no, "", f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            try:
                record = decode(data)
            except RecordError as exc:
                for err in exc.errors:
                    problems.add(name, line_no, err.field, err.reason)
                if isinstance(data, Mapping) and isinstance(data.get("id"), str):
                    failed_ids.add(data["id"])
                continue
            yield line_no, record


class _Cities:
    """The city registry: every spelling (name or alias) to its city's name, and the check
    of each city a record names, with a suggestion for a near miss."""

    __slots__ = ("canonical", "problems")

    def __init__(self, problems: _Problems) -> None:
        self.problems = problems
        self.canonical: dict[str, str] = {}

    def add(self, city: City, line: int) -> None:
        for spelling in city.spellings:
            first = self.canonical.setdefault(spelling, city.name)
            if first != city.name:
                self.problems.add(CITIES_FILE, line, "aliases" if spelling != city.name
                                  else "name", f"{spelling!r} already names city {first!r}")

    def check(self, file: str, line: int, field: str, name: str) -> str:
        """The city's registry name; an unknown one is reported (and returned as is)."""
        found = self.canonical.get(name)
        if found is not None:
            return found
        near = difflib.get_close_matches(name, self.canonical, n=1, cutoff=0.6)
        hint = f" (did you mean {self.canonical[near[0]]!r}?)" if near else ""
        self.problems.add(file, line, field, f"unknown city {name!r}{hint}")
        return name


def _site_cities(site: Site, cities: _Cities, line: int) -> Site:
    city = cities.check(SITES_FILE, line, "city", site.city)
    venues = tuple(replace(v, city=cities.check(SITES_FILE, line, f"venues[{i}].city", v.city))
                   for i, v in enumerate(site.venues))
    if city == site.city and all(a.city == b.city for a, b in zip(venues, site.venues,
                                                                   strict=True)):
        return site
    return replace(site, city=city, venues=venues)


def _expert_cities(expert: Expert, cities: _Cities, line: int) -> Expert:
    city = cities.check(EXPERTS_FILE, line, "city", expert.city)
    work_city = cities.check(EXPERTS_FILE, line, "work_city", expert.work_city)
    catchment = tuple(cities.check(EXPERTS_FILE, line, f"catchment[{i}]", c)
                      for i, c in enumerate(expert.catchment))
    if (city, work_city, catchment) == (expert.city, expert.work_city, expert.catchment):
        return expert
    return replace(expert, city=city, work_city=work_city, catchment=catchment)


#: The project field a committee make-up problem is about (committee.py's codes).
_COMPOSITION_FIELDS = {"size_even": "committee_size", "size_small": "committee_size",
                       "reps_negative": "tenderer_reps", "share": "tenderer_reps",
                       "window": "window"}


def load_province(directory: Path, *, max_listed: int = MAX_LISTED,
                  rules: Rules | None = None) -> Province:
    """Read and validate the five files in `directory`; all or nothing.

    Raises `ImportFailed` listing (up to `max_listed`) every problem: unreadable files, invalid
    JSON, invalid records, duplicate ids, references to sites or companies that do not exist,
    cities not in the registry (aliases are stored as the city's name), and committees that
    break the composition rules of `rules` (the packaged rules by default).
    """
    problems = _Problems(max_listed)
    rules = load_rules() if rules is None else rules

    city_list: list[City] = []
    cities = _Cities(problems)
    for line, city in _records(directory, CITIES_FILE, city_from_dict, problems, set()):
        cities.add(city, line)
        city_list.append(city)

    sites: list[Site] = []
    site_roles: dict[str, frozenset[str]] = {}
    failed_sites: set[str] = set()
    site_ids = _Ids(problems, SITES_FILE, "site")
    venue_ids = _Ids(problems, SITES_FILE, "venue")
    room_ids = _Ids(problems, SITES_FILE, "room")
    ws_ids = _Ids(problems, SITES_FILE, "workstation")
    for line, site in _records(directory, SITES_FILE, site_from_dict, problems, failed_sites):
        site = _site_cities(site, cities, line)
        site_ids.see(site.id, line, "id")
        for vi, venue in enumerate(site.venues):
            venue_ids.see(venue.id, line, f"venues[{vi}].id")
            for ri, room in enumerate(venue.rooms):
                room_ids.see(room.id, line, f"venues[{vi}].rooms[{ri}].id")
                for wi, ws in enumerate(room.workstations):
                    ws_ids.see(ws.id, line, f"venues[{vi}].rooms[{ri}].workstations[{wi}].id")
        site_roles.setdefault(site.id, site.roles)
        sites.append(site)

    companies: list[Company] = []
    failed_companies: set[str] = set()
    company_ids = _Ids(problems, COMPANIES_FILE, "company")
    for line, company in _records(
        directory, COMPANIES_FILE, company_from_dict, problems, failed_companies
    ):
        company_ids.see(company.id, line, "id")
        companies.append(company)

    experts: list[Expert] = []
    expert_ids = _Ids(problems, EXPERTS_FILE, "expert")
    for line, expert in _records(directory, EXPERTS_FILE, expert_from_dict, problems, set()):
        expert_ids.see(expert.id, line, "id")
        experts.append(_expert_cities(expert, cities, line))

    projects: list[Project] = []
    project_ids = _Ids(problems, PROJECTS_FILE, "project")
    known_companies = company_ids.first.keys() | failed_companies
    for line, project in _records(directory, PROJECTS_FILE, project_from_dict, problems, set()):
        project_ids.see(project.id, line, "id")
        _check_references(problems, line, project, site_roles, failed_sites, known_companies)
        project_city = cities.check(PROJECTS_FILE, line, "city", project.city)
        if project_city != project.city:
            project = replace(project, city=project_city)
        for problem in check_composition(project, rules):
            problems.add(PROJECTS_FILE, line, _COMPOSITION_FIELDS.get(problem.code, "quotas"),
                         str(problem))
        projects.append(project)

    if problems.total:
        raise ImportFailed(problems.items, problems.total)
    return Province(
        sites=tuple(sites),
        experts=tuple(experts),
        companies=tuple(companies),
        projects=tuple(projects),
        cities=tuple(city_list),
    )


def registry_cities(province: Province) -> tuple[City, ...]:
    """The province's city registry; one built in code without a registry gets the cities its
    records name (no aliases), so what it writes loads back."""
    if province.cities:
        return province.cities
    named = {s.city for s in province.sites} | {v.city for s in province.sites for v in s.venues}
    named |= {c for x in province.experts for c in (x.city, x.work_city, *x.catchment)}
    named |= {p.city for p in province.projects}
    return tuple(City(name) for name in sorted(named))


def _check_references(
    problems: _Problems,
    line: int,
    project: Project,
    site_roles: Mapping[str, frozenset[str]],
    failed_sites: set[str],
    companies: set[str],
) -> None:
    """A project must name an existing host-capable site and existing companies."""
    roles = site_roles.get(project.host_site_id)
    if roles is None:
        if project.host_site_id not in failed_sites:
            problems.add(
                PROJECTS_FILE,
                line,
                "host_site_id",
                f"no site {project.host_site_id!r} in {SITES_FILE}",
            )
    elif "host" not in roles:
        problems.add(
            PROJECTS_FILE,
            line,
            "host_site_id",
            f"site {project.host_site_id!r} lacks the host role",
        )
    if project.tenderer_id not in companies:
        problems.add(
            PROJECTS_FILE,
            line,
            "tenderer_id",
            f"no company {project.tenderer_id!r} in {COMPANIES_FILE}",
        )
    for i, bid in enumerate(project.bids):
        if bid.bidder_id not in companies:
            problems.add(
                PROJECTS_FILE,
                line,
                f"bids[{i}].bidder_id",
                f"no company {bid.bidder_id!r} in {COMPANIES_FILE}",
            )


def _dump(record: JsonDict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_province(province: Province, directory: Path) -> None:
    """Write the five files, records in the province's order, one compact JSON object a line.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    The output is deterministic: the same province always gives byte-identical files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    outputs: tuple[tuple[str, Iterator[JsonDict]], ...] = (
        (CITIES_FILE, (city_to_dict(c) for c in registry_cities(province))),
        (SITES_FILE, (site_to_dict(s) for s in province.sites)),
        (COMPANIES_FILE, (company_to_dict(c) for c in province.companies)),
        (EXPERTS_FILE, (expert_to_dict(x) for x in province.experts)),
        (PROJECTS_FILE, (project_to_dict(p) for p in province.projects)),
    )
    for name, records in outputs:
        target = directory / name
        temp = directory / f".{name}.tmp"
        with temp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(_dump(r) for r in records)
        os.replace(temp, target)
