"""The three-random draw (venue, expert, workstation) as a pure, replayable function.

`draw(inputs, seed)` depends on nothing but its arguments: the coordinator commits to
SHA-256(seed) and to `input_digest(inputs)` before drawing, reveals the seed after the award, and
anyone can replay the draw from the archive (`verify_replay`) and get the identical committee,
venues and seats. The input digest is the SHA-256 hex of `canonical_inputs(inputs)`: the JSON
of `inputs_to_json(inputs)` with sorted keys, no whitespace and ASCII escapes.

Inputs (format v2) come in one of two forms, with the same draw:
- *explicit*: every venue offer with its free workstations and every candidate as a row
  [id, kind, [specialties], [catchment cities]] (keys "venues" and "candidates");
- *referenced*: a `DrawSnapshot` (the day's screened pool and the whole guest-venue inventory,
  digested once: key "snapshot" holds its digest) and two bitmaps over it, "barred" (snapshot
  candidates who may not sit for this project) and "unavailable" (snapshot workstations not
  offered: busy in the window, down, or in the project's or host's city). A bitmap is the
  base64 (standard alphabet, padded) of ceil(n / 8) bytes; row i is bit 7 - i % 8 of byte i // 8
  (most significant bit first); padding bits are zero. The referenced inputs *resolve* to
  explicit ones: the candidates are the snapshot's rows not barred; the venue offers are the
  snapshot's venues with their workstations not unavailable, venues left with none dropped.
  A national pool (300,000 experts, 30,000 workstations) thus costs one digest per day instead
  of megabytes per draw; the archive names the snapshot by digest and replay needs it (embedded
  in the archive, or given to `verify_replay`).
Both forms also hold the whole project, the rules version, the cap, the sorted exclusions, the
parent, and the seats and occupancy of a supplementary draw.

The distribution (normative; the README repeats it and tests check it)
----------------------------------------------------------------------
All randomness comes from one `DrawRandom(seed, bytes.fromhex(input_digest(inputs)))` stream, used
in exactly this order. Lists are in input order (after resolving referenced inputs): venues
sorted by venue id, each venue's free workstations sorted by workstation id, candidates sorted by
expert id.

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
   The eligible venues are drawn in a uniformly random order, one at a time, by Fisher-Yates on
   the list E of eligible venues: the k-th venue drawn (k = 0, 1, ...) swaps items k and
   k + randbelow(len(E) - k) of E and is then item k. First, venues are drawn until their
   capacities add up to S (or none is left): these are the *drawn* venues. The others are the
   *reserves*; one is drawn (at that point of the stream) only when step 2 needs it.
   With capacities all equal to c the first ceil(S / c) venues drawn are the drawn venues.
2. Experts, one seat at a time in seat order. The *open* venues are the drawn venues whose count
   of members (old and new) is below their capacity. The seat's candidates are those matching its
   quota, not drawn earlier in this draw, whose catchment contains the city of an open venue. If
   there are none, the next reserve venue is drawn as in step 1, appended to the drawn venues and
   the step retried; with no reserve left the draw fails (`DrawFailure`). Otherwise one candidate
   is chosen with `randbelow(#candidates)` from the candidates in id order, and then its venue
   with `randbelow(#venues)` from the open venues in its catchment, in drawn order.
3. Workstations, after all experts, one seat at a time in seat order: at the seat's venue, a
   workstation is chosen with `randbelow(#options)` from the venue's free workstations (id order)
   whose room holds no other member of this committee (old or new). With one member per venue
   this is a uniform choice among the venue's free workstations; a venue never seats two members
   of one committee in the same room.

(Format v1 differed only in step 1: it shuffled every eligible venue before step 2. Drawing the
order lazily gives the same law and costs a few draws instead of thousands at national scale.)

Committee composition needs no check here: every drawn member is a technical or economic expert,
so the two-thirds share is decided by the project's `tenderer_reps` (see committee.py).
Greedy sequential filling can fail where a cleverer assignment would succeed (overlapping quota
codes, catchments that meet only a few venues); the reserves soften this, and the failure names
the quota with the counts that starved it.

Cost. A draw never loops in Python over its candidates: they are coded once into arrays (kind,
distinct specialty tuple, distinct catchment tuple) and each seat is a few vectorised operations
over the rows matching its quota. For referenced inputs the arrays belong to the snapshot and
are built once per day; explicit inputs build them per draw, with C-level passes only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from json.encoder import encode_basestring_ascii
from operator import attrgetter, lt
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from coordinator.domain.model import (
    Bid,
    Category,
    Criterion,
    ExpertKind,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Window,
)
from coordinator.domain.randomness import DrawRandom

INPUTS_FORMAT = "evalgrid-draw-inputs-v2"
ARCHIVE_FORMAT = "evalgrid-draw-archive-v2"
SNAPSHOT_FORMAT = "evalgrid-draw-snapshot-v1"

Mask = NDArray[np.bool_]
Rows = NDArray[np.intp]


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueOffer:
    """A guest venue the project may use, with its workstations free for the window.

    `canonical` is the offer's canonical JSON row [venue, site, city, [[ws, room], ...]],
    computed once at construction (a national inventory has 30,000 workstations).
    """

    venue_id: str
    site_id: str
    city: str
    free: tuple[tuple[str, str], ...]  # (workstation_id, room_id), sorted by workstation id
    canonical: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        enc = encode_basestring_ascii
        stations = ",".join(f"[{enc(ws)},{enc(room)}]" for ws, room in self.free)
        row = f"[{enc(self.venue_id)},{enc(self.site_id)},{enc(self.city)},[{stations}]]"
        object.__setattr__(self, "canonical", row)


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
    code: int = field(init=False, repr=False, compare=False)  # see _VALUE_CODES

    def __post_init__(self) -> None:
        enc = encode_basestring_ascii
        row = (
            f"[{enc(self.expert_id)},{enc(self.kind)},"
            f"[{','.join(map(enc, self.specialties))}],"
            f"[{','.join(map(enc, self.catchment_cities))}]]"
        )
        object.__setattr__(self, "canonical", row)
        code = (
            _value_code(self.specialties) << 42
            | _value_code(self.catchment_cities) << 21
            | _value_code(self.kind)
        )
        object.__setattr__(self, "code", code)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt, not restored: `code` refers to this process's _VALUE_CODES.
        return (Candidate, (self.expert_id, self.kind, self.specialties, self.catchment_cities))


# Every distinct kind, specialty tuple and catchment tuple seen in this process gets a small
# number once; a candidate keeps its three numbers packed in `code`, so a draw codes 85,000
# candidates with one array conversion instead of hashing their tuples. Draws depend only on
# which values are equal, never on the numbers (they differ between processes).
_VALUE_CODES: dict[Any, int] = {}
_VALUES: list[Any] = []
_VALUE_LOCK = threading.Lock()
_FIELD_BITS = 21


def _value_code(value: Any) -> int:
    found = _VALUE_CODES.get(value)
    if found is None:
        with _VALUE_LOCK:
            found = _VALUE_CODES.get(value)
            if found is None:
                if len(_VALUES) >= 1 << _FIELD_BITS:
                    raise ValueError("too many distinct specialty or catchment tuples")
                found = _VALUE_CODES[value] = len(_VALUES)
                _VALUES.append(value)
    return found


def _check_sorted(venues: Sequence[VenueOffer], candidates: Sequence[Candidate]) -> None:
    if not _strictly_increasing([v.venue_id for v in venues]):
        raise ValueError("venues must be sorted by venue_id, without duplicates")
    for v in venues:
        if not _strictly_increasing([ws for ws, _ in v.free]):
            raise ValueError(f"venue {v.venue_id}: free workstations must be sorted, unique")
    if not _strictly_increasing(list(map(_EXPERT_ID, candidates))):
        raise ValueError("candidates must be sorted by expert_id, without duplicates")


@dataclass(frozen=True, slots=True)
class DrawSnapshot:
    """The day's screened pool and the whole guest-venue inventory, shared by many draws.

    `candidates`: every expert who passes the pool-level rules on the day (status, penalties,
    age), sorted by id; `venues`: every guest venue with all its workstations (as `free`), sorted.
    Digested once (`digest()`); referenced inputs name it by that digest and bar rows of it.
    The arrays a draw filters with are built once, on first use, and kept here.
    """

    candidates: tuple[Candidate, ...]
    venues: tuple[VenueOffer, ...]
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_sorted(self.venues, self.candidates)

    def canonical(self) -> bytes:
        """Canonical JSON of `snapshot_to_json(self)` (rows precomputed: one join each)."""
        return (
            '{"candidates":['
            + ",".join(map(_CANONICAL_ROW, self.candidates))
            + '],"format":'
            + json.dumps(SNAPSHOT_FORMAT)
            + ',"venues":['
            + ",".join(map(_CANONICAL_ROW, self.venues))
            + "]}"
        ).encode("ascii")

    def digest(self) -> str:
        """SHA-256 hex of `canonical()` (memoised)."""
        found = self._memo.get("digest")
        if found is None:
            found = self._memo["digest"] = hashlib.sha256(self.canonical()).hexdigest()
        return cast(str, found)

    def workstation_count(self) -> int:
        return self._venue_index().n_ws

    def expert_rows(self) -> Mapping[str, int]:
        """Expert id -> row (memoised)."""
        found = self._memo.get("expert_rows")
        if found is None:
            found = self._memo["expert_rows"] = {
                c.expert_id: i for i, c in enumerate(self.candidates)
            }
        return cast(Mapping[str, int], found)

    def workstation_rows(self) -> Mapping[str, int]:
        """Workstation id -> row (venues in order, each venue's workstations in order)."""
        found = self._memo.get("workstation_rows")
        if found is None:
            found = self._memo["workstation_rows"] = {
                ws: i for i, ws in enumerate(ws for v in self.venues for ws, _ in v.free)
            }
        return cast(Mapping[str, int], found)

    def expert_mask(self, expert_ids: Iterable[str]) -> Mask:
        """A bitmap over the candidates: the given experts (ids outside the snapshot ignored)."""
        rows = self.expert_rows()
        mask = np.zeros(len(self.candidates), dtype=np.bool_)
        mask[[rows[e] for e in expert_ids if e in rows]] = True
        return mask

    def workstation_mask(self, workstation_ids: Iterable[str]) -> Mask:
        """A bitmap over the workstations: the given ones (ids outside the snapshot ignored)."""
        rows = self.workstation_rows()
        mask = np.zeros(self.workstation_count(), dtype=np.bool_)
        mask[[rows[w] for w in workstation_ids if w in rows]] = True
        return mask

    def candidate_index(self) -> _CandidateIndex:
        found = self._memo.get("candidate_index")
        if found is None:
            found = self._memo["candidate_index"] = _CandidateIndex(self.candidates)
        return cast(_CandidateIndex, found)

    def _venue_index(self) -> _VenueIndex:
        found = self._memo.get("venue_index")
        if found is None:
            found = self._memo["venue_index"] = _VenueIndex(self.venues)
        return cast(_VenueIndex, found)


def snapshot_to_json(snapshot: DrawSnapshot) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "candidates": [
            [c.expert_id, c.kind, list(c.specialties), list(c.catchment_cities)]
            for c in snapshot.candidates
        ],
        "venues": [
            [v.venue_id, v.site_id, v.city, [list(f) for f in v.free]] for v in snapshot.venues
        ],
    }


def snapshot_from_json(d: dict[str, Any]) -> DrawSnapshot:
    """Rebuild a snapshot; raises KeyError/ValueError/TypeError on a malformed one."""
    if d.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"snapshot: unknown format {d.get('format')!r}")
    return DrawSnapshot(
        candidates=_candidates_from_json(d["candidates"]), venues=_venues_from_json(d["venues"])
    )


def _candidates_from_json(rows: list[Any]) -> tuple[Candidate, ...]:
    return tuple(Candidate(i, cast(ExpertKind, k), tuple(s), tuple(ct)) for i, k, s, ct in rows)


def _venues_from_json(rows: list[Any]) -> tuple[VenueOffer, ...]:
    return tuple(VenueOffer(v[0], v[1], v[2], tuple((f[0], f[1]) for f in v[3])) for v in rows)


def pack_mask(mask: Mask) -> str:
    """A boolean array as the bitmap text of the module docstring."""
    return base64.b64encode(np.packbits(mask, bitorder="big").tobytes()).decode("ascii")


def _bitmap_bytes(text: str, n: int, what: str) -> bytes:
    """The bytes of a bitmap over n rows, checked; ValueError naming `what` if it is not one."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise ValueError(f"{what}: not base64 ({exc})") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"{what}: {len(raw)} bytes for {n} rows, expected {(n + 7) // 8}")
    # Canonical: no stray bits in the last base64 character (what b64encode would not write).
    tail = {1: (text[-3:-2], 16), 2: (text[-2:-1], 4)}.get(len(raw) % 3)
    if tail is not None and _B64.index(tail[0]) % tail[1]:
        raise ValueError(f"{what}: not in canonical base64")
    if n % 8 and raw[-1] & (0xFF >> (n % 8)):
        raise ValueError(f"{what}: padding bits must be zero")
    return raw


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def unpack_mask(text: str, n: int, what: str, raw: bytes | None = None) -> Mask:
    """The boolean array of a bitmap over n rows; ValueError naming `what` if it is not one.
    (`raw`: its bytes, already checked.)"""
    raw = _bitmap_bytes(text, n, what) if raw is None else raw
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n, bitorder="big")
    return bits.astype(np.bool_)


@dataclass(frozen=True, slots=True)
class DrawInputs:
    """Everything a draw depends on, fixed and digested before the seed is used.

    `seats`: quota index of each seat to fill (supplementary draws); None fills every seat of
    every quota. `occupied`: (venue_id, room_id) of members who stay (supplementary draws); they
    count toward the per-venue cap and their rooms are not shared. Referenced inputs (see the
    module docstring) set `snapshot`, `barred` and `unavailable` and leave `venues` and
    `candidates` empty; `DrawInputs.referenced` builds them from boolean arrays.
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
    snapshot: DrawSnapshot | None = None
    barred: str = ""
    unavailable: str = ""
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.per_venue_cap < 1:
            raise ValueError("per_venue_cap must be >= 1")
        if self.snapshot is None:
            if self.barred or self.unavailable:
                raise ValueError("barred and unavailable need a snapshot")
            _check_sorted(self.venues, self.candidates)
        else:
            if self.venues or self.candidates:
                raise ValueError("inputs with a snapshot take no venues or candidates of their own")
            n_ws = self.snapshot.workstation_count()
            # Checked here; kept for the draw (a national pool's bitmap is 37.5 kB).
            self._memo["barred"] = _bitmap_bytes(
                self.barred, len(self.snapshot.candidates), "barred"
            )
            self._memo["unavailable"] = _bitmap_bytes(self.unavailable, n_ws, "unavailable")
        n = len(self.project.quotas)
        if self.seats is not None and any(not 0 <= q < n for q in self.seats):
            raise ValueError(f"seats must be quota indices in [0, {n})")
        if list(self.occupied) != sorted(self.occupied):
            raise ValueError("occupied must be sorted")

    @classmethod
    def referenced(
        cls,
        *,
        project: Project,
        rules_version: str,
        snapshot: DrawSnapshot,
        barred: Mask,
        unavailable: Mask,
        per_venue_cap: int,
        exclude: frozenset[str] = frozenset(),
        parent: str | None = None,
        seats: tuple[int, ...] | None = None,
        occupied: tuple[tuple[str, str], ...] = (),
    ) -> DrawInputs:
        """Referenced inputs from boolean arrays over the snapshot's candidates and stations."""
        if len(barred) != len(snapshot.candidates):
            raise ValueError(
                f"barred: {len(barred)} rows, the snapshot has "
                f"{len(snapshot.candidates)} candidates"
            )
        if len(unavailable) != snapshot.workstation_count():
            raise ValueError(
                f"unavailable: {len(unavailable)} rows, the snapshot has "
                f"{snapshot.workstation_count()} workstations"
            )
        return cls(
            project=project,
            rules_version=rules_version,
            venues=(),
            candidates=(),
            per_venue_cap=per_venue_cap,
            exclude=exclude,
            parent=parent,
            seats=seats,
            occupied=occupied,
            snapshot=snapshot,
            barred=pack_mask(barred),
            unavailable=pack_mask(unavailable),
        )

    def seat_quotas(self) -> tuple[int, ...]:
        """The quota index of each seat to fill, in draw order."""
        if self.seats is not None:
            return self.seats
        return tuple(i for i, q in enumerate(self.project.quotas) for _ in range(q.count))

    def candidate_count(self) -> int:
        """How many candidates the draw sees (after resolving a snapshot)."""
        if self.snapshot is None:
            return len(self.candidates)
        return len(self.snapshot.candidates) - int.from_bytes(self._memo["barred"]).bit_count()

    def venue_count(self) -> int:
        """How many venue offers the draw sees (after resolving a snapshot)."""
        if self.snapshot is None:
            return len(self.venues)
        return int(np.count_nonzero(_offered(self)))

    def resolved_candidates(self) -> tuple[Candidate, ...]:
        """The candidates as explicit inputs would list them (O(pool): for checks and tools)."""
        if self.snapshot is None:
            return self.candidates
        barred = unpack_mask(self.barred, len(self.snapshot.candidates), "barred")
        return tuple(c for c, b in zip(self.snapshot.candidates, barred, strict=True) if not b)

    def resolved_venues(self) -> tuple[VenueOffer, ...]:
        """The venue offers as explicit inputs would list them (for checks and tools)."""
        if self.snapshot is None:
            return self.venues
        unavailable = unpack_mask(
            self.unavailable, self.snapshot.workstation_count(), "unavailable"
        ).tolist()
        out: list[VenueOffer] = []
        k = 0
        for v in self.snapshot.venues:
            free = tuple(f for j, f in enumerate(v.free) if not unavailable[k + j])
            k += len(v.free)
            if free:
                out.append(VenueOffer(v.venue_id, v.site_id, v.city, free))
        return tuple(out)


def _offered(inputs: DrawInputs) -> Mask:
    """Per venue of the venue index: does it offer at least one free workstation?"""
    vidx, free = _venue_side(inputs)
    offered: Mask = np.bincount(vidx.ws_venue[free], minlength=vidx.n_venues) > 0
    return offered


def _strictly_increasing(items: list[str]) -> bool:
    """Sorted without duplicates; compared in C (map over two views) for 50,000 ids."""
    return all(map(lt, items, islice(items, 1, None)))


_EXPERT_ID = attrgetter("expert_id")
_CANONICAL_ROW = attrgetter("canonical")
_KIND = attrgetter("kind")
_SPECIALTIES = attrgetter("specialties")
_CATCHMENT = attrgetter("catchment_cities")
_CODE = attrgetter("code")


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


def _inputs_head(inputs: DrawInputs, references: bool = True) -> dict[str, Any]:
    """`inputs_to_json` without the explicit venues and candidates (small: encoded generically)."""
    head: dict[str, Any] = {
        "format": INPUTS_FORMAT,
        "project": project_to_json(inputs.project),
        "rules_version": inputs.rules_version,
        "per_venue_cap": inputs.per_venue_cap,
        "exclude": sorted(inputs.exclude),
        "parent": inputs.parent,
        "seats": None if inputs.seats is None else list(inputs.seats),
        "occupied": [list(o) for o in inputs.occupied],
    }
    if inputs.snapshot is not None and references:
        head["snapshot"] = inputs.snapshot.digest()
        head["barred"] = inputs.barred
        head["unavailable"] = inputs.unavailable
    return head


def inputs_to_json(inputs: DrawInputs) -> dict[str, Any]:
    """The inputs as plain JSON; a candidate is a row [id, kind, [specialties], [catchment]]."""
    out = _inputs_head(inputs)
    if inputs.snapshot is None:
        out["candidates"] = [
            [c.expert_id, c.kind, list(c.specialties), list(c.catchment_cities)]
            for c in inputs.candidates
        ]
        out["venues"] = [
            [v.venue_id, v.site_id, v.city, [list(f) for f in v.free]] for v in inputs.venues
        ]
    return out


def inputs_from_json(
    d: dict[str, Any], snapshots: Mapping[str, DrawSnapshot] | None = None
) -> DrawInputs:
    """Rebuild inputs from `inputs_to_json`; raises KeyError/ValueError on a malformed archive.

    Referenced inputs need their snapshot in `snapshots` (by digest); it is checked against the
    digest it is filed under.
    """
    if d.get("format") != INPUTS_FORMAT:
        raise ValueError(f"inputs: unknown format {d.get('format')!r}")
    snapshot: DrawSnapshot | None = None
    venues: tuple[VenueOffer, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    if "snapshot" in d:
        digest = d["snapshot"]
        snapshot = (snapshots or {}).get(digest)
        if snapshot is None:
            raise ValueError(f"inputs: snapshot {digest} is not provided")
        if snapshot.digest() != digest:
            raise ValueError(
                f"inputs: the snapshot filed under {digest} digests to {snapshot.digest()}"
            )
    else:
        venues, candidates = _venues_from_json(d["venues"]), _candidates_from_json(d["candidates"])
    return DrawInputs(
        project=project_from_json(d["project"]),
        rules_version=d["rules_version"],
        venues=venues,
        candidates=candidates,
        per_venue_cap=int(d["per_venue_cap"]),
        exclude=frozenset(d["exclude"]),
        parent=d["parent"],
        seats=None if d["seats"] is None else tuple(int(x) for x in d["seats"]),
        occupied=tuple((o[0], o[1]) for o in d["occupied"]),
        snapshot=snapshot,
        barred=d.get("barred", ""),
        unavailable=d.get("unavailable", ""),
    )


def canonical_inputs(inputs: DrawInputs) -> bytes:
    """Canonical JSON (sorted keys, no whitespace, ASCII) of `inputs_to_json(inputs)`.

    Equal to json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":")), but the
    explicit candidate and venue rows are precomputed (`canonical`), so 85,000 candidates and
    30,000 workstations cost two joins. Referenced inputs are small: a digest and two bitmaps.
    """
    head = _canonical(_inputs_head(inputs, references=False))
    if inputs.snapshot is not None:
        # Base64 and hex need no escaping: spliced in, in key order ("barred" first,
        # "snapshot" after "seats", "unavailable" last), not scanned by the JSON encoder.
        return (
            f'{{"barred":"{inputs.barred}",{head[1:-1]},"snapshot":"{inputs.snapshot.digest()}",'
            f'"unavailable":"{inputs.unavailable}"}}'
        ).encode("ascii")
    rows = ",".join(map(_CANONICAL_ROW, inputs.candidates))
    venues = ",".join(map(_CANONICAL_ROW, inputs.venues))
    # "candidates" sorts first among the top-level keys and "venues" last.
    return ('{"candidates":[' + rows + "]," + head[1:-1] + ',"venues":[' + venues + "]}").encode(
        "ascii"
    )


def input_digest(inputs: DrawInputs) -> str:
    """SHA-256 hex of the canonical inputs (memoised on the frozen instance)."""
    found = inputs._memo.get("digest")
    if found is None:
        found = inputs._memo["digest"] = hashlib.sha256(canonical_inputs(inputs)).hexdigest()
    return cast(str, found)


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


def _codes(values: list[Any]) -> tuple[Rows, list[Any]]:
    """Each value's index among the distinct values (first-seen order); C-level passes only."""
    keys: dict[Any, int] = dict.fromkeys(values, 0)
    for n, key in enumerate(keys):
        keys[key] = n
    codes = np.fromiter(map(keys.__getitem__, values), dtype=np.intp, count=len(values))
    return codes, list(keys)


def _dense(codes: NDArray[np.int64]) -> tuple[Rows, list[Any]]:
    """Process-wide value numbers renumbered 0..k-1 over the values present (counting, no
    sort), with the values themselves."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(_VALUES)))
    remap = np.zeros(len(_VALUES), dtype=np.intp)
    remap[present] = np.arange(len(present))
    return remap[codes], [_VALUES[c] for c in present.tolist()]


class _CandidateIndex:
    """Candidates (id order) coded into arrays, so a draw filters them without a Python loop.

    Candidates share few distinct specialty tuples, kinds and catchments: each is coded as its
    index among the distinct values, and a test over the distinct values (a few hundred) is
    spread to every row by one array look-up.
    """

    __slots__ = (
        "_flat",
        "_ids",
        "_matching",
        "candidates",
        "catch_code",
        "catch_keys",
        "kind_code",
        "kind_keys",
        "spec_code",
        "spec_keys",
    )

    def __init__(self, candidates: tuple[Candidate, ...]) -> None:
        self.candidates = candidates
        packed = np.fromiter(map(_CODE, candidates), dtype=np.int64, count=len(candidates))
        mask = (1 << _FIELD_BITS) - 1
        self.spec_code, self.spec_keys = _dense(packed >> (2 * _FIELD_BITS))
        self.catch_code, self.catch_keys = _dense((packed >> _FIELD_BITS) & mask)
        self.kind_code, self.kind_keys = _dense(packed & mask)
        self._ids: list[str] | None = None
        self._flat: tuple[dict[str, int], Rows, Rows, Rows] | None = None
        self._matching: dict[tuple[str, str | None], tuple[Rows, Rows]] = {}

    def matching(self, code: str, kind: str | None) -> tuple[Rows, Rows]:
        """Rows (ascending) whose kind fits and one of whose specialties falls under `code`,
        and their catchment codes (kept per code and kind)."""
        found = self._matching.get((code, kind))
        if found is None:
            dotted = code + "."
            spec_ok = np.fromiter(
                (any(s == code or s.startswith(dotted) for s in t) for t in self.spec_keys),
                dtype=np.bool_,
                count=len(self.spec_keys),
            )
            mask = spec_ok[self.spec_code]
            if kind is not None:
                kind_ok = np.array([k == kind for k in self.kind_keys], dtype=np.bool_)
                mask &= kind_ok[self.kind_code]
            rows = np.flatnonzero(mask)
            found = self._matching[(code, kind)] = (rows, self.catch_code[rows])
        return found

    def catch_ok(self, cities: frozenset[str]) -> Mask:
        """Per distinct catchment: does it hold one of `cities`? (Counts over a flat array of
        the catchments' city codes: no Python loop over the catchments.)"""
        if self._flat is None:
            codes: dict[str, int] = {}
            flat = [codes.setdefault(c, len(codes)) for t in self.catch_keys for c in t]
            ends = np.cumsum([len(t) for t in self.catch_keys], dtype=np.intp)
            starts = ends - np.array([len(t) for t in self.catch_keys], dtype=np.intp)
            self._flat = (codes, np.array(flat, dtype=np.intp), starts, ends)
        codes, flat_codes, starts, ends = self._flat
        hit = np.zeros(len(codes), dtype=np.int64)
        hit[[codes[c] for c in cities if c in codes]] = 1
        seen = np.concatenate(([0], np.cumsum(hit[flat_codes])))
        ok: Mask = seen[ends] > seen[starts]
        return ok

    def row_of(self, expert_id: str) -> int | None:
        if self._ids is None:
            self._ids = list(map(_EXPERT_ID, self.candidates))
        i = bisect_left(self._ids, expert_id)
        return i if i < len(self._ids) and self._ids[i] == expert_id else None


class _VenueIndex:
    """Venues (id order) and their workstations as arrays: venue and room of each station."""

    __slots__ = (
        "city",
        "city_code",
        "city_keys",
        "ids",
        "n_rooms",
        "n_venues",
        "n_ws",
        "room_venue",
        "start",
        "venues",
        "ws_room",
        "ws_venue",
    )

    def __init__(self, venues: tuple[VenueOffer, ...]) -> None:
        ws_venue: list[int] = []
        ws_room: list[int] = []
        room_venue: list[int] = []
        start = [0]
        for vi, v in enumerate(venues):
            rooms: dict[str, int] = {}
            for _, room in v.free:
                code = rooms.get(room)
                if code is None:
                    code = rooms[room] = len(room_venue)
                    room_venue.append(vi)
                ws_room.append(code)
            ws_venue.extend([vi] * len(v.free))
            start.append(len(ws_room))
        self.venues = venues
        self.ids = [v.venue_id for v in venues]
        self.city = [v.city for v in venues]
        self.city_code, self.city_keys = _codes(self.city)
        self.n_venues, self.n_ws, self.n_rooms = len(venues), len(ws_room), len(room_venue)
        self.ws_venue = np.array(ws_venue, dtype=np.intp)
        self.ws_room = np.array(ws_room, dtype=np.intp)
        self.room_venue = np.array(room_venue, dtype=np.intp)
        self.start = start

    def row_of(self, venue_id: str) -> int | None:
        i = bisect_left(self.ids, venue_id)
        return i if i < len(self.ids) and self.ids[i] == venue_id else None

    def room_code(self, vi: int, room_id: str) -> int | None:
        s = self.start[vi]
        for j, (_, room) in enumerate(self.venues[vi].free):
            if room == room_id:
                return int(self.ws_room[s + j])
        return None


def _candidate_side(inputs: DrawInputs) -> tuple[_CandidateIndex, Mask]:
    """The candidate index the draw reads and which of its rows are candidates at all."""
    if inputs.snapshot is None:
        index = _CandidateIndex(inputs.candidates)
        return index, np.ones(len(inputs.candidates), dtype=np.bool_)
    n = len(inputs.snapshot.candidates)
    barred = unpack_mask(inputs.barred, n, "barred", inputs._memo.get("barred"))
    return inputs.snapshot.candidate_index(), ~barred


def _venue_side(inputs: DrawInputs) -> tuple[_VenueIndex, Mask]:
    """The venue index the draw reads and which of its workstations are free."""
    if inputs.snapshot is None:
        index = _VenueIndex(inputs.venues)
        return index, np.ones(index.n_ws, dtype=np.bool_)
    index = inputs.snapshot._venue_index()
    raw = inputs._memo.get("unavailable")
    return index, ~unpack_mask(inputs.unavailable, index.n_ws, "unavailable", raw)


def draw(inputs: DrawInputs, seed: bytes) -> DrawResult:
    """Run the draw defined in the module docstring. Pure: same inputs and seed, same result."""
    if not inputs.seat_quotas():
        return DrawOutcome((), (), inputs.per_venue_cap)
    return _draw(inputs, DrawRandom(seed, bytes.fromhex(input_digest(inputs))))


def _draw(inputs: DrawInputs, rng: DrawRandom) -> DrawResult:
    """The draw on a given stream (tests use it to show both input forms draw alike)."""
    seat_quotas = inputs.seat_quotas()
    if not seat_quotas:
        return DrawOutcome((), (), inputs.per_venue_cap)
    project = inputs.project
    cidx, allowed = _candidate_side(inputs)
    vidx, free = _venue_side(inputs)

    excluded = np.zeros(len(cidx.candidates), dtype=np.bool_)
    for expert_id in inputs.exclude:
        row = cidx.row_of(expert_id)
        if row is not None:
            excluded[row] = True

    # Per quota: the candidates matching it (rows ascending = id order) and their catchments.
    found: dict[int, Rows] = {}
    found_catch: dict[int, Rows] = {}
    n_excluded: dict[int, int] = {}
    served_codes = np.zeros(len(cidx.catch_keys), dtype=np.bool_)
    for qi in sorted(set(seat_quotas)):
        q = project.quotas[qi]
        rows, catch = cidx.matching(_norm_code(q.specialty), q.kind)
        keep = allowed[rows]
        n_excluded[qi] = 0
        if inputs.exclude:
            hits = int(np.count_nonzero(keep))
            keep &= ~excluded[rows]
            n_excluded[qi] = hits - int(np.count_nonzero(keep))
        found[qi], found_catch[qi] = rows[keep], catch[keep]
        served_codes |= np.bincount(found_catch[qi], minlength=len(served_codes)) > 0
    served: set[str] = set().union(*(cidx.catch_keys[k] for k in np.flatnonzero(served_codes)))

    # 1. Venues.
    occ = np.zeros(vidx.n_venues, dtype=np.int64)
    room_ok = np.zeros(vidx.n_rooms, dtype=np.bool_)
    room_ok[vidx.ws_room[free]] = True
    used_rooms: dict[int, set[str]] = {}
    for venue_id, room in inputs.occupied:
        vi = vidx.row_of(venue_id)
        if vi is None:
            continue
        occ[vi] += 1
        used_rooms.setdefault(vi, set()).add(room)
        code = vidx.room_code(vi, room)
        if code is not None:
            room_ok[code] = False
    rooms = np.bincount(vidx.room_venue[room_ok], minlength=vidx.n_venues)
    city_ok = np.fromiter(
        (c in served for c in vidx.city_keys), dtype=np.bool_, count=len(vidx.city_keys)
    )
    eligible = np.flatnonzero((rooms > 0) & city_ok[vidx.city_code])
    e_occ, e_rooms = occ[eligible], rooms[eligible]

    def capacities(c: int) -> NDArray[np.int64]:
        return cast(NDArray[np.int64], np.maximum(0, np.minimum(c - e_occ, e_rooms)))

    seats_needed = len(seat_quotas)
    cap = inputs.per_venue_cap
    if len(eligible) and int(capacities(cap).sum()) < seats_needed:
        useful = int((e_occ + e_rooms).max())
        cap = max(cap, useful)
        for trial in range(inputs.per_venue_cap + 1, useful + 1):
            if int(capacities(trial).sum()) >= seats_needed:
                cap = trial
                break
    order: list[int] = eligible.tolist()
    capacity = np.zeros(vidx.n_venues, dtype=np.int64)
    capacity[eligible] = capacities(cap)
    spare: dict[int, int] = {}  # of the drawn venues
    k = 0

    def next_venue() -> int:
        """The next venue of the lazily drawn uniform order (partial Fisher-Yates)."""
        nonlocal k
        j = k + rng.randbelow(len(order) - k)
        order[k], order[j] = order[j], order[k]
        k += 1
        spare[order[k - 1]] = int(capacity[order[k - 1]])
        return order[k - 1]

    drawn: list[int] = []
    total = 0
    while k < len(order) and total < seats_needed:
        drawn.append(next_venue())
        total += spare[drawn[-1]]

    # 2. Experts. Open venues are drawn ones, so only candidates whose catchment meets a drawn
    # venue's city can ever be a seat's candidates: each quota's rows are narrowed to those
    # (a few thousand at national scale) once, and again whenever a reserve is drawn.
    def narrowed() -> dict[int, tuple[Rows, Rows]]:
        near = cidx.catch_ok(frozenset(vidx.city[v] for v in drawn))
        return {
            qi: (rows[keep], found_catch[qi][keep])
            for qi, rows in found.items()
            for keep in (near[found_catch[qi]],)
        }

    near = narrowed()
    taken: list[int] = []
    picks: list[tuple[int, int, int]] = []  # (candidate row, quota index, venue)
    ok_by_cities: dict[frozenset[str], Mask] = {}
    for seat_no, qi in enumerate(seat_quotas):
        while True:
            rows, catch = near[qi]
            open_cities = frozenset(vidx.city[v] for v in drawn if spare[v] > 0)
            ok = ok_by_cities.get(open_cities)
            if ok is None:
                ok = ok_by_cities[open_cities] = cidx.catch_ok(open_cities)
            pool = ok[catch]
            if taken and len(rows):
                pool[_positions(rows, taken)] = False
            count = int(np.count_nonzero(pool))
            if count or k >= len(order):
                break
            drawn.append(next_venue())
            near = narrowed()
        if not count:
            eligible_cities = frozenset(vidx.city[v] for v in eligible.tolist())
            offered = np.bincount(vidx.ws_venue[free], minlength=vidx.n_venues)
            return _failure(
                inputs,
                cidx,
                seat_quotas,
                seat_no,
                found[qi],
                n_excluded[qi],
                taken,
                eligible_cities,
                int(np.count_nonzero(offered)),
                len(eligible),
                len(drawn),
                cap,
            )
        i = int(rows[np.flatnonzero(pool)[rng.randbelow(count)]])
        catchment = cidx.candidates[i].catchment_cities
        options = [v for v in drawn if spare[v] > 0 and vidx.city[v] in catchment]
        venue = options[rng.randbelow(len(options))]
        spare[venue] -= 1
        taken.append(i)
        picks.append((i, qi, venue))

    # 3. Workstations.
    seats: list[Seat] = []
    for i, qi, vi in picks:
        offer = vidx.venues[vi]
        used = used_rooms.setdefault(vi, set())
        is_free = free[vidx.start[vi] : vidx.start[vi + 1]].tolist()
        stations = [
            f for f, ok_ws in zip(offer.free, is_free, strict=True) if ok_ws and f[1] not in used
        ]
        ws, room = stations[rng.randbelow(len(stations))]
        used.add(room)
        seats.append(
            Seat(cidx.candidates[i].expert_id, qi, offer.venue_id, offer.site_id, ws, room)
        )
    return DrawOutcome(tuple(vidx.ids[v] for v in drawn), tuple(seats), cap)


def _positions(rows: Rows, taken: list[int]) -> Rows:
    """Positions in `rows` (ascending) of the taken rows that are in it."""
    wanted = np.asarray(taken, dtype=np.intp)
    pos = np.searchsorted(rows, wanted)
    inside = pos < len(rows)
    pos, wanted = pos[inside], wanted[inside]
    return cast(Rows, pos[rows[pos] == wanted])


def _failure(
    inputs: DrawInputs,
    cidx: _CandidateIndex,
    seat_quotas: tuple[int, ...],
    seat_no: int,
    matching: Rows,
    n_excluded: int,
    taken: list[int],
    eligible_cities: frozenset[str],
    venues_offered: int,
    venues_eligible: int,
    venues_drawn: int,
    cap: int,
) -> DrawFailure:
    qi = seat_quotas[seat_no]
    left = np.ones(len(matching), dtype=np.bool_)
    if taken:
        left[_positions(matching, taken)] = False
    left_rows = matching[left]
    reach = cidx.catch_ok(eligible_cities)
    no_venue = int(np.count_nonzero(~reach[cidx.catch_code[left_rows]]))
    return DrawFailure(
        quota_index=qi,
        quota=inputs.project.quotas[qi],
        needed=sum(1 for q in seat_quotas[seat_no:] if q == qi),
        available=len(left_rows),
        reasons={
            "matching": len(matching) + n_excluded,
            "excluded": n_excluded,
            "drawn_now": len(matching) - len(left_rows),
            "no_venue_in_catchment": no_venue,
            "catchment_venues_full": len(left_rows) - no_venue,
            "venues_offered": venues_offered,
            "venues_eligible": venues_eligible,
            "venues_drawn": venues_drawn,
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
    snapshot: DrawSnapshot | None = None,
    barred: Mask | None = None,
    unavailable: Mask | None = None,
) -> DrawInputs:
    """Inputs for redrawing the seats of `drop` under the same rules.

    `previous`: the inputs of the last draw in the chain (for the project, cap and exclusions);
    `committee`: the committee as it stands (all current seats, the dropped ones included);
    `venues` and `candidates`: a fresh screening at the time of the redraw; `parent`: the
    `record_digest` of the previous draw's archive, so the chain is tamper-evident.
    Everyone ever drawn for the project is excluded; members who stay keep their venue (counted
    toward the per-venue cap) and their room (not shared). With `snapshot` (and the `barred`
    and `unavailable` arrays over it) the inputs are referenced; `venues` and `candidates` are
    then empty.
    """
    members = {s.expert_id for s in committee}
    unknown = sorted(set(drop) - members)
    if unknown:
        raise ValueError(f"cannot drop experts not on the committee: {unknown}")
    seats = tuple(s.quota_index for s in committee if s.expert_id in drop)
    occupied = tuple(sorted((s.venue_id, s.room_id) for s in committee if s.expert_id not in drop))
    if snapshot is not None:
        if barred is None or unavailable is None:
            raise ValueError("a snapshot needs the barred and unavailable arrays")
        return DrawInputs.referenced(
            project=previous.project,
            rules_version=rules_version or previous.rules_version,
            snapshot=snapshot,
            barred=barred,
            unavailable=unavailable,
            per_venue_cap=previous.per_venue_cap,
            exclude=previous.exclude | members,
            parent=parent,
            seats=seats,
            occupied=occupied,
        )
    return DrawInputs(
        project=previous.project,
        rules_version=rules_version or previous.rules_version,
        venues=venues,
        candidates=candidates,
        per_venue_cap=previous.per_venue_cap,
        exclude=previous.exclude | members,
        parent=parent,
        seats=seats,
        occupied=occupied,
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
    commitment: Commitment,
    inputs: DrawInputs,
    result: DrawResult,
    seed: bytes | None = None,
    *,
    embed_snapshot: bool = True,
) -> dict[str, Any]:
    """A plain-JSON record of a draw; the seed is added when it is revealed.

    Self-contained: referenced inputs get their snapshot under "snapshot", unless
    `embed_snapshot` is False (a store keeping each day's snapshot once, by digest, beside the
    archives; `verify_replay` then takes it as an argument).
    """
    archive: dict[str, Any] = {
        "format": ARCHIVE_FORMAT,
        "commitment": commitment_to_json(commitment),
        "inputs": inputs_to_json(inputs),
        "result": outcome_to_json(result),
        "seed": None if seed is None else seed.hex(),
    }
    if inputs.snapshot is not None and embed_snapshot:
        archive["snapshot"] = snapshot_to_json(inputs.snapshot)
    return archive


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


def verify_replay(
    archive: dict[str, Any], snapshots: Mapping[str, DrawSnapshot] | None = None
) -> list[str]:
    """Check an archive end to end; returns the differences found (empty when it verifies).

    Checks: SHA-256(seed) equals the committed seed hash; the archived inputs digest to the
    committed input digest (for referenced inputs: the snapshot, embedded in the archive or
    given in `snapshots` by digest, digests to the digest the inputs name); the draw id, rules
    version and parent agree with the commitment; and replaying the draw from the archived
    inputs and seed gives the archived result field by field.
    """
    problems: list[str] = []
    if archive.get("format") != ARCHIVE_FORMAT:
        return [f"format: expected {ARCHIVE_FORMAT!r}, got {archive.get('format')!r}"]
    known = dict(snapshots or {})
    try:
        if archive.get("snapshot") is not None:
            embedded = snapshot_from_json(archive["snapshot"])
            named = archive["inputs"].get("snapshot")
            if named != embedded.digest():
                return [
                    f"snapshot: the embedded snapshot digests to {embedded.digest()}, "
                    f"the inputs name {named}"
                ]
            known[embedded.digest()] = embedded
        commitment = commitment_from_json(archive["commitment"])
        inputs = inputs_from_json(archive["inputs"], known)
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
