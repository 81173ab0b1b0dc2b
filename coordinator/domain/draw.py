"""The three-random draw (venue, expert, workstation) as a pure, replayable function.

`draw(inputs, seed)` depends on nothing but its arguments: the coordinator commits to
SHA-256(seed) and to `input_digest(inputs)` before drawing, reveals the seed after the award, and
anyone can replay the draw from the archive (`verify_replay`) and get the identical committee,
venues and seats. The input digest is the SHA-256 hex of `canonical_inputs(inputs)`: the JSON
of `inputs_to_json(inputs)` with sorted keys, no whitespace and ASCII escapes (the whole project,
the rules version, the cap, the sorted exclusions, the parent, the seats and occupancy of a
supplementary draw, every venue offer with its free workstations, every candidate as a row
[id, kind, [specialties], [catchment cities]]).

The distribution (normative; the README repeats it and tests check it)
----------------------------------------------------------------------
All randomness comes from one `DrawRandom(seed, bytes.fromhex(input_digest(inputs)))` stream, used
in exactly this order. Lists are in input order: venues sorted by venue id, each venue's free
workstations sorted by workstation id, candidates sorted by expert id.

Let the seats to fill be one per quota seat in declared order (quota 0 `count` times, then quota
1, ...), or `inputs.seats` for a supplementary draw; S = their number. S = 0 draws nothing.

A candidate *matches* a quota when it is not in `exclude`, its kind equals the quota's kind (if
set), and one of its specialty codes falls under the quota's code by dotted prefix ("W.01" covers
"W.01" and "W.01.03", not "W.011").

1. Venues. A venue is *eligible* when it has a free workstation in a room not already used by
   this committee (`occupied`, for supplementary draws) and at least one candidate matching one of
   the seats' quotas lists the venue's city among its catchment cities. With `occ(v)` members
   already seated there and `rooms(v)` its usable rooms, the capacity of v under cap c is
   `max(0, min(c - occ(v), rooms(v)))`. The cap is `per_venue_cap`, raised to the least c whose
   total capacity over the eligible venues reaches S (if even the largest useful c does not reach
   S the cap is that largest value and the draw will fail below). With no occupancy and venues of
   at least c rooms this is the familiar `max(per_venue_cap, ceil(S / #eligible venues))`.
   The eligible venues are put in a uniformly random order, `sample(eligible, len(eligible))`.
   The *drawn* venues are the shortest prefix of that order whose capacities add up to S (all of
   them if none does); the rest of the order are the *reserves*, in order. With capacities all
   equal to c this takes the first ceil(S / c) venues.
2. Experts, one seat at a time in seat order. The *open* venues are the drawn venues whose count
   of members (old and new) is below their capacity. The seat's candidates are those matching its
   quota, not drawn earlier in this draw, whose catchment contains the city of an open venue. If
   there are none, the next reserve venue is appended to the drawn venues and the step retried;
   with no reserve left the draw fails (`DrawFailure`). Otherwise one candidate is chosen with
   `randbelow(#candidates)` from the candidates in id order, and then its venue with
   `randbelow(#venues)` from the open venues in its catchment, in drawn order.
3. Workstations, after all experts, one seat at a time in seat order: at the seat's venue, a
   workstation is chosen with `randbelow(#options)` from the venue's free workstations (id order)
   whose room holds no other member of this committee (old or new). With one member per venue
   this is a uniform choice among the venue's free workstations; a venue never seats two members
   of one committee in the same room.

Committee composition needs no check here: every drawn member is a technical or economic expert,
so the two-thirds share is decided by the project's `tenderer_reps` (see committee.py).
Greedy sequential filling can fail where a cleverer assignment would succeed (overlapping quota
codes, catchments that meet only a few venues); the reserves soften this, and the failure names
the quota with the counts that starved it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from json.encoder import encode_basestring_ascii
from operator import attrgetter, lt
from typing import Any, cast

from coordinator.domain.model import (
    Bid,
    Category,
    Criterion,
    ExpertKind,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Site,
    Window,
)
from coordinator.domain.randomness import DrawRandom

INPUTS_FORMAT = "evalgrid-draw-inputs-v1"
ARCHIVE_FORMAT = "evalgrid-draw-archive-v1"


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueOffer:
    """A guest venue the project may use, with its workstations free for the window."""

    venue_id: str
    site_id: str
    city: str
    free: tuple[tuple[str, str], ...]  # (workstation_id, room_id), sorted by workstation id


@dataclass(frozen=True, slots=True)
class Candidate:
    """An expert who passed screening, reduced to what the draw needs.

    `canonical` is the candidate's canonical JSON row, computed once at construction: candidates
    are built once per pool version and reused by every draw, so digesting 50,000 of them is one
    string join instead of 200,000 string encodings per draw.
    """

    expert_id: str
    kind: ExpertKind
    specialties: tuple[str, ...]
    catchment_cities: tuple[str, ...]
    canonical: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        enc = encode_basestring_ascii
        row = (
            f"[{enc(self.expert_id)},{enc(self.kind)},"
            f"[{','.join(map(enc, self.specialties))}],"
            f"[{','.join(map(enc, self.catchment_cities))}]]"
        )
        object.__setattr__(self, "canonical", row)


@dataclass(frozen=True, slots=True)
class DrawInputs:
    """Everything a draw depends on, fixed and digested before the seed is used.

    `seats`: quota index of each seat to fill (supplementary draws); None fills every seat of
    every quota. `occupied`: (venue_id, room_id) of members who stay (supplementary draws); they
    count toward the per-venue cap and their rooms are not shared.
    """

    project: Project
    rules_version: str
    venues: tuple[VenueOffer, ...]
    candidates: tuple[Candidate, ...]
    per_venue_cap: int
    exclude: frozenset[str] = frozenset()
    parent: str | None = None
    seats: tuple[int, ...] | None = None
    occupied: tuple[tuple[str, str], ...] = ()
    _digest: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.per_venue_cap < 1:
            raise ValueError("per_venue_cap must be >= 1")
        if not _strictly_increasing([v.venue_id for v in self.venues]):
            raise ValueError("venues must be sorted by venue_id, without duplicates")
        for v in self.venues:
            if not _strictly_increasing([ws for ws, _ in v.free]):
                raise ValueError(f"venue {v.venue_id}: free workstations must be sorted, unique")
        if not _strictly_increasing(list(map(_EXPERT_ID, self.candidates))):
            raise ValueError("candidates must be sorted by expert_id, without duplicates")
        n = len(self.project.quotas)
        if self.seats is not None and any(not 0 <= q < n for q in self.seats):
            raise ValueError(f"seats must be quota indices in [0, {n})")
        if list(self.occupied) != sorted(self.occupied):
            raise ValueError("occupied must be sorted")

    def seat_quotas(self) -> tuple[int, ...]:
        """The quota index of each seat to fill, in draw order."""
        if self.seats is not None:
            return self.seats
        return tuple(i for i, q in enumerate(self.project.quotas) for _ in range(q.count))


def _strictly_increasing(items: list[str]) -> bool:
    """Sorted without duplicates; compared in C (map over two views) for 50,000 ids."""
    return all(map(lt, items, islice(items, 1, None)))


_EXPERT_ID = attrgetter("expert_id")
_CANONICAL_ROW = attrgetter("canonical")
_KIND = attrgetter("kind")
_SPECIALTIES = attrgetter("specialties")
_CATCHMENT = attrgetter("catchment_cities")


def build_venue_offers(
    sites: Iterable[Site],
    project: Project,
    host_city: str,
    busy_workstations: Collection[str] = frozenset(),
) -> tuple[VenueOffer, ...]:
    """Guest venues outside the project's and the host's city with free workstations, sorted."""
    barred = {project.city, host_city}
    offers: list[VenueOffer] = []
    for site in sites:
        if "guest" not in site.roles or site.city in barred:
            continue
        for venue in site.venues:
            if venue.city in barred:
                continue
            free = tuple(
                sorted(
                    (ws.id, ws.room_id)
                    for ws in venue.workstations
                    if ws.id not in busy_workstations
                )
            )
            if free:
                offers.append(VenueOffer(venue.id, site.id, venue.city, free))
    offers.sort(key=attrgetter("venue_id"))
    return tuple(offers)


# --- canonical form ----------------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("window times must be timezone-aware")
    return moment.astimezone(UTC).isoformat()


def project_to_json(p: Project) -> dict[str, Any]:
    """The whole project as plain JSON (Decimals as strings, times as UTC ISO 8601)."""
    s = p.scoring
    return {
        "id": p.id,
        "name": p.name,
        "host_site_id": p.host_site_id,
        "city": p.city,
        "tenderer_id": p.tenderer_id,
        "category": p.category,
        "committee_size": p.committee_size,
        "quotas": [{"specialty": q.specialty, "count": q.count, "kind": q.kind} for q in p.quotas],
        "window": {"start": _iso(p.window.start), "end": _iso(p.window.end)},
        "scoring": {
            "method": s.method,
            "price_weight": str(s.price_weight),
            "criteria": [
                {
                    "id": c.id,
                    "name": c.name,
                    "max_score": str(c.max_score),
                    "objective": c.objective,
                }
                for c in s.criteria
            ],
            "deduction_per_point": str(s.deduction_per_point),
            "deviation_threshold": str(s.deviation_threshold),
        },
        "bids": [
            {"bidder_id": b.bidder_id, "price": str(b.price), "valid": b.valid} for b in p.bids
        ],
        "competent_department": p.competent_department,
        "tenderer_reps": p.tenderer_reps,
        "double_blind": p.double_blind,
        "large": p.large,
    }


def project_from_json(d: dict[str, Any]) -> Project:
    s = d["scoring"]
    return Project(
        id=d["id"],
        name=d["name"],
        host_site_id=d["host_site_id"],
        city=d["city"],
        tenderer_id=d["tenderer_id"],
        category=cast(Category, d["category"]),
        committee_size=int(d["committee_size"]),
        quotas=tuple(
            Quota(q["specialty"], int(q["count"]), cast(ExpertKind | None, q["kind"]))
            for q in d["quotas"]
        ),
        window=Window(
            datetime.fromisoformat(d["window"]["start"]),
            datetime.fromisoformat(d["window"]["end"]),
        ),
        scoring=ScoringMethod(
            method=cast(ScoringMethodName, s["method"]),
            price_weight=Decimal(s["price_weight"]),
            criteria=tuple(
                Criterion(c["id"], c["name"], Decimal(c["max_score"]), bool(c["objective"]))
                for c in s["criteria"]
            ),
            deduction_per_point=Decimal(s["deduction_per_point"]),
            deviation_threshold=Decimal(s["deviation_threshold"]),
        ),
        bids=tuple(Bid(b["bidder_id"], Decimal(b["price"]), bool(b["valid"])) for b in d["bids"]),
        competent_department=d["competent_department"],
        tenderer_reps=int(d["tenderer_reps"]),
        double_blind=bool(d["double_blind"]),
        large=bool(d["large"]),
    )


def _inputs_head(inputs: DrawInputs) -> dict[str, Any]:
    """`inputs_to_json` without the candidates (small, so encoded generically)."""
    return {
        "format": INPUTS_FORMAT,
        "project": project_to_json(inputs.project),
        "rules_version": inputs.rules_version,
        "per_venue_cap": inputs.per_venue_cap,
        "exclude": sorted(inputs.exclude),
        "parent": inputs.parent,
        "seats": None if inputs.seats is None else list(inputs.seats),
        "occupied": [list(o) for o in inputs.occupied],
        "venues": [
            [v.venue_id, v.site_id, v.city, [list(f) for f in v.free]] for v in inputs.venues
        ],
    }


def inputs_to_json(inputs: DrawInputs) -> dict[str, Any]:
    """The inputs as plain JSON; a candidate is a row [id, kind, [specialties], [catchment]]."""
    out = _inputs_head(inputs)
    out["candidates"] = [
        [c.expert_id, c.kind, list(c.specialties), list(c.catchment_cities)]
        for c in inputs.candidates
    ]
    return out


def inputs_from_json(d: dict[str, Any]) -> DrawInputs:
    """Rebuild inputs from `inputs_to_json`; raises KeyError/ValueError on a malformed archive."""
    if d.get("format") != INPUTS_FORMAT:
        raise ValueError(f"inputs: unknown format {d.get('format')!r}")
    return DrawInputs(
        project=project_from_json(d["project"]),
        rules_version=d["rules_version"],
        venues=tuple(
            VenueOffer(v[0], v[1], v[2], tuple((f[0], f[1]) for f in v[3])) for v in d["venues"]
        ),
        candidates=tuple(
            Candidate(i, cast(ExpertKind, k), tuple(s), tuple(ct))
            for i, k, s, ct in d["candidates"]
        ),
        per_venue_cap=int(d["per_venue_cap"]),
        exclude=frozenset(d["exclude"]),
        parent=d["parent"],
        seats=None if d["seats"] is None else tuple(int(x) for x in d["seats"]),
        occupied=tuple((o[0], o[1]) for o in d["occupied"]),
    )


def canonical_inputs(inputs: DrawInputs) -> bytes:
    """Canonical JSON (sorted keys, no whitespace, ASCII) of `inputs_to_json(inputs)`.

    Equal to json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":")), but the
    candidate rows are precomputed (`Candidate.canonical`), so 50,000 candidates cost one join.
    """
    head = _canonical(_inputs_head(inputs))
    rows = ",".join(map(_CANONICAL_ROW, inputs.candidates))
    # "candidates" sorts first among the top-level keys.
    return ('{"candidates":[' + rows + "]," + head[1:]).encode("ascii")


def input_digest(inputs: DrawInputs) -> str:
    """SHA-256 hex of the canonical inputs (memoised on the frozen instance)."""
    if not inputs._digest:
        inputs._digest.append(hashlib.sha256(canonical_inputs(inputs)).hexdigest())
    return inputs._digest[0]


# --- outcome -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seat:
    """One drawn member: who, for which quota, where."""

    expert_id: str
    quota_index: int
    venue_id: str
    site_id: str
    workstation_id: str
    room_id: str


SEAT_FIELDS: tuple[str, ...] = (
    "expert_id",
    "quota_index",
    "venue_id",
    "site_id",
    "workstation_id",
    "room_id",
)


@dataclass(frozen=True, slots=True)
class DrawOutcome:
    """A successful draw: venues in drawn order, seats in seat order, the cap that applied."""

    venues: tuple[str, ...]
    seats: tuple[Seat, ...]
    cap: int

    def outcome_digest(self) -> str:
        return hashlib.sha256(_canonical(outcome_to_json(self)).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class DrawFailure:
    """The draw could not fill a seat of `quota`: nothing is booked.

    `needed`: seats of that quota still unfilled; `available`: candidates matching it not yet
    drawn (whatever their venues). `reasons` counts what starved it: candidates matching the quota
    (`matching`), of them excluded as already drawn before (`excluded`) or drawn for another seat
    now (`drawn_now`), those whose catchment holds no eligible venue (`no_venue_in_catchment`) or
    only full ones (`catchment_venues_full`), and the venue counts (`venues_offered`,
    `venues_eligible`, `venues_drawn`) and `cap`.
    """

    quota_index: int
    quota: Quota
    needed: int
    available: int
    reasons: dict[str, int]

    def message(self) -> str:
        q = self.quota
        kind = f" {q.kind}" if q.kind else ""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        return (
            f"quota {self.quota_index} ({q.specialty}{kind} x{q.count}) cannot be met: "
            f"{self.needed} needed, {self.available} candidate(s) left; {counts}"
        )


DrawResult = DrawOutcome | DrawFailure


def outcome_to_json(result: DrawResult) -> dict[str, Any]:
    if isinstance(result, DrawFailure):
        q = result.quota
        return {
            "type": "failure",
            "quota_index": result.quota_index,
            "quota": {"specialty": q.specialty, "count": q.count, "kind": q.kind},
            "needed": result.needed,
            "available": result.available,
            "reasons": dict(result.reasons),
        }
    return {
        "type": "outcome",
        "venues": list(result.venues),
        "cap": result.cap,
        "seats": [{f: getattr(s, f) for f in SEAT_FIELDS} for s in result.seats],
    }


def outcome_from_json(d: dict[str, Any]) -> DrawResult:
    if d.get("type") == "failure":
        q = d["quota"]
        return DrawFailure(
            quota_index=int(d["quota_index"]),
            quota=Quota(q["specialty"], int(q["count"]), cast(ExpertKind | None, q["kind"])),
            needed=int(d["needed"]),
            available=int(d["available"]),
            reasons={str(k): int(v) for k, v in d["reasons"].items()},
        )
    if d.get("type") != "outcome":
        raise ValueError(f"result: unknown type {d.get('type')!r}")
    return DrawOutcome(
        venues=tuple(d["venues"]),
        seats=tuple(
            Seat(
                s["expert_id"],
                int(s["quota_index"]),
                s["venue_id"],
                s["site_id"],
                s["workstation_id"],
                s["room_id"],
            )
            for s in d["seats"]
        ),
        cap=int(d["cap"]),
    )


# --- the draw ----------------------------------------------------------------------------------


def _norm_code(code: str) -> str:
    return ".".join(p for p in code.strip().split(".") if p)


def draw(inputs: DrawInputs, seed: bytes) -> DrawResult:
    """Run the draw defined in the module docstring. Pure: same inputs and seed, same result."""
    seat_quotas = inputs.seat_quotas()
    if not seat_quotas:
        return DrawOutcome((), (), inputs.per_venue_cap)
    rng = DrawRandom(seed, bytes.fromhex(input_digest(inputs)))
    project, cands, exclude = inputs.project, inputs.candidates, inputs.exclude

    # Candidates per quota, bucketed by catchment city (each bucket in id order). Codes are
    # matched once per distinct code, then each candidate costs one C-level isdisjoint.
    specialties = list(map(_SPECIALTIES, cands))
    catchments = list(map(_CATCHMENT, cands))
    kinds = list(map(_KIND, cands))
    codes: set[str] = set().union(*specialties)
    buckets: dict[int, dict[str, list[int]]] = {}
    matching: dict[int, list[int]] = {}
    excluded_matching: dict[int, int] = {}
    for qi in sorted(set(seat_quotas)):
        q = project.quotas[qi]
        code = _norm_code(q.specialty)
        dotted = code + "."
        under = {s for s in codes if s == code or s.startswith(dotted)}
        hits = [i for i, sp in enumerate(specialties) if not under.isdisjoint(sp)]
        if q.kind is not None:
            hits = [i for i in hits if kinds[i] == q.kind]
        found = [i for i in hits if cands[i].expert_id not in exclude] if exclude else hits
        by_city: dict[str, list[int]] = {}
        for i in found:
            cities = catchments[i]
            if len(cities) == 1:
                by_city.setdefault(cities[0], []).append(i)
            else:
                for city in set(cities):
                    by_city.setdefault(city, []).append(i)
        buckets[qi], matching[qi], excluded_matching[qi] = by_city, found, len(hits) - len(found)
    served = {city for b in buckets.values() for city in b}

    # 1. Venues.
    occ = Counter(v for v, _ in inputs.occupied)
    used_rooms: dict[str, set[str]] = {}
    for v, room in inputs.occupied:
        used_rooms.setdefault(v, set()).add(room)
    rooms: dict[str, int] = {}
    eligible = []
    for offer in inputs.venues:
        usable = {r for _, r in offer.free} - used_rooms.get(offer.venue_id, set())
        if usable and offer.city in served:
            eligible.append(offer)
            rooms[offer.venue_id] = len(usable)

    def capacity(venue_id: str, c: int) -> int:
        return max(0, min(c - occ[venue_id], rooms[venue_id]))

    seats_needed = len(seat_quotas)
    cap = inputs.per_venue_cap
    if eligible and sum(capacity(v.venue_id, cap) for v in eligible) < seats_needed:
        useful = max(occ[v.venue_id] + rooms[v.venue_id] for v in eligible)
        cap = max(cap, useful)
        for trial in range(inputs.per_venue_cap + 1, useful + 1):
            if sum(capacity(v.venue_id, trial) for v in eligible) >= seats_needed:
                cap = trial
                break
    order = rng.sample(eligible, len(eligible))
    k, total = 0, 0
    while k < len(order) and total < seats_needed:
        total += capacity(order[k].venue_id, cap)
        k += 1
    drawn, reserves = order[:k], order[k:]
    spare = {v.venue_id: capacity(v.venue_id, cap) for v in order}

    # 2. Experts.
    taken: set[int] = set()
    picks: list[tuple[int, int, VenueOffer]] = []  # (candidate index, quota index, venue)
    for seat_no, qi in enumerate(seat_quotas):
        while True:
            open_cities = {v.city for v in drawn if spare[v.venue_id] > 0}
            lists = [buckets[qi][c] for c in open_cities if c in buckets[qi]]
            pool = sorted(set().union(*lists)) if len(lists) != 1 else lists[0]
            if taken:
                pool = [i for i in pool if i not in taken]
            if pool or not reserves:
                break
            drawn.append(reserves.pop(0))
        if not pool:
            return _failure(
                inputs, seat_quotas, seat_no, matching[qi], excluded_matching[qi], taken,
                eligible, drawn, spare, cap,
            )  # fmt: skip
        i = pool[rng.randbelow(len(pool))]
        options = [v for v in drawn if spare[v.venue_id] > 0 and v.city in catchments[i]]
        venue = options[rng.randbelow(len(options))]
        spare[venue.venue_id] -= 1
        taken.add(i)
        picks.append((i, qi, venue))

    # 3. Workstations.
    seats: list[Seat] = []
    for i, qi, venue in picks:
        used = used_rooms.setdefault(venue.venue_id, set())
        free = [(ws, room) for ws, room in venue.free if room not in used]
        ws, room = free[rng.randbelow(len(free))]
        used.add(room)
        seats.append(Seat(cands[i].expert_id, qi, venue.venue_id, venue.site_id, ws, room))
    return DrawOutcome(tuple(v.venue_id for v in drawn), tuple(seats), cap)


def _failure(
    inputs: DrawInputs,
    seat_quotas: tuple[int, ...],
    seat_no: int,
    matching: list[int],
    n_excluded: int,
    taken: set[int],
    eligible: list[VenueOffer],
    drawn: list[VenueOffer],
    spare: dict[str, int],
    cap: int,
) -> DrawFailure:
    qi = seat_quotas[seat_no]
    cands = inputs.candidates
    left = [i for i in matching if i not in taken]
    eligible_cities = {v.city for v in eligible}
    no_venue = sum(1 for i in left if not eligible_cities.intersection(cands[i].catchment_cities))
    return DrawFailure(
        quota_index=qi,
        quota=inputs.project.quotas[qi],
        needed=sum(1 for q in seat_quotas[seat_no:] if q == qi),
        available=len(left),
        reasons={
            "matching": len(matching) + n_excluded,
            "excluded": n_excluded,
            "drawn_now": len(matching) - len(left),
            "no_venue_in_catchment": no_venue,
            "catchment_venues_full": len(left) - no_venue,
            "venues_offered": len(inputs.venues),
            "venues_eligible": len(eligible),
            "venues_drawn": len(drawn),
            "cap": cap,
        },
    )


# --- supplementary draws -----------------------------------------------------------------------


def supplementary_inputs(
    previous: DrawInputs,
    committee: Sequence[Seat],
    drop: Collection[str],
    *,
    venues: tuple[VenueOffer, ...],
    candidates: tuple[Candidate, ...],
    parent: str,
    rules_version: str | None = None,
) -> DrawInputs:
    """Inputs for redrawing the seats of `drop` under the same rules.

    `previous`: the inputs of the last draw in the chain (for the project, cap and exclusions);
    `committee`: the committee as it stands (all current seats, the dropped ones included);
    `venues` and `candidates`: a fresh screening at the time of the redraw; `parent`: the
    `record_digest` of the previous draw's archive, so the chain is tamper-evident.
    Everyone ever drawn for the project is excluded; members who stay keep their venue (counted
    toward the per-venue cap) and their room (not shared).
    """
    members = {s.expert_id for s in committee}
    unknown = sorted(set(drop) - members)
    if unknown:
        raise ValueError(f"cannot drop experts not on the committee: {unknown}")
    return DrawInputs(
        project=previous.project,
        rules_version=rules_version or previous.rules_version,
        venues=venues,
        candidates=candidates,
        per_venue_cap=previous.per_venue_cap,
        exclude=previous.exclude | members,
        parent=parent,
        seats=tuple(s.quota_index for s in committee if s.expert_id in drop),
        occupied=tuple(
            sorted((s.venue_id, s.room_id) for s in committee if s.expert_id not in drop)
        ),
    )


def merge_committee(
    committee: Sequence[Seat], drop: Collection[str], outcome: DrawOutcome
) -> tuple[Seat, ...]:
    """The committee after a supplementary draw: members who stay, then the new seats."""
    return tuple(s for s in committee if s.expert_id not in drop) + outcome.seats


# --- commitment and replay ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commitment:
    """What is published before the draw: the seed's hash and the inputs' digest."""

    draw_id: str
    seed_hash: str
    input_digest: str
    rules_version: str
    parent: str | None


def _draw_id(seed_hash: str, digest: str) -> str:
    return hashlib.sha256(f"evalgrid-draw-id-v1:{seed_hash}:{digest}".encode()).hexdigest()[:32]


def commit(seed: bytes, inputs: DrawInputs) -> Commitment:
    """Commit to a seed and the inputs; publish this before calling `draw`."""
    seed_hash = hashlib.sha256(seed).hexdigest()
    digest = input_digest(inputs)
    return Commitment(
        _draw_id(seed_hash, digest), seed_hash, digest, inputs.rules_version, inputs.parent
    )


def commitment_to_json(c: Commitment) -> dict[str, Any]:
    return {
        "draw_id": c.draw_id,
        "seed_hash": c.seed_hash,
        "input_digest": c.input_digest,
        "rules_version": c.rules_version,
        "parent": c.parent,
    }


def commitment_from_json(d: dict[str, Any]) -> Commitment:
    return Commitment(
        d["draw_id"], d["seed_hash"], d["input_digest"], d["rules_version"], d["parent"]
    )


def record_digest(commitment: Commitment, result: DrawResult) -> str:
    """Digest of a draw's commitment and result: the `parent` a supplementary draw chains to.

    It leaves out the seed, which is revealed only after the award, so it is fixed at draw time.
    """
    text = _canonical(
        {"commitment": commitment_to_json(commitment), "result": outcome_to_json(result)}
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def make_archive(
    commitment: Commitment, inputs: DrawInputs, result: DrawResult, seed: bytes | None = None
) -> dict[str, Any]:
    """A self-contained plain-JSON record of a draw; the seed is added when it is revealed."""
    return {
        "format": ARCHIVE_FORMAT,
        "commitment": commitment_to_json(commitment),
        "inputs": inputs_to_json(inputs),
        "result": outcome_to_json(result),
        "seed": None if seed is None else seed.hex(),
    }


def _compare_results(archived: DrawResult, replayed: DrawResult) -> list[str]:
    if isinstance(archived, DrawFailure) or isinstance(replayed, DrawFailure):
        if archived != replayed:
            return [
                f"result: archived {outcome_to_json(archived)} but the replay gives "
                f"{outcome_to_json(replayed)}"
            ]
        return []
    problems: list[str] = []
    if archived.cap != replayed.cap:
        problems.append(f"result.cap: archived {archived.cap}, replay {replayed.cap}")
    if archived.venues != replayed.venues:
        problems.append(
            f"result.venues: archived {list(archived.venues)}, replay {list(replayed.venues)}"
        )
    if len(archived.seats) != len(replayed.seats):
        problems.append(
            f"result.seats: archived {len(archived.seats)} seats, replay {len(replayed.seats)}"
        )
    for n, (a, b) in enumerate(zip(archived.seats, replayed.seats, strict=False)):
        for f in SEAT_FIELDS:
            if getattr(a, f) != getattr(b, f):
                problems.append(
                    f"result.seats[{n}].{f}: archived {getattr(a, f)!r}, replay {getattr(b, f)!r}"
                )
    return problems


def verify_replay(archive: dict[str, Any]) -> list[str]:
    """Check an archive end to end; returns the differences found (empty when it verifies).

    Checks: SHA-256(seed) equals the committed seed hash; the archived inputs digest to the
    committed input digest; the draw id, rules version and parent agree with the commitment; and
    replaying the draw from the archived inputs and seed gives the archived result field by field.
    """
    problems: list[str] = []
    if archive.get("format") != ARCHIVE_FORMAT:
        return [f"format: expected {ARCHIVE_FORMAT!r}, got {archive.get('format')!r}"]
    try:
        commitment = commitment_from_json(archive["commitment"])
        inputs = inputs_from_json(archive["inputs"])
        archived = outcome_from_json(archive["result"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return [f"archive: cannot be read: {type(exc).__name__}: {exc}"]
    seed_hex = archive.get("seed")
    if seed_hex is None:
        return ["seed: not revealed yet; the draw cannot be replayed"]
    try:
        seed = bytes.fromhex(seed_hex)
    except (TypeError, ValueError):
        return [f"seed: not hex: {seed_hex!r}"]
    seed_hash = hashlib.sha256(seed).hexdigest()
    if seed_hash != commitment.seed_hash:
        problems.append(
            f"seed: SHA-256 of the revealed seed is {seed_hash}, "
            f"the commitment says {commitment.seed_hash}"
        )
    digest = input_digest(inputs)
    if digest != commitment.input_digest:
        problems.append(
            f"inputs: the archived inputs digest to {digest}, "
            f"the commitment says {commitment.input_digest}"
        )
    if inputs.rules_version != commitment.rules_version:
        problems.append(
            f"rules_version: inputs say {inputs.rules_version!r}, "
            f"the commitment says {commitment.rules_version!r}"
        )
    if inputs.parent != commitment.parent:
        problems.append(
            f"parent: inputs say {inputs.parent!r}, the commitment says {commitment.parent!r}"
        )
    if _draw_id(commitment.seed_hash, commitment.input_digest) != commitment.draw_id:
        problems.append("draw_id: does not derive from the committed seed hash and input digest")
    try:
        replayed = draw(inputs, seed)
    except ValueError as exc:
        problems.append(f"replay: failed: {exc}")
        return problems
    problems.extend(_compare_results(archived, replayed))
    return problems
