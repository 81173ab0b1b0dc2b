"""The draw desk: turns the registry and the booking picture into draw inputs, and back.

It keeps, in memory, the indexes built once from the registry (pool, conflict index, sites) and
the coordinator's picture of who and what is booked when. It prepares a draw (screening, venue
offers, a fresh seed and the commitment) and runs it; the pure rules live in `domain/`.
The one impure thing here is the fresh seed, from the operating system's CSPRNG.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coordinator.domain.committee import check_composition
from coordinator.domain.conflicts import ConflictIndex, registry_places
from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import (
    ARCHIVE_FORMAT,
    Commitment,
    commit,
    commitment_from_json,
    commitment_to_json,
    record_digest,
)
from coordinator.domain.draw.canonical import canonical_inputs, project_from_json
from coordinator.domain.draw.inputs import DrawInputs, DrawSnapshot
from coordinator.domain.draw.outcome import (
    DrawFailure,
    DrawOutcome,
    Seat,
    outcome_from_json,
    outcome_to_json,
)
from coordinator.domain.eligibility import DayScreen, PoolIndex, host_city_of
from coordinator.domain.model import (
    City,
    Company,
    Expert,
    Project,
    Province,
    Site,
    Sitting,
    Venue,
)
from coordinator.domain.registry_snapshot import (
    canonical,
    pool_digest,
    pool_record,
    pool_section,
    record_anchor,
)
from coordinator.domain.rules import Rules
from coordinator.domain.seal import seal_json_text
from coordinator.store.snapshots import snapshot_record


class DrawRefused(Exception):
    """The draw cannot even be prepared (no venue offers, no candidates): nothing was booked."""


@dataclass(frozen=True)
class PreparedDraw:
    project: Project
    inputs: DrawInputs
    seed: bytes
    commitment: Commitment
    registry: dict[str, Any] | None = None  # the pool record (domain/registry_snapshot.py)
    registry_text: bytes | None = None  # its `canonical` form, encoded once for the draw

    def commitment_record(self) -> dict[str, Any]:
        """What the audit trail publishes before the draw runs (with the registry digest and
        the digest of the pool record, when the desk has a pseudonym key)."""
        anchor = {} if self.registry is None else record_anchor(self.registry,
                                                                self.registry_text)
        return {**commitment_to_json(self.commitment), "project_id": self.project.id,
                "candidates": self.inputs.candidate_count(),
                "venues": self.inputs.venue_count(), **anchor}

    def committed(self) -> CommittedDraw:
        return CommittedDraw(self.project, self.commitment, self.commitment_record())


@dataclass(frozen=True)
class CommittedDraw:
    """What placing a prepared draw reads of it: the commitment and its audit record. A day
    plan's draws cross to the coordinator in this form (the inputs, 50 KB a draw at national
    size, travel once, inside the archive text; the seed only there, sealed next)."""

    project: Project
    commitment: Commitment
    record: dict[str, Any]

    def commitment_record(self) -> dict[str, Any]:
        return dict(self.record)  # a copy: callers add their keys


@dataclass(frozen=True)
class PlacedDraw:
    """A successful draw, ready to be booked: the seats and the sealed archive."""

    draw_id: str
    commitment: Commitment
    seats: tuple[Seat, ...]
    outcome_digest: str
    archive_text: str  # the archive as JSON, seed included (see `archive_json`)
    snapshot: DrawSnapshot | None = None  # the day's snapshot referenced inputs name

    def snapshot_fields(self, master_key: bytes) -> tuple[str, str] | None:
        """(Redis key, sealed text) of the snapshot the draw references; stored once per
        digest beside the archives (an archive names it; `draw export` embeds it)."""
        if self.snapshot is None:
            return None
        return snapshot_record(master_key, self.snapshot)

    def archive_fields(self, master_key: bytes) -> dict[str, str | bytes]:
        """Redis fields of the draw: the public commitment, and the sealed archive with seed
        (the box's binary form: coordinator/store/draws.py)."""
        return {
            "commitment": json.dumps(commitment_to_json(self.commitment), sort_keys=True),
            "sealed": seal_json_text(master_key, self.draw_id, "draw",
                                     self.archive_text).to_bytes(),
        }


def archive_json(commitment: Commitment, inputs: DrawInputs, result: DrawOutcome,
                 seed: bytes, registry: dict[str, Any] | None = None,
                 registry_text: bytes | None = None) -> str:
    """`make_archive(...)` as canonical JSON text, built around the canonical inputs.

    The inputs of a large pool are already encoded once for their digest; encoding them again
    as a dict would cost more than the draw itself. `registry_text`, the pool record's
    `canonical` form, is spliced in as it is when ASCII (then the same text as ASCII JSON).
    """
    def dump(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    return ('{"commitment":' + dump(commitment_to_json(commitment))
            + ',"format":' + dump(ARCHIVE_FORMAT)
            + ',"inputs":' + canonical_inputs(inputs).decode("ascii")
            + ("" if registry is None else ',"registry":' + (
                registry_text.decode("ascii")
                if registry_text is not None and registry_text.isascii() else dump(registry)))
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
        self.city_names: dict[str, str] = {}  # every spelling of a registry city -> its name
        self._venues: dict[str, tuple[str, str, str]] = {}  # venue -> (name, site name, city)
        # The booking picture, mirrored from Redis (Redis stays the arbiter of conflicts).
        self.ws_busy: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.sittings: dict[str, list[Sitting]] = defaultdict(list)
        # The one screening path: the day's DayScreen, kept current on book/unbook/move and
        # dropped on a registry change (rebuilt from the picture above on first use).
        self._screen: DayScreen | None = None
        # With a key, every draw records the registry snapshot's digest and its pool record.
        self.pseudonym_key: bytes | None = None
        self.cities: tuple[City, ...] = ()
        self._registry_digest: dict[str, str] = {}

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
        self.index = ConflictIndex.build(province.experts, province.companies, self.rules,
                                         registry_places(province.cities))
        self.city_names = {n: c.name for c in province.cities for n in c.spellings}
        self.cities = province.cities
        self._registry_digest = {}
        self._by_id_number = {e.id_number: e.id for e in province.experts}
        self._venues = {v.id: (v.name, s.name, v.city) for s in province.sites
                        for v in s.venues}
        self._screen = None

    def day_screen(self, today: date) -> DayScreen:
        """The day's screen (built on first use of the day from the booking picture)."""
        found = self._screen
        if found is None or found.today != today:
            assert self.pool is not None and self.index is not None
            found = DayScreen(
                self.pool, self.index, self.sites.values(), self.rules, today,
                sittings=(s for spans in self.sittings.values() for s in spans),
                bookings=((ws, a, b) for ws, spans in self.ws_busy.items() for a, b in spans))
            self._screen = found
        return found

    def registry_digest(self) -> str | None:
        """The digest of the registry's snapshot (`evalgrid registry snapshot`), once per
        registry version; None without a pseudonym key."""
        if self.pseudonym_key is None:
            return None
        found = self._registry_digest.get("pool")
        if found is None:
            found = self._registry_digest["pool"] = pool_digest(pool_section(
                self.sites.values(), self.cities, self.experts.values(),
                self.companies.values(), self.pseudonym_key, self.rules))
        return found

    def _host_city(self, project: Project) -> str:
        """`host_city_of` through the desk's sites by id (a draw passes here: not a scan of
        a province's 3,000 sites)."""
        site = self.sites.get(project.host_site_id)
        return host_city_of(project, () if site is None else (site,))

    def _pool_record(self, day: DayScreen, project: Project) -> dict[str, Any] | None:
        digest = self.registry_digest()
        return None if digest is None else pool_record(digest, day, project)

    def forget_screen(self) -> None:
        """Rebuild the day's screen on next use (the pool's day rules changed)."""
        self._screen = None

    def snapshot(self, digest: str) -> DrawSnapshot | None:
        """The day's snapshot if it digests to `digest` (else the caller reads Redis)."""
        if self._screen is not None and self._screen.snapshot.digest() == digest:
            return self._screen.snapshot
        return None

    def add_project(self, project: Project) -> None:
        self._projects[project.id] = project

    def project(self, project_id: str) -> Project | None:
        return self._projects.get(project_id)

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

    def with_registry_city(self, project: Project) -> Project:
        """The project with its city as the registry names it (an alias resolved)."""
        city = self.city_names.get(project.city, project.city)
        return project if city == project.city else dataclasses.replace(project, city=city)

    def registration_problems(self, project: Project, now: datetime) -> list[tuple[str, str]]:
        """Why a project cannot be registered (city, committee make-up, parties, feasibility)."""
        problems: list[tuple[str, str]] = []
        if self.city_names and project.city not in self.city_names:
            near = difflib.get_close_matches(project.city, self.city_names, n=1, cutoff=0.6)
            hint = f" (did you mean {self.city_names[near[0]]!r}?)" if near else ""
            problems.append(("city", f"unknown city {project.city!r}{hint}"))
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
        host_city = self._host_city(project)
        per_quota = self.day_screen(self.rules.local_date(now)).per_quota(project, host_city)
        counts = {i: eligible for i, (_, eligible) in enumerate(per_quota)}
        return [("committee", str(p)) for p in check_composition(project, self.rules, counts)]

    # --- bookings ----------------------------------------------------------------------------

    def book(self, project: Project, seats: Sequence[tuple[str, str]]) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        for expert_id, workstation_id in seats:
            self.ws_busy[workstation_id].append(window)
            self.sittings[expert_id].append(
                Sitting(expert_id, project.id, project.tenderer_id, project.window))
        if self._screen is not None:
            self._screen.book(project, seats)

    def add_sitting(self, sitting: Sitting) -> None:
        """A sitting kept on record without a booking (a dissolved committee's members keep
        the cool-off with the tenderer)."""
        self.sittings[sitting.expert_id].append(sitting)
        if self._screen is not None:
            self._screen.add_sitting(sitting)

    def unbook(self, project: Project, expert_id: str, workstation_id: str) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        if window in self.ws_busy.get(workstation_id, []):
            self.ws_busy[workstation_id].remove(window)
            if self._screen is not None:
                self._screen.remove_booking(workstation_id, *window)
        kept = []
        for s in self.sittings.get(expert_id, []):
            if s.project_id != project.id:
                kept.append(s)
            elif self._screen is not None:
                self._screen.remove_sitting(s)
        self.sittings[expert_id] = kept

    def venue(self, venue_id: str) -> Venue | None:
        return next((v for s in self.sites.values() for v in s.venues if v.id == venue_id), None)

    def move_workstation(self, project: Project, old: str, new: str) -> None:
        window = (project.window.start_ts, project.window.end_ts)
        if window in self.ws_busy.get(old, []):
            self.ws_busy[old].remove(window)
            if self._screen is not None:
                self._screen.remove_booking(old, *window)
        self.ws_busy[new].append(window)
        if self._screen is not None:
            self._screen.add_booking(new, *window)

    def busy_during(self, project: Project) -> set[str]:
        return self._busy_during(project)

    def _busy_during(self, project: Project) -> set[str]:
        start, end = project.window.start_ts, project.window.end_ts
        return {ws for ws, spans in self.ws_busy.items()
                if any(s < end and start < e for s, e in spans)}

    def offered_venues(self, project: Project, now: datetime,
                       down: frozenset[str]) -> set[str]:
        """The guest venues a draw of `project` would be offered with `down` left out (no
        screening of experts: for a shell deciding what to leave out)."""
        day = self.day_screen(self.rules.local_date(now))
        day.set_down(down)
        unavailable = day.unavailable(project, self._host_city(project))
        offered: set[str] = set()
        start = 0
        for venue in day.snapshot.venues:
            end = start + len(venue.free)
            if not bool(unavailable[start:end].all()):
                offered.add(venue.venue_id)
            start = end
        return offered

    # --- drawing -----------------------------------------------------------------------------

    def _referenced(self, project: Project, now: datetime, down: frozenset[str],
                    tied: NDArray[np.intp] | None = None,
                    exclude: frozenset[str] = frozenset()) -> tuple[DayScreen, Any, Any]:
        """The day's screen with `down` applied, and the barred and unavailable masks; raises
        DrawRefused (no venue offer, no candidate) with the reasons counted."""
        day = self.day_screen(self.rules.local_date(now))
        day.set_down(down)
        host_city = self._host_city(project)
        unavailable = day.unavailable(project, host_city)
        if not _offers_any(day.snapshot, unavailable):
            raise DrawRefused("no guest venue outside the project's and the host's city has a "
                              "free workstation in the window")
        barred = day.barred(project, host_city, tied)
        if exclude:
            barred = barred | day.snapshot.expert_mask(exclude)
        if day.eligible_count(project, barred) == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in
                                day.reason_counts(project, host_city).most_common())
            raise DrawRefused(f"no eligible expert for any quota ({reasons})")
        return day, barred, unavailable

    def prepare(self, project: Project, now: datetime,
                down: frozenset[str] = frozenset(), *, seed: bytes | None = None,
                tied: NDArray[np.intp] | None = None) -> PreparedDraw:
        """A first draw on referenced inputs; `seed` and `tied` (rule "party", computed in
        batch) come from a day plan, else the seed is fresh from the OS."""
        day, barred, unavailable = self._referenced(project, now, down, tied)
        inputs = DrawInputs.referenced(
            project=project, rules_version=self.rules.version, snapshot=day.snapshot,
            barred=barred, unavailable=unavailable, per_venue_cap=self.rules.per_venue_cap)
        return self._commit(project, inputs, seed, self._pool_record(day, project))

    def prepare_supplementary(self, project: Project, now: datetime,
                              previous_archive: dict[str, Any], committee: Sequence[Seat],
                              drop: Iterable[str],
                              down: frozenset[str] = frozenset(),
                              seed: bytes | None = None) -> PreparedDraw:
        """A redraw of the dropped members' seats, chained to the previous draw: everyone ever
        drawn for the project is excluded, members who stay keep their venue and room; `seed`,
        when given, derives from the day's seed (coordinator/seed_shares.py), else a fresh one."""
        head = previous_archive["inputs"]
        previous_project = project_from_json(head["project"])
        parent = record_digest(commitment_from_json(previous_archive["commitment"]),
                               outcome_from_json(previous_archive["result"]))
        dropped = set(drop)
        members = {s.expert_id for s in committee}
        unknown = sorted(dropped - members)
        if unknown:
            raise ValueError(f"cannot drop experts not on the committee: {unknown}")
        exclude = frozenset(head["exclude"]) | members
        day, barred, unavailable = self._referenced(project, now, down, exclude=exclude)
        inputs = DrawInputs.referenced(
            project=previous_project, rules_version=self.rules.version, snapshot=day.snapshot,
            barred=barred, unavailable=unavailable, per_venue_cap=int(head["per_venue_cap"]),
            exclude=exclude, parent=parent,
            seats=tuple(s.quota_index for s in committee if s.expert_id in dropped),
            occupied=tuple(sorted((s.venue_id, s.room_id) for s in committee
                                  if s.expert_id not in dropped)))
        return self._commit(project, inputs, seed, self._pool_record(day, project))

    @staticmethod
    def _commit(project: Project, inputs: DrawInputs, seed: bytes | None = None,
                registry: dict[str, Any] | None = None) -> PreparedDraw:
        seed = secrets.token_bytes(32) if seed is None else seed
        return PreparedDraw(project=project, inputs=inputs, seed=seed,
                            commitment=commit(seed, inputs), registry=registry,
                            registry_text=None if registry is None else canonical(registry))

    def fork(self) -> DrawDesk:
        """A desk sharing this one's registry and indexes (read-only) with a copy of its
        booking picture and day screen: a plan computed in a worker thread books into the fork
        while the event loop goes on changing the original."""
        other = DrawDesk(self.rules)
        other.registry_version = self.registry_version
        other.sites, other.experts = self.sites, self.experts
        other.companies, other.company_names = self.companies, self.company_names
        other._projects = dict(self._projects)
        other.pool, other.index = self.pool, self.index
        other._by_id_number, other._venues = self._by_id_number, self._venues
        other.pseudonym_key, other.cities = self.pseudonym_key, self.cities
        other._registry_digest = self._registry_digest  # shared: computed once
        other.ws_busy.update({ws: list(spans) for ws, spans in self.ws_busy.items() if spans})
        other.sittings.update({e: list(s) for e, s in self.sittings.items() if s})
        other._screen = None if self._screen is None else self._screen.fork()
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
                                                    result, prepared.seed, prepared.registry,
                                                    prepared.registry_text),
                          snapshot=prepared.inputs.snapshot)


def _offers_any(snapshot: DrawSnapshot, unavailable: NDArray[np.bool_]) -> bool:
    """Is any workstation of the snapshot's guest venues still offered?"""
    return bool(snapshot.workstation_count()) and not bool(unavailable.all())
