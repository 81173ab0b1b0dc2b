"""Screening a project: who in the pool may sit, and why the others may not.

Party-based rules (employers, interests, relatives, department, declared conflicts) come from the
`ConflictIndex`; this module adds the per-expert rules: status, penalties, age, city, cool-off,
overlapping sessions and the half-day workload cap.

Cost model. `PoolIndex.build` is O(pool x specialty depth) once per pool version. `screen` only
touches experts whose specialty falls under one of the project's quotas (the "relevant" set R,
read from a prefix index), so one project costs about O(|R| + penalised + matches in the conflict
index + sittings of R), not O(pool): set intersections with precomputed city/status sets iterate
the smaller side, and the age and penalty rules bisect presorted lists.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from coordinator.domain.conflicts import ConflictIndex, Reason, years_before
from coordinator.domain.draw import Candidate
from coordinator.domain.model import (
    Company,
    Expert,
    ExpertKind,
    ExpertStatus,
    Project,
    Quota,
    Site,
    Sitting,
    Window,
)
from coordinator.domain.rules import Rules

ELIGIBILITY_CODES: tuple[str, ...] = (
    "status",  # suspended, blacklisted or retired
    "penalty",  # penalised for bidding misconduct within the look-back
    "age",  # older than the age limit (full years) on the day of screening
    "city",  # lives or works in the project's or the host's city
    "cool_off",  # sat for the same tenderer within the cool-off period
    "overlap",  # already has a session overlapping the window
    "workload",  # would exceed the sittings cap in a half-day
)

HALF_DAY_SECONDS = 12 * 3600


def specialty_prefixes(code: str) -> tuple[str, ...]:
    """Every code a dotted specialty falls under: "W.01.03" -> ("W", "W.01", "W.01.03")."""
    parts = [p for p in code.strip().split(".") if p]
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


def normalise_specialty(code: str) -> str:
    """A quota or specialty code without stray dots or spaces."""
    return ".".join(p for p in code.strip().split(".") if p)


def falls_under(code: str, quota_code: str) -> bool:
    """Dotted-prefix match: "W.01" covers "W.01" and "W.01.03", not "W.011"."""
    code, quota_code = normalise_specialty(code), normalise_specialty(quota_code)
    return code == quota_code or code.startswith(quota_code + ".")


def half_days(window: Window, offset_minutes: int) -> range:
    """Indices of the local half-days ([00:00, 12:00), [12:00, 24:00)) a window touches."""
    offset = offset_minutes * 60
    first = (window.start_ts + offset) // HALF_DAY_SECONDS
    last = (max(window.end_ts - 1, window.start_ts) + offset) // HALF_DAY_SECONDS
    return range(first, last + 1)


def host_city_of(project: Project, sites: Iterable[Site]) -> str:
    """The city of the project's host site (where it is opened)."""
    for site in sites:
        if site.id == project.host_site_id:
            return site.city
    raise KeyError(f"project {project.id}: unknown host site {project.host_site_id!r}")


class _SittingRules:
    """Cool-off, overlap and workload for one project, with its bounds computed once."""

    __slots__ = ("cap", "cool", "end", "mine", "offset", "start", "tenderer")

    def __init__(self, project: Project, rules: Rules) -> None:
        self.start, self.end = project.window.start_ts, project.window.end_ts
        self.cool = rules.cool_off_days * 86400
        self.tenderer = project.tenderer_id
        self.offset = rules.local_utc_offset_minutes
        self.mine = half_days(project.window, self.offset)
        self.cap = rules.workload_cap_per_half_day

    def reasons(self, sittings: Iterable[Sitting]) -> list[Reason]:
        per_half: Counter[int] = Counter()
        found: set[Reason] = set()
        for s in sittings:
            s_start, s_end = s.window.start_ts, s.window.end_ts
            if s.tenderer_id == self.tenderer and (
                s_start < self.end + self.cool and s_end > self.start - self.cool
            ):
                found.add(Reason("cool_off", f"sat for tenderer {s.tenderer_id} ({s.project_id})"))
            if s_end <= self.start - HALF_DAY_SECONDS or s_start >= self.end + HALF_DAY_SECONDS:
                continue  # too far apart to overlap or share a half-day
            if s_start < self.end and self.start < s_end:
                found.add(Reason("overlap", f"session for {s.project_id}"))
            for h in half_days(s.window, self.offset):
                if h in self.mine:
                    per_half[h] += 1
        full = sorted(h for h, n in per_half.items() if n + 1 > self.cap)
        if full:
            found.add(Reason("workload", f"{per_half[full[0]]} sitting(s) in the same half-day"))
        return sorted(found)


def sitting_reasons(project: Project, sittings: Iterable[Sitting], rules: Rules) -> list[Reason]:
    """Cool-off, overlap and workload reasons from one expert's sittings (any order)."""
    return _SittingRules(project, rules).reasons(sittings)


@dataclass(frozen=True, slots=True)
class SittingIndex:
    """Sittings indexed by tenderer (cool-off) and by local half-day (overlap, workload).

    With it, the history rules cost O(sittings for the project's tenderer + sittings in the
    window's half-days) per project, whatever the number of relevant experts; a plain
    expert -> sittings mapping costs O(sittings of the relevant experts) instead.
    """

    by_tenderer: Mapping[str, tuple[Sitting, ...]]
    by_half_day: Mapping[int, tuple[Sitting, ...]]
    offset_minutes: int

    @classmethod
    def build(cls, sittings: Iterable[Sitting], rules: Rules) -> SittingIndex:
        tenderer: dict[str, list[Sitting]] = defaultdict(list)
        half: dict[int, list[Sitting]] = defaultdict(list)
        for s in sittings:
            tenderer[s.tenderer_id].append(s)
            for h in half_days(s.window, rules.local_utc_offset_minutes):
                half[h].append(s)
        return cls(
            by_tenderer={k: tuple(v) for k, v in tenderer.items()},
            by_half_day={k: tuple(v) for k, v in half.items()},
            offset_minutes=rules.local_utc_offset_minutes,
        )

    def reasons_for(self, project: Project, rules: Rules) -> dict[str, list[Reason]]:
        """Every expert barred from `project` by their sittings, with the same reasons as
        `sitting_reasons` would give from that expert's own list."""
        if rules.local_utc_offset_minutes != self.offset_minutes:
            raise ValueError("SittingIndex was built for another local time offset")
        check = _SittingRules(project, rules)
        mine: dict[str, dict[int, Sitting]] = defaultdict(dict)  # expert -> id(sitting) -> it
        for s in self.by_tenderer.get(project.tenderer_id, ()):
            mine[s.expert_id][id(s)] = s
        for h in check.mine:
            for s in self.by_half_day.get(h, ()):
                mine[s.expert_id][id(s)] = s
        out: dict[str, list[Reason]] = {}
        for expert_id, by_id in mine.items():
            found = check.reasons(by_id.values())
            if found:
                out[expert_id] = found
        return out


@dataclass(frozen=True, slots=True)
class PoolIndex:
    """Static facts of the pool, indexed once so that screening a project is cheap."""

    experts: Mapping[str, Expert]
    by_prefix: Mapping[str, frozenset[str]]
    by_kind: Mapping[ExpertKind, frozenset[str]]
    by_city: Mapping[str, frozenset[str]]  # where experts live or work
    inactive: Mapping[str, ExpertStatus]
    by_birth: tuple[tuple[date, str], ...]  # sorted
    by_last_penalty: tuple[tuple[date, str], ...]  # sorted, penalised experts only
    candidates: Mapping[str, Candidate]  # what the draw sees: normalised codes, rules' catchment

    @classmethod
    def build(cls, experts: Iterable[Expert], rules: Rules) -> PoolIndex:
        """One pass over the pool: O(experts x specialties x code depth)."""
        by_id: dict[str, Expert] = {}
        prefix: dict[str, set[str]] = defaultdict(set)
        kind: dict[ExpertKind, set[str]] = defaultdict(set)
        city: dict[str, set[str]] = defaultdict(set)
        inactive: dict[str, ExpertStatus] = {}
        births: list[tuple[date, str]] = []
        penalties: list[tuple[date, str]] = []
        candidates: dict[str, Candidate] = {}
        for e in experts:
            if e.id in by_id:
                raise ValueError(f"duplicate expert id {e.id!r}")
            by_id[e.id] = e
            for code in e.specialties:
                for p in specialty_prefixes(code):
                    prefix[p].add(e.id)
            kind[e.kind].add(e.id)
            city[e.city].add(e.id)
            city[e.work_city].add(e.id)
            if e.status != "active":
                inactive[e.id] = e.status
            births.append((e.birth_date, e.id))
            if e.penalties:
                penalties.append((max(p.on for p in e.penalties), e.id))
            catchment = (e.city,) if rules.catchment == "own_city" else e.catchment_cities
            codes = tuple(normalise_specialty(c) for c in e.specialties)
            candidates[e.id] = Candidate(e.id, e.kind, codes, catchment)
        births.sort()
        penalties.sort()
        return cls(
            experts=by_id,
            by_prefix={k: frozenset(v) for k, v in prefix.items()},
            by_kind={k: frozenset(v) for k, v in kind.items()},
            by_city={k: frozenset(v) for k, v in city.items()},
            inactive=inactive,
            by_birth=tuple(births),
            by_last_penalty=tuple(penalties),
            candidates=candidates,
        )

    def matching(self, quota: Quota) -> frozenset[str]:
        """Experts whose specialty falls under the quota's code and whose kind fits."""
        found = self.by_prefix.get(normalise_specialty(quota.specialty), frozenset())
        if quota.kind is not None:
            found = found & self.by_kind.get(quota.kind, frozenset())
        return found

    def candidate(self, expert_id: str) -> Candidate:
        return self.candidates[expert_id]


@dataclass(frozen=True, slots=True)
class Screening:
    """The outcome of screening one project against the pool.

    `eligible`: sorted ids of experts who match a quota and break no rule. `reasons`: for the
    experts who match a quota but may not sit, how many have each reason code (an expert with two
    reasons counts under both), which is what explains a starved draw. `per_quota`: for each quota,
    (experts matching it, of whom eligible), a first feasibility check.
    """

    eligible: tuple[str, ...]
    reasons: Counter[str]
    excluded: Mapping[str, tuple[Reason, ...]]
    per_quota: tuple[tuple[int, int], ...]

    def candidates(self, pool: PoolIndex) -> tuple[Candidate, ...]:
        """Draw candidates for the eligible experts, sorted by id as the draw requires."""
        by_id = pool.candidates
        return tuple(by_id[e] for e in self.eligible)


def _common(a: Collection[str], b: Collection[str]) -> list[str]:
    """Members of both, iterating the smaller side: cost O(min(|a|, |b|))."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return [x for x in small if x in large]


def screen(
    project: Project,
    pool: PoolIndex,
    index: ConflictIndex,
    sittings_by_expert: Mapping[str, Sequence[Sitting]] | SittingIndex,
    rules: Rules,
    today: date,
    *,
    host_city: str | None = None,
    companies_by_id: Mapping[str, Company] | None = None,
) -> Screening:
    """Screen `project`: every rule of "who may not sit" except the per-venue cap (the draw's).

    `sittings_by_expert` is either a `SittingIndex` (cost independent of the pool) or a mapping
    expert id -> sittings (only relevant experts' entries are read; prune it to the cool-off
    horizon). `host_city` defaults to the project's city; `companies_by_id`
    (the project's parties) defaults to the companies the conflict index was built with.
    """
    matches = [pool.matching(q) for q in project.quotas]
    relevant: set[str] = set().union(*matches) if matches else set()
    found: dict[str, list[Reason]] = defaultdict(list)

    for eid in _common(relevant, pool.inactive.keys()):
        found[eid].append(Reason("status", pool.inactive[eid]))

    for c in sorted({project.city, host_city or project.city}):
        for eid in _common(relevant, pool.by_city.get(c, frozenset())):
            e = pool.experts[eid]
            where = "lives" if e.city == c else "works"
            found[eid].append(Reason("city", f"{where} in {c}"))

    too_old_if_born_by = years_before(today, rules.age_limit + 1)
    cut = bisect.bisect_right(pool.by_birth, (too_old_if_born_by, "\U0010ffff"))
    if cut < len(relevant):
        old = {eid for _, eid in pool.by_birth[:cut] if eid in relevant}
    else:
        old = {e for e in relevant if pool.experts[e].birth_date <= too_old_if_born_by}
    for eid in old:
        found[eid].append(Reason("age", f"born {pool.experts[eid].birth_date.isoformat()}"))

    since = years_before(today, rules.look_back_years)
    start = bisect.bisect_left(pool.by_last_penalty, (since, ""))
    for _, eid in pool.by_last_penalty[start:]:
        if eid in relevant:
            e = pool.experts[eid]
            recent = max((p for p in e.penalties if p.on >= since), key=lambda p: p.on)
            found[eid].append(Reason("penalty", f"{recent.on.isoformat()}: {recent.reason}"))

    companies = index.companies if companies_by_id is None else companies_by_id
    for eid, party_reasons in index.ineligible_for(project, companies, today).items():
        if eid in relevant:
            found[eid].extend(party_reasons)

    if isinstance(sittings_by_expert, SittingIndex):
        for eid, history_reasons in sittings_by_expert.reasons_for(project, rules).items():
            if eid in relevant:
                found[eid].extend(history_reasons)
    else:
        history = _SittingRules(project, rules)
        for eid in _common(relevant, sittings_by_expert.keys()):
            found[eid].extend(history.reasons(sittings_by_expert[eid]))

    excluded = {eid: tuple(sorted(set(rs))) for eid, rs in found.items() if rs}
    counts: Counter[str] = Counter()
    for rs in excluded.values():
        counts.update({r.code for r in rs})
    eligible = tuple(sorted(relevant.difference(excluded)))
    per_quota = tuple((len(m), len(m) - len(_common(m, excluded.keys()))) for m in matches)
    return Screening(eligible, counts, excluded, per_quota)
