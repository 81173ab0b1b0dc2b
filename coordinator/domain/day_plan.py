"""The day plan, pure parts: order, per-project seeds, the screening job, the plan's own bookings.

A day plan draws every project of a day that still awaits its draw, in one batch:

Order. Projects are drawn in *plan order*: window start, then project id. Earlier draws book
experts and workstations that later draws then cannot have, so the order is part of the plan.

Seeds. The coordinator takes one 32-byte *plan seed* from the OS CSPRNG (never from a client: a
client who could choose it could try seeds until a plan suited it) and records its SHA-256 in
the audit trail (`plan.committed`) before anything is screened or drawn. Project P's draw seed is

    seed(P) = HMAC-SHA256(key = plan seed, message = P's id in UTF-8)

so every draw of the plan keeps its own seed, commitment (SHA-256 of that seed) and archive, and
`evalgrid draw verify` replays it alone, exactly like a single draw. HMAC is a pseudo-random
function: revealing one project's seed after its award says nothing about the plan seed or about
the seeds of the day's other projects.

Screening (phase 1) reads a snapshot taken when the plan starts (pool, conflict index, sittings),
so it runs for all projects at once, in parallel, through the batch executor: `screen_chunk` is
the job, a pure function of (shared snapshot, chunk of projects). It returns, per project, only
the experts excluded and the reason counts (small), not the eligible pool (large).

Drawing (phase 2) runs the draws one by one in plan order. `PlanBook` holds what the plan itself
has booked since the snapshot and re-checks only that: experts the plan seated in an overlapping
window, in the same half-day (workload cap) or for the same tenderer (cool-off), and
workstations the plan took. A project thus sees exactly what a single draw run after the plan's
earlier draws would see (a test checks the inputs' digests against that).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from coordinator.domain.conflicts import ConflictIndex, Reason
from coordinator.domain.draw import Seat, VenueOffer
from coordinator.domain.eligibility import PoolIndex, half_days, screen, sitting_reasons
from coordinator.domain.model import Project, Site, Sitting
from coordinator.domain.rules import Rules

PLAN_SEED_BYTES = 32
SEED_DERIVATION = "HMAC-SHA256(plan seed, project id)"


# --- order and seeds -----------------------------------------------------------------------


def local_day(moment: datetime, offset_minutes: int) -> date:
    """The calendar day of an aware moment at the rules' local UTC offset."""
    return (moment + timedelta(minutes=offset_minutes)).date()


def projects_of_day(projects: Iterable[Project], day: date, offset_minutes: int) -> list[Project]:
    """The projects whose window starts on `day` (local time), in plan order."""
    return plan_order(p for p in projects
                      if local_day(p.window.start, offset_minutes) == day)


def plan_order(projects: Iterable[Project]) -> list[Project]:
    """Window start, then project id: the order the plan draws in (part of the plan)."""
    return sorted(projects, key=lambda p: (p.window.start, p.id))


def project_seed(plan_seed: bytes, project_id: str) -> bytes:
    """HMAC-SHA256(key=plan_seed, msg=project_id): the seed of one project's draw."""
    if len(plan_seed) != PLAN_SEED_BYTES:
        raise ValueError(f"plan_seed: {PLAN_SEED_BYTES} bytes expected, not {len(plan_seed)}")
    return hmac.new(plan_seed, project_id.encode("utf-8"), hashlib.sha256).digest()


def seed_hash(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def projects_digest(project_ids: Sequence[str]) -> str:
    """SHA-256 hex of the project ids in plan order, one per line: which projects, in which
    order, the plan covers."""
    return hashlib.sha256("\n".join(project_ids).encode("utf-8")).hexdigest()


# --- phase 1: screening as a batch job -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreeningShared:
    """What every screening chunk reads: sent once per worker (or put once in Ray's store)."""

    pool: PoolIndex
    index: ConflictIndex
    sittings: Mapping[str, Sequence[Sitting]]  # expert id -> booked sittings, at plan start
    rules: Rules
    today: date


@dataclass(frozen=True, slots=True)
class ScreenJob:
    project: Project
    host_city: str


@dataclass(frozen=True, slots=True)
class ScreenResult:
    """One project's screening, small enough to send back from a worker.

    `excluded`: the experts matching a quota who may not sit (sorted); the eligible pool is the
    rest of the quota matches (`eligible_count` of them, a check on the rebuild).
    """

    project_id: str
    excluded: tuple[str, ...]
    eligible_count: int
    reasons: tuple[tuple[str, int], ...]  # reason code -> experts; by count, then code


def screen_chunk(shared: ScreeningShared, chunk: Sequence[ScreenJob]) -> list[ScreenResult]:
    """The screening job: `screen` for each project of the chunk against the shared snapshot."""
    out = []
    for job in chunk:
        screening = screen(job.project, shared.pool, shared.index, shared.sittings,
                           shared.rules, shared.today, host_city=job.host_city)
        out.append(ScreenResult(
            project_id=job.project.id, excluded=tuple(sorted(screening.excluded)),
            eligible_count=len(screening.eligible),
            reasons=tuple(sorted(screening.reasons.items(), key=lambda kv: (-kv[1], kv[0])))))
    return out


def chunked(jobs: Sequence[ScreenJob], chunks: int) -> list[list[ScreenJob]]:
    """`jobs` in at most `chunks` contiguous chunks of nearly equal size."""
    if not jobs:
        return []
    size = -(-len(jobs) // max(1, chunks))
    return [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]


class RelevantCache:
    """The experts matching a project's quotas, sorted, cached by the quotas: the day's
    projects share a few quota shapes, so the sort is paid once per shape."""

    def __init__(self, pool: PoolIndex) -> None:
        self.pool = pool
        self._cache: dict[tuple[tuple[str, str | None], ...],
                          tuple[tuple[str, ...], frozenset[str]]] = {}

    def of(self, project: Project) -> tuple[tuple[str, ...], frozenset[str]]:
        key = tuple((q.specialty, q.kind) for q in project.quotas)
        found = self._cache.get(key)
        if found is None:
            matches = [self.pool.matching(q) for q in project.quotas]
            members: frozenset[str] = frozenset().union(*matches) if matches else frozenset()
            found = (tuple(sorted(members)), members)
            self._cache[key] = found
        return found


# --- phase 2: what the plan itself has booked -----------------------------------------------


@dataclass
class _GuestVenue:
    venue_id: str
    site_id: str
    city: str
    site_city: str
    workstations: tuple[tuple[str, str], ...]  # (workstation id, room id), sorted


@dataclass
class _WindowOffers:
    """The free workstations of every guest venue for one window, kept current as the plan
    books; `offers` holds the ready VenueOffer per venue (None when it has none free)."""

    start: int
    end: int
    free: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    offers: dict[str, VenueOffer | None] = field(default_factory=dict)


class PlanBook:
    """The booking picture of a plan in progress: the snapshot plus the plan's own draws.

    `ws_busy` and `sittings` are the snapshot taken when the plan started (not modified);
    `down` the workstations reported faulty or offline. Venue offers are kept per window and
    updated as the plan books, so a draw costs O(venues), not O(workstations x bookings).
    """

    def __init__(self, sites: Iterable[Site], ws_busy: Mapping[str, Sequence[tuple[int, int]]],
                 sittings: Mapping[str, Sequence[Sitting]], rules: Rules,
                 down: Collection[str] = frozenset()) -> None:
        self.rules = rules
        self.ws_busy = ws_busy
        self.sittings = sittings
        self.down = frozenset(down)
        venues = [
            _GuestVenue(v.id, s.id, v.city, s.city,
                        tuple(sorted((ws.id, ws.room_id) for ws in v.workstations)))
            for s in sites if "guest" in s.roles for v in s.venues
        ]
        venues.sort(key=lambda v: v.venue_id)
        self.venues = venues
        self._venue_by_id = {v.venue_id: v for v in venues}
        self._venue_of_ws = {ws: v.venue_id for v in venues for ws, _ in v.workstations}
        self._windows: dict[tuple[int, int], _WindowOffers] = {}
        # What the plan booked: workstations with their windows, and experts' sittings.
        self.booked_ws: list[tuple[str, str, int, int]] = []  # (ws, room, start, end)
        self.plan_sittings: dict[str, list[Sitting]] = defaultdict(list)
        self._experts_by_half: dict[int, set[str]] = defaultdict(set)
        self._experts_by_tenderer: dict[str, set[str]] = defaultdict(set)

    # --- workstations ---------------------------------------------------------------------

    def _window(self, start: int, end: int) -> _WindowOffers:
        key = (start, end)
        window = self._windows.get(key)
        if window is None:
            busy = {ws for ws, spans in self.ws_busy.items()
                    if any(s < end and start < e for s, e in spans)}
            busy |= self.down
            busy |= {ws for ws, _, s, e in self.booked_ws if s < end and start < e}
            window = _WindowOffers(start, end)
            for v in self.venues:
                free = [w for w in v.workstations if w[0] not in busy]
                window.free[v.venue_id] = free
                window.offers[v.venue_id] = self._offer(v, free)
            self._windows[key] = window
        return window

    @staticmethod
    def _offer(venue: _GuestVenue, free: list[tuple[str, str]]) -> VenueOffer | None:
        return VenueOffer(venue.venue_id, venue.site_id, venue.city, tuple(free)) if free \
            else None

    def offers(self, project: Project, host_city: str) -> tuple[VenueOffer, ...]:
        """What `build_venue_offers` gives for `project` against the current picture: guest
        venues outside the project's and the host's city with a free workstation, by id."""
        window = self._window(project.window.start_ts, project.window.end_ts)
        barred = {project.city, host_city}
        offers = window.offers
        return tuple(o for v in self.venues
                     if v.site_city not in barred and v.city not in barred
                     and (o := offers[v.venue_id]) is not None)

    # --- experts --------------------------------------------------------------------------

    def recheck(self, project: Project, eligible: Collection[str]) -> dict[str, list[Reason]]:
        """Experts of `eligible` (eligible at the snapshot) whom the plan's own sittings now
        bar from `project`: overlap, workload or cool-off, with the reasons `screen` gives."""
        offset = self.rules.local_utc_offset_minutes
        touched: set[str] = set(self._experts_by_tenderer.get(project.tenderer_id, ()))
        for h in half_days(project.window, offset):
            touched |= self._experts_by_half.get(h, set())
        if len(touched) > len(eligible):
            touched = {e for e in eligible if e in touched}
        barred: dict[str, list[Reason]] = {}
        for expert_id in touched:
            if expert_id not in eligible:
                continue
            history = [*self.sittings.get(expert_id, ()), *self.plan_sittings[expert_id]]
            reasons = sitting_reasons(project, history, self.rules)
            if reasons:
                barred[expert_id] = reasons
        return barred

    # --- booking --------------------------------------------------------------------------

    def book(self, project: Project, seats: Sequence[Seat]) -> None:
        """Record a draw of the plan: its workstations and its members' sittings."""
        start, end = project.window.start_ts, project.window.end_ts
        offset = self.rules.local_utc_offset_minutes
        for seat in seats:
            self.booked_ws.append((seat.workstation_id, seat.room_id, start, end))
            for window in self._windows.values():
                if not (window.start < end and start < window.end):
                    continue
                venue_id = self._venue_of_ws.get(seat.workstation_id)
                if venue_id is None:
                    continue
                free = window.free[venue_id]
                entry = (seat.workstation_id, seat.room_id)
                if entry in free:
                    free.remove(entry)
                    window.offers[venue_id] = self._offer(self._venue_by_id[venue_id], free)
            sitting = Sitting(seat.expert_id, project.id, project.tenderer_id, project.window)
            self.plan_sittings[seat.expert_id].append(sitting)
            self._experts_by_tenderer[project.tenderer_id].add(seat.expert_id)
            for h in half_days(project.window, offset):
                self._experts_by_half[h].add(seat.expert_id)


class MergedSittings(Mapping[str, Sequence[Sitting]]):
    """The snapshot's sittings with the plan's own added: what `screen` would read from a
    desk that had booked the plan's earlier draws."""

    def __init__(self, snapshot: Mapping[str, Sequence[Sitting]],
                 plan: Mapping[str, Sequence[Sitting]]) -> None:
        self.snapshot, self.plan = snapshot, plan

    def __getitem__(self, expert_id: str) -> Sequence[Sitting]:
        mine = self.plan.get(expert_id, ())
        if not mine:
            return self.snapshot[expert_id]
        return (*self.snapshot.get(expert_id, ()), *mine)

    def __iter__(self) -> Iterator[str]:
        yield from self.snapshot
        yield from (e for e, s in self.plan.items() if s and e not in self.snapshot)

    def __len__(self) -> int:
        return len(self.snapshot) + sum(1 for e, s in self.plan.items()
                                        if s and e not in self.snapshot)


def format_reasons(counts: Mapping[str, int]) -> str:
    """"code n, code n" by count, then code: the same text whatever the process."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
