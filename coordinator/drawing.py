"""The draw desk: turns the registry and the booking picture into draw inputs, and back.

It keeps, in memory, the indexes built once from the registry (pool, conflict index, sites) and
the coordinator's picture of who and what is booked when. It prepares a draw (screening, venue
offers, a fresh seed and the commitment) and runs it; the pure rules live in `domain/`.
The one impure thing here is the fresh seed, from the operating system's CSPRNG.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coordinator.domain.committee import check_composition
from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.draw import (
    ARCHIVE_FORMAT,
    Candidate,
    Commitment,
    DrawFailure,
    DrawInputs,
    DrawOutcome,
    Seat,
    VenueOffer,
    build_venue_offers,
    canonical_inputs,
    commit,
    commitment_from_json,
    commitment_to_json,
    draw,
    inputs_from_json,
    outcome_from_json,
    outcome_to_json,
    record_digest,
    supplementary_inputs,
)
from coordinator.domain.eligibility import PoolIndex, host_city_of, screen
from coordinator.domain.model import Company, Expert, Project, Province, Site, Sitting, Venue
from coordinator.domain.rules import Rules
from coordinator.domain.seal import seal_json_text


class DrawRefused(Exception):
    """The draw cannot even be prepared (no venue offers, no candidates): nothing was booked."""


@dataclass(frozen=True)
class PreparedDraw:
    project: Project
    inputs: DrawInputs
    seed: bytes
    commitment: Commitment

    def commitment_record(self) -> dict[str, Any]:
        """What the audit trail publishes before the draw runs."""
        return {**commitment_to_json(self.commitment), "project_id": self.project.id,
                "candidates": self.inputs.candidate_count(),
                "venues": self.inputs.venue_count()}


@dataclass(frozen=True)
class PlacedDraw:
    """A successful draw, ready to be booked: the seats and the sealed archive."""

    draw_id: str
    commitment: Commitment
    seats: tuple[Seat, ...]
    outcome_digest: str
    archive_text: str  # the archive as JSON, seed included (see `archive_json`)

    def archive_fields(self, master_key: bytes) -> dict[str, str]:
        """Redis fields of the draw: the public commitment, and the sealed archive with seed."""
        return {
            "commitment": json.dumps(commitment_to_json(self.commitment), sort_keys=True),
            "sealed": seal_json_text(master_key, self.draw_id, "draw",
                                     self.archive_text).to_json(),
        }


def archive_json(commitment: Commitment, inputs: DrawInputs, result: DrawOutcome,
                 seed: bytes) -> str:
    """`make_archive(...)` as canonical JSON text, built around the canonical inputs.

    The inputs of a large pool are already encoded once for their digest; encoding them again
    as a dict would cost more than the draw itself.
    """
    def dump(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    return ('{"commitment":' + dump(commitment_to_json(commitment))
            + ',"format":' + dump(ARCHIVE_FORMAT)
            + ',"inputs":' + canonical_inputs(inputs).decode("ascii")
            + ',"result":' + dump(outcome_to_json(result))
            + ',"seed":' + dump(seed.hex()) + "}")


class DrawDesk:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.registry_version = -1
        self.sites: dict[str, Site] = {}
        self.experts: dict[str, Expert] = {}
        self.companies: dict[str, Company] = {}
        self.company_names: dict[str, str] = {}
        self._projects: dict[str, Project] = {}
        self.pool: PoolIndex | None = None
        self.index: ConflictIndex | None = None
        self._by_id_number: dict[str, str] = {}
        self._venues: dict[str, tuple[str, str, str]] = {}  # venue -> (name, site name, city)
        # The booking picture, mirrored from Redis (Redis stays the arbiter of conflicts).
        self.ws_busy: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.sittings: dict[str, list[Sitting]] = defaultdict(list)

    # --- registry ----------------------------------------------------------------------------

    def load(self, province: Province,
             booked: Iterable[tuple[Project, Sequence[tuple[str, str]]]]) -> None:
        self.refresh_registry(province, self.registry_version)
        for project, seats in booked:
            self.book(project, seats)

    def refresh_registry(self, province: Province, version: int) -> None:
        self.registry_version = version
        self.sites = {s.id: s for s in province.sites}
        self.experts = {e.id: e for e in province.experts}
        self.companies = {c.id: c for c in province.companies}
        self.company_names = {c.id: c.name for c in province.companies}
        self._projects.update({p.id: p for p in province.projects})
        self.pool = PoolIndex.build(province.experts, self.rules)
        self.index = ConflictIndex.build(province.experts, province.companies, self.rules)
        self._by_id_number = {e.id_number: e.id for e in province.experts}
        self._venues = {v.id: (v.name, s.name, v.city) for s in province.sites
                        for v in s.venues}

    def add_project(self, project: Project) -> None:
        self._projects[project.id] = project

    def projects(self) -> list[Project]:
        return list(self._projects.values())

    def site_workstations(self, site_id: str) -> set[str] | None:
        site = self.sites.get(site_id)
        if site is None:
            return None
        return {ws.id for v in site.venues for ws in v.workstations}

    def workstation_count(self) -> int:
        return sum(len(v.workstations) for s in self.sites.values() for v in s.venues)

    def venue_label(self, venue_id: str) -> str:
        name, site, city = self._venues.get(venue_id, (venue_id, "", ""))
        return f"{name}, {site}, {city}"

    def expert_by_id_number(self, id_number: str) -> str | None:
        return self._by_id_number.get(id_number)

    def expert_name(self, expert_id: str) -> str:
        expert = self.experts.get(expert_id)
        return expert.name if expert else ""

    def registration_problems(self, project: Project, now: datetime) -> list[tuple[str, str]]:
        """Why a project cannot be registered (committee make-up, parties, feasibility)."""
        problems: list[tuple[str, str]] = []
        if project.host_site_id not in self.sites:
            problems.append(("host_site_id", f"no site {project.host_site_id!r}"))
        for field_name, company_id in [("tenderer_id", project.tenderer_id)] + [
                (f"bids[{i}].bidder_id", b.bidder_id) for i, b in enumerate(project.bids)]:
            if company_id not in self.companies:
                problems.append((field_name, f"no company {company_id!r} in the registry"))
        if project.window.end <= now:
            problems.append(("window", "the evaluation window is already over"))
        if problems:
            return problems
        screening = self._screen(project, now)
        counts = {i: eligible for i, (_, eligible) in enumerate(screening.per_quota)}
        return [("committee", str(p)) for p in check_composition(project, self.rules, counts)]

    # --- bookings ----------------------------------------------------------------------------

    def book(self, project: Project, seats: Sequence[tuple[str, str]]) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        for expert_id, workstation_id in seats:
            self.ws_busy[workstation_id].append(window)
            self.sittings[expert_id].append(
                Sitting(expert_id, project.id, project.tenderer_id, project.window))

    def unbook(self, project: Project, expert_id: str, workstation_id: str) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        if window in self.ws_busy.get(workstation_id, []):
            self.ws_busy[workstation_id].remove(window)
        self.sittings[expert_id] = [s for s in self.sittings.get(expert_id, [])
                                    if s.project_id != project.id]

    def venue(self, venue_id: str) -> Venue | None:
        return next((v for s in self.sites.values() for v in s.venues if v.id == venue_id), None)

    def move_workstation(self, project: Project, old: str, new: str) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        if window in self.ws_busy.get(old, []):
            self.ws_busy[old].remove(window)
        self.ws_busy[new].append(window)

    def busy_during(self, project: Project) -> set[str]:
        return self._busy_during(project)

    def _busy_during(self, project: Project) -> set[str]:
        start, end = project.window.start_ts, project.window.end_ts
        return {ws for ws, spans in self.ws_busy.items()
                if any(s < end and start < e for s, e in spans)}

    # --- drawing -----------------------------------------------------------------------------

    def _screen(self, project: Project, now: datetime) -> Any:
        assert self.pool is not None and self.index is not None
        host_city = host_city_of(project, self.sites.values())
        return screen(project, self.pool, self.index, self.sittings, self.rules, now.date(),
                      host_city=host_city)

    def offered_venues(self, project: Project, down: frozenset[str]) -> list[VenueOffer]:
        """The guest venues a draw of `project` would be offered with `down` left out (no
        screening: for a shell deciding what to leave out)."""
        host_city = host_city_of(project, self.sites.values())
        return list(build_venue_offers(self.sites.values(), project, host_city,
                                       self._busy_during(project) | down))

    def _offers_and_candidates(self, project: Project, now: datetime,
                               down: frozenset[str]) -> tuple[Any, Any]:
        """`down`: workstations reported faulty or offline, never offered to a draw."""
        assert self.pool is not None
        screening = self._screen(project, now)
        host_city = host_city_of(project, self.sites.values())
        venues = build_venue_offers(self.sites.values(), project, host_city,
                                    self._busy_during(project) | down)
        if not venues:
            raise DrawRefused("no guest venue outside the project's and the host's city has a "
                              "free workstation in the window")
        candidates = screening.candidates(self.pool)
        if not candidates:
            reasons = ", ".join(f"{k} {v}" for k, v in screening.reasons.most_common())
            raise DrawRefused(f"no eligible expert for any quota ({reasons})")
        return venues, candidates

    def prepare(self, project: Project, now: datetime,
                down: frozenset[str] = frozenset()) -> PreparedDraw:
        venues, candidates = self._offers_and_candidates(project, now, down)
        inputs = DrawInputs(project=project, rules_version=self.rules.version, venues=venues,
                            candidates=candidates, per_venue_cap=self.rules.per_venue_cap)
        return self._commit(project, inputs)

    def prepare_supplementary(self, project: Project, now: datetime,
                              previous_archive: dict[str, Any], committee: Sequence[Seat],
                              drop: Iterable[str],
                              down: frozenset[str] = frozenset()) -> PreparedDraw:
        """A redraw of the dropped members' seats, chained to the previous draw."""
        previous_inputs = inputs_from_json(previous_archive["inputs"])
        parent = record_digest(commitment_from_json(previous_archive["commitment"]),
                               outcome_from_json(previous_archive["result"]))
        venues, candidates = self._offers_and_candidates(project, now, down)
        inputs = supplementary_inputs(previous_inputs, committee, set(drop), venues=venues,
                                      candidates=candidates, parent=parent,
                                      rules_version=self.rules.version)
        return self._commit(project, inputs)

    @staticmethod
    def _commit(project: Project, inputs: DrawInputs) -> PreparedDraw:
        seed = secrets.token_bytes(32)
        return PreparedDraw(project=project, inputs=inputs, seed=seed,
                            commitment=commit(seed, inputs))

    def prepare_seeded(self, project: Project, venues: tuple[VenueOffer, ...],
                       candidates: tuple[Candidate, ...], seed: bytes) -> PreparedDraw:
        """A first draw from offers, candidates and a seed found elsewhere (the day plan:
        its screening ran in batch, its seed derives from the plan seed)."""
        inputs = DrawInputs(project=project, rules_version=self.rules.version, venues=venues,
                            candidates=candidates, per_venue_cap=self.rules.per_venue_cap)
        return PreparedDraw(project=project, inputs=inputs, seed=seed,
                            commitment=commit(seed, inputs))

    def fork(self) -> DrawDesk:
        """A desk sharing this one's registry and indexes (read-only) with a copy of its
        booking picture: a plan computed in a worker thread reads the fork while the event
        loop goes on changing the original."""
        other = DrawDesk(self.rules)
        other.registry_version = self.registry_version
        other.sites, other.experts = self.sites, self.experts
        other.companies, other.company_names = self.companies, self.company_names
        other._projects = dict(self._projects)
        other.pool, other.index = self.pool, self.index
        other._by_id_number, other._venues = self._by_id_number, self._venues
        other.ws_busy.update({ws: list(spans) for ws, spans in self.ws_busy.items() if spans})
        other.sittings.update({e: list(s) for e, s in self.sittings.items() if s})
        return other

    @staticmethod
    def run(prepared: PreparedDraw) -> PlacedDraw | str:
        """Run the committed draw; a failure comes back as its message (nothing booked)."""
        result = draw(prepared.inputs, prepared.seed)
        if isinstance(result, DrawFailure):
            return result.message()
        return PlacedDraw(draw_id=prepared.commitment.draw_id, commitment=prepared.commitment,
                          seats=result.seats, outcome_digest=result.outcome_digest(),
                          archive_text=archive_json(prepared.commitment, prepared.inputs,
                                                    result, prepared.seed))
