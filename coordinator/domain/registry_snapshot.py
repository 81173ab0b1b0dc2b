"""The registry as an auditor sees it: a canonical snapshot, and the pool of a draw re-derived.

A draw archive names its candidates, but a coordinator that narrows the pool (leaves a candidate
out, or lets a barred one in) can commit to the narrowed pool and the replay agrees with itself.
So the registry as imported gets a canonical snapshot (`registry_snapshot`): sites, cities,
experts and companies, reduced to what eligibility reads, sorted and versioned, digested
(`pool_digest`); every draw records that digest and the day's *declared* state (`pool_record`)
in its archive and in the signed ``draw.committed`` entry. An auditor with the snapshot and the
rules file re-derives the eligible pool of any draw with the same screening code the
coordinator runs (`DayScreen`), and every missing or extra candidate is named with the rule
that decides it (`check_pool`).

What is re-derived, what is declared. Status, penalties, age, city, the party rules (employer,
interest, declared, group, relative, department), specialties, kind and catchment come from
the snapshot and the rules: re-derived. The booking picture (cool-off with the tenderer,
overlapping sessions, the half-day workload) and conduct bars are state, not registry: the
archive declares which experts they bar (`DayScreen.declared_bars`: rows of the draw's
snapshot for the booking picture, `pack_rows`; expert ids for conduct), and the auditor takes
them as declared; they are signed with the commitment, so they cannot change afterwards, but
this check does not prove them.

Personal data stays out: no names, ID or phone numbers, no birth dates (an expert carries the
first day the age limit bars them, "age_out", under the snapshot's limit), no penalty reasons
(only the last penalty's date), and every natural person a company names or an expert is
related to appears under a keyed pseudonym (HMAC-SHA256 under a key derived from the
coordinator's master key), the same on both sides of a match. Expert ids stay: draws name them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from coordinator.domain.audit import AuditEntry
from coordinator.domain.conflicts import ConflictIndex, registry_places, years_before
from coordinator.domain.draw.inputs import DrawInputs, unpack_rows
from coordinator.domain.draw.outcome import DrawOutcome, outcome_from_json
from coordinator.domain.eligibility import (
    SITTING_RULES,
    DayScreen,
    PoolIndex,
    falls_under,
    host_city_of,
)
from coordinator.domain.model import (
    City,
    Company,
    CompanyRef,
    ConductBar,
    Employment,
    Expert,
    Penalty,
    Person,
    Project,
    Province,
    Relative,
    Site,
)
from coordinator.domain.pii import derive_key
from coordinator.domain.rules import Rules
from coordinator.province.codec.places import (
    city_from_dict,
    city_to_dict,
    site_from_dict,
    site_to_dict,
)

SNAPSHOT_FORMAT = "evalgrid-registry-snapshot-v1"
RECORD_FORMAT = "evalgrid-draw-pool-v2"
#: v1 declared the state bars as expert ids; v2 as row-list text over the draw's snapshot.
#: Both are read, so archives drawn before v2 still verify.
RECORD_FORMATS = ("evalgrid-draw-pool-v1", RECORD_FORMAT)
PSEUDONYM_PURPOSE = "registry-pseudonym"
#: The reasons a draw archive declares rather than the registry deciding them.
DECLARED_CODES = ("conduct", *SITTING_RULES)


class SnapshotError(ValueError):
    """A registry snapshot that cannot be read; the message names the field."""


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def digest_of(value: object) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def pseudonym_key(master_key: bytes) -> bytes:
    """The key the snapshot's person pseudonyms are made with (one purpose of the master key)."""
    return derive_key(master_key, PSEUDONYM_PURPOSE)


def person_pseudonym(key: bytes, person_id: str) -> str:
    return "P-" + hmac.new(key, b"person:" + person_id.encode(), hashlib.sha256).hexdigest()[:24]


def age_out(born: date, age_limit: int) -> date:
    """The first day on which the age rule bars someone born on `born` (PoolIndex._day bars
    when born <= years_before(day, age_limit + 1))."""
    n = age_limit + 1
    try:
        day = born.replace(year=born.year + n)
    except ValueError:  # born on 29 February
        day = born.replace(year=born.year + n, month=3, day=1)
    while years_before(day - timedelta(days=1), n) >= born:
        day -= timedelta(days=1)
    while years_before(day, n) < born:
        day += timedelta(days=1)
    return day


# --- the snapshot ---------------------------------------------------------------------------


def _ref(ref: CompanyRef) -> list[Any]:
    return [ref.name, ref.credit_code]


def _expert(e: Expert, key: bytes, age_limit: int) -> dict[str, Any]:
    return {
        "id": e.id, "kind": e.kind, "status": e.status, "city": e.city,
        "work_city": e.work_city, "catchment": list(e.catchment),
        "specialties": list(e.specialties),
        "age_out": age_out(e.birth_date, age_limit).isoformat(),
        "last_penalty": max(p.on for p in e.penalties).isoformat() if e.penalties else None,
        "employments": [[*_ref(j.company), j.start.isoformat(),
                         None if j.end is None else j.end.isoformat()] for j in e.employments],
        "interests": [_ref(r) for r in e.interests],
        "declared": [_ref(r) for r in e.declared_conflicts],
        "relatives": sorted([person_pseudonym(key, r.person_id), r.relation]
                            for r in e.relatives),
        "departments": list(e.departments),
    }


def _company(c: Company, key: bytes) -> dict[str, Any]:
    def who(p: Person | None) -> str | None:
        return None if p is None else person_pseudonym(key, p.person_id)

    return {"id": c.id, "name": c.name, "credit_code": c.credit_code, "group_id": c.group_id,
            "legal_rep": who(c.legal_rep), "principal": who(c.principal),
            "key_staff": [who(p) for p in c.key_staff]}


def _parties(p: Project) -> dict[str, Any]:
    return {"tenderer_id": p.tenderer_id, "bidder_ids": sorted(p.bidder_ids),
            "competent_department": p.competent_department, "city": p.city}


def pool_section(sites: Iterable[Site], cities: Iterable[City], experts: Iterable[Expert],
                 companies: Iterable[Company], key: bytes, rules: Rules) -> dict[str, Any]:
    """What a draw's pool depends on in the registry, canonical (sorted by id)."""
    return {
        "age_limit": rules.age_limit,
        "cities": sorted((city_to_dict(c) for c in cities), key=lambda c: c["name"]),
        "sites": sorted((site_to_dict(s) for s in sites), key=lambda s: s["id"]),
        "experts": sorted((_expert(e, key, rules.age_limit) for e in experts),
                          key=lambda e: e["id"]),
        "companies": sorted((_company(c, key) for c in companies), key=lambda c: c["id"]),
    }


def pool_digest(pool: Mapping[str, Any]) -> str:
    """What a draw records: SHA-256 of the canonical pool section."""
    return digest_of({"format": SNAPSHOT_FORMAT, "pool": pool})


def registry_snapshot(province: Province, key: bytes, rules: Rules) -> dict[str, Any]:
    """The snapshot file: the pool section and its digest, and every project's parties
    (projects are registered over time, so they sit beside the digested pool)."""
    pool = pool_section(province.sites, province.cities, province.experts,
                        province.companies, key, rules)
    return {"format": SNAPSHOT_FORMAT, "pool": pool, "pool_digest": pool_digest(pool),
            "projects": {p.id: _parties(p) for p in sorted(province.projects,
                                                           key=lambda p: p.id)}}


class Registry:
    """A snapshot read back into the model the screening code takes."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        if not isinstance(snapshot, Mapping) or snapshot.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"format: not {SNAPSHOT_FORMAT!r}")
        pool = snapshot.get("pool")
        if not isinstance(pool, Mapping):
            raise SnapshotError("pool: missing")
        self.digest = pool_digest(pool)
        if snapshot.get("pool_digest") != self.digest:
            raise SnapshotError(f"pool_digest: the pool digests to {self.digest}, the file "
                                f"says {snapshot.get('pool_digest')}: edited")
        where = "pool"
        try:
            self.age_limit = int(pool["age_limit"])
            where = "pool.cities"
            self.cities = tuple(city_from_dict(c) for c in pool["cities"])
            where = "pool.sites"
            self.sites = tuple(site_from_dict(s) for s in pool["sites"])
            where = "pool.experts"
            self.experts = tuple(_expert_back(e, self.age_limit) for e in pool["experts"])
            where = "pool.companies"
            self.companies = tuple(_company_back(c) for c in pool["companies"])
            where = "projects"
            self.projects: Mapping[str, Any] = dict(snapshot.get("projects") or {})
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise SnapshotError(f"{where}: cannot be read: {type(exc).__name__}: {exc}") from None


def _day(value: Any) -> date:
    return date.fromisoformat(str(value))


def _expert_back(d: Mapping[str, Any], age_limit: int) -> Expert:
    # A birth date the age rule treats exactly as the real one (see `age_out`).
    born = years_before(_day(d["age_out"]), age_limit + 1)
    last = d.get("last_penalty")
    return Expert(
        id=str(d["id"]), name="", id_number="", phone="", city=str(d["city"]),
        work_city=str(d["work_city"]), birth_date=born, kind=d["kind"],
        specialties=tuple(d["specialties"]), status=d["status"],
        employments=tuple(Employment(CompanyRef(n, c), _day(s), None if e is None else _day(e))
                          for n, c, s, e in d["employments"]),
        interests=tuple(CompanyRef(n, c) for n, c in d["interests"]),
        relatives=tuple(Relative(p, "", r) for p, r in d["relatives"]),
        departments=tuple(d["departments"]),
        declared_conflicts=tuple(CompanyRef(n, c) for n, c in d["declared"]),
        penalties=() if last is None else (Penalty(_day(last), ""),),
        catchment=tuple(d["catchment"]))


def _company_back(d: Mapping[str, Any]) -> Company:
    def person(p: Any) -> Person:
        return Person(str(p), "")

    return Company(str(d["id"]), str(d["name"]), d["credit_code"], d["group_id"],
                   person(d["legal_rep"]),
                   None if d["principal"] is None else person(d["principal"]),
                   tuple(person(p) for p in d["key_staff"]))


# --- what a draw records --------------------------------------------------------------------


def pool_record(registry_digest: str, screen: DayScreen, project: Project) -> dict[str, Any]:
    """The archive's "registry" entry: the snapshot digest, the day screened, and the state
    bars declared for `project` (see the module docstring)."""
    return {"format": RECORD_FORMAT, "registry": registry_digest,
            "day": screen.today.isoformat(), "declared": screen.declared_bars(project)}


def record_anchor(record: Mapping[str, Any], text: bytes | None = None) -> dict[str, str]:
    """The fields the ``draw.committed`` entry signs for a pool record; `text`: its
    `canonical` form where the caller has it (a plan's declared bars run to thousands of rows:
    encoded once per draw, not once per use)."""
    text = canonical(record) if text is None else text
    return {"registry": str(record.get("registry")),
            "pool_record": hashlib.sha256(text).hexdigest()}


# --- the auditor's check --------------------------------------------------------------------


class _Derived:
    """The pool of one day re-derived from a snapshot, rules and declared conduct bars."""

    def __init__(self, registry: Registry, rules: Rules, day: date,
                 conduct: Sequence[str]) -> None:
        self.pool = PoolIndex.build(registry.experts, rules)
        self.pool.set_conduct_bars(ConductBar(e, "declared", day, day, "declared")
                                   for e in conduct)
        companies = {c.id: c for c in registry.companies}
        self.index = ConflictIndex.build(registry.experts, companies.values(), rules,
                                         registry_places(registry.cities))
        self.screen = DayScreen(self.pool, self.index, registry.sites, rules, day,
                                companies_by_id=companies)
        self.sites, self.rules, self.day = registry.sites, rules, day

    def pool_reasons(self, expert_id: str) -> list[str]:
        out = []
        for r in self.pool.day_reasons(self.rules, self.day).get(expert_id, ()):
            if r.code == "age":
                out.append(f"age (older than {self.rules.age_limit} on {self.day})")
            elif r.code == "conduct":
                out.append("conduct (declared bar)")
            elif r.code == "penalty":
                out.append(f"penalty (last on {r.detail.split(':')[0]})")
            else:
                out.append(str(r))
        return out


def check_pool(draws: Sequence[Mapping[str, Any]], inputs: Sequence[DrawInputs | None],
               snapshot: Mapping[str, Any], rules: Rules,
               entries: Sequence[AuditEntry]) -> list[str]:
    """Problems with the pools of an export's draws against a registry snapshot (empty: each
    pool is the one the snapshot, the rules and the declared bars give).

    `inputs[i]`: draw i's inputs as read (None: unreadable, reported by the replay);
    `entries`: the export's audit entries (their signatures are checked by the anchoring).
    """
    try:
        registry = Registry(snapshot)
    except SnapshotError as exc:
        return [f"registry snapshot: {exc}"]
    if registry.age_limit != rules.age_limit:
        return [f"registry snapshot: taken under age limit {registry.age_limit}, the rules "
                f"file says {rules.age_limit}"]
    problems: list[str] = []
    drawn_before: set[str] = set()
    derived: dict[tuple[str, tuple[str, ...]], _Derived] = {}
    for i, (archive, given) in enumerate(zip(draws, inputs, strict=True)):
        where = f"draws[{i}]"
        if given is not None:
            try:
                found = _check_one(archive, given, registry, rules, entries, drawn_before,
                                   derived)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                found = [f"its pool cannot be re-derived from this snapshot: "
                         f"{type(exc).__name__}: {exc}"]
            problems += [f"{where}: {p}" for p in found]
        try:
            result = outcome_from_json(archive["result"])
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(result, DrawOutcome):
            drawn_before |= {s.expert_id for s in result.seats}
    return problems


def _check_one(archive: Mapping[str, Any], inputs: DrawInputs, registry: Registry, rules: Rules,
               entries: Sequence[AuditEntry], drawn_before: set[str],
               derived: dict[tuple[str, tuple[str, ...]], _Derived]) -> list[str]:
    record = archive.get("registry")
    if not isinstance(record, Mapping) or record.get("format") not in RECORD_FORMATS:
        return ["records no registry snapshot (drawn by an older version): its pool cannot "
                "be re-derived"]
    if record.get("registry") != registry.digest:
        return [f"drawn on registry {str(record.get('registry'))[:16]}, the snapshot given is "
                f"{registry.digest[:16]}: not the registry this draw used"]
    draw_id = str(archive.get("commitment", {}).get("draw_id"))
    signed = [e for e in entries if e.kind == "draw.committed"
              and e.detail.get("draw_id") == draw_id]
    anchor = record_anchor(record)
    if not signed:
        return ["its pool record is not anchored: no signed draw.committed entry"]
    for name, value in anchor.items():
        if signed[-1].detail.get(name) != value:
            return [f"its pool record ({name}) is not the one signed in audit entry seq "
                    f"{signed[-1].seq}: the registry digest or the declared bars were edited"]
    if inputs.rules_version != rules.version:
        return [f"drawn under rules {inputs.rules_version!r}, the rules file is "
                f"{rules.version!r}"]
    project = inputs.project
    parties = registry.projects.get(project.id)
    if parties is None:
        return [f"project {project.id} is not in the registry snapshot (registered after it? "
                "take a fresh `evalgrid registry snapshot`): its parties are unchecked"]
    problems = [f"project.{k}: the draw has {v!r}, the registry {parties.get(k)!r}"
                for k, v in _parties(project).items() if parties.get(k) != v]
    try:
        day = _day(record["day"])
        declared = declared_ids(record, inputs)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [*problems, f"registry.day/declared: cannot be read: {exc}"]
    try:
        committed_on = rules.local_date(datetime.fromisoformat(signed[-1].at))
    except ValueError:
        committed_on = None
    if committed_on != day:
        problems.append(f"screened as of {day}, but committed on {committed_on} (audit entry "
                        f"seq {signed[-1].seq}): the age, penalty and conduct rules read the day")
    key = (day.isoformat(), tuple(sorted(declared["conduct"])))
    found = derived.get(key)
    if found is None:
        found = derived[key] = _Derived(registry, rules, day, sorted(declared["conduct"]))
    return problems + _compare(found, project, inputs, declared, drawn_before)


def declared_ids(record: Mapping[str, Any], inputs: DrawInputs) -> dict[str, frozenset[str]]:
    """The expert ids a pool record declares barred, per code; ValueError naming the field
    when a v2 record's row list is not one or the draw has no snapshot to read it against."""
    given = record["declared"]
    if record.get("format") != RECORD_FORMAT:  # v1: ids throughout
        return {code: frozenset(map(str, given.get(code, ()))) for code in DECLARED_CODES}
    out = {"conduct": frozenset(map(str, given.get("conduct", ())))}
    snapshot = inputs.snapshot
    for code in DECLARED_CODES[1:]:
        text = given.get(code, "")
        if not isinstance(text, str):
            raise ValueError(f"registry.declared.{code}: row-list text expected")
        if text and snapshot is None:
            raise ValueError(f"registry.declared.{code}: rows of a snapshot, but the draw's "
                             "inputs name none")
        rows = unpack_rows(text, 0 if snapshot is None else len(snapshot.candidates),
                           f"registry.declared.{code}") if text else ()
        out[code] = frozenset(snapshot.candidates[r].expert_id
                              for r in rows) if snapshot is not None else frozenset()
    return out


def _compare(d: _Derived, project: Project, inputs: DrawInputs,
             declared: Mapping[str, frozenset[str]], drawn_before: set[str]) -> list[str]:
    problems: list[str] = []
    screen = d.screen
    mine = screen.snapshot
    theirs = inputs.snapshot
    if theirs is not None and theirs.digest() != mine.digest():
        problems += _snapshot_differences(d, theirs.candidates, theirs.venues)
    try:
        host_city = host_city_of(project, d.sites)
    except KeyError as exc:
        return [*problems, str(exc.args[0])]
    # Who can be drawn at all: matching a quota in the registry or in the archive's rows.
    ids = [c.expert_id for c in mine.candidates]
    relevant = {ids[r] for r in np.flatnonzero(screen.relevant(project))}
    archived_rows = inputs.resolved_candidates()

    def matches(kind: str, codes: Sequence[str]) -> bool:
        return any((q.kind is None or q.kind == kind) and any(falls_under(c, q.specialty)
                                                             for c in codes)
                   for q in project.quotas)

    archived = {c.expert_id for c in archived_rows if matches(c.kind, c.specialties)}
    relevant |= archived
    masks = screen.rule_masks(project, host_city)
    rows = mine.expert_rows()
    ties: dict[str, list[Any]] | None = None

    def reasons(expert_id: str) -> list[str]:
        nonlocal ties
        if expert_id not in d.pool.experts:
            return ["not in the registry snapshot"]
        out = d.pool_reasons(expert_id)
        row = rows.get(expert_id)
        for code, hit in masks:
            if row is None or not hit[row]:
                continue
            if code == "party":
                if ties is None:
                    ties = screen.index.ineligible_for(project, screen.companies, d.day)
                out += [f"{r.code} ({r.detail})" for r in ties.get(expert_id, ())]
            elif code == "city":
                e = d.pool.experts[expert_id]
                out.append(f"city (lives in {e.city}, works in {e.work_city})")
            else:
                out.append(code)
        out += [f"{code} (declared)" for code in DECLARED_CODES[1:]
                if expert_id in declared[code]]
        if expert_id in drawn_before:
            out.append("exclude (drawn before for this project)")
        return out

    derived_pool = {e for e in relevant if not reasons(e)}
    for e in sorted(derived_pool - archived):
        where = ("left out of the day's snapshot" if theirs is not None
                 and e not in theirs.expert_rows() else "barred in the draw's inputs")
        problems.append(f"candidate {e} is missing from the pool ({where}), but no rule bars "
                        f"them from {project.id}: rules {d.rules.version}, the registry "
                        "snapshot and the declared bars admit them")
    for e in sorted(archived - derived_pool):
        problems.append(f"candidate {e} is in the pool, but rule "
                        f"{'; '.join(reasons(e))} bars them from {project.id}")
    return problems


def _snapshot_differences(d: _Derived, candidates: Sequence[Any],
                          venues: Sequence[Any]) -> list[str]:
    """The day snapshot's rows that the registry does not give (pool-level rules, rows)."""
    mine = {c.expert_id: c for c in d.screen.snapshot.candidates}
    theirs = {c.expert_id: c for c in candidates}
    out: list[str] = []
    for e in sorted(mine.keys() - theirs.keys()):
        out.append(f"candidate {e} is missing from the day's snapshot, but no pool-level rule "
                   "(status, penalty, age, conduct) bars them")
    for e in sorted(theirs.keys() - mine.keys()):
        why = "; ".join(d.pool_reasons(e)) if e in d.pool.experts else \
            "not in the registry snapshot"
        out.append(f"candidate {e} is in the day's snapshot, but rule {why} bars them")
    for e in sorted(mine.keys() & theirs.keys()):
        if mine[e].canonical != theirs[e].canonical:
            out.append(f"candidate {e}: the snapshot has {theirs[e].canonical}, the registry "
                       f"gives {mine[e].canonical}")
    my_venues = {v.venue_id: v.canonical for v in d.screen.snapshot.venues}
    their_venues = {v.venue_id: v.canonical for v in venues}
    for v in sorted(my_venues.keys() ^ their_venues.keys()):
        how = "missing from" if v in my_venues else "not in the registry, but in"
        out.append(f"venue {v}: {how} the day's snapshot")
    for v in sorted(my_venues.keys() & their_venues.keys()):
        if my_venues[v] != their_venues[v]:
            out.append(f"venue {v}: its workstations differ from the registry's")
    return out
