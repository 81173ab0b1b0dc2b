"""What a draw depends on: the venues offered and the candidates, explicit or referenced.

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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import islice
from json.encoder import encode_basestring_ascii
from operator import attrgetter, lt
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from coordinator.domain.draw.index import CandidateIndex, Mask, VenueIndex, value_code
from coordinator.domain.model import ExpertKind, Project

SNAPSHOT_FORMAT = "evalgrid-draw-snapshot-v1"

_T = TypeVar("_T")

_EXPERT_ID = attrgetter("expert_id")

# What a referenced DrawInputs keeps in memory only (not pickled): the boolean masks it was
# built from (candidates allowed, workstations free), 330 KB at national size, the bitmaps'
# checked bytes (38 KB) and its canonical JSON, which the texts hold again.
_LOCAL = frozenset({"allowed", "free", "barred", "unavailable", "canonical"})
_CANONICAL_ROW = attrgetter("canonical")


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
            value_code(self.specialties) << 42
            | value_code(self.catchment_cities) << 21
            | value_code(self.kind)
        )
        object.__setattr__(self, "code", code)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt, not restored: `code` refers to this process's _VALUE_CODES.
        return (Candidate, (self.expert_id, self.kind, self.specialties, self.catchment_cities))


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

    def candidate_index(self) -> CandidateIndex:
        found = self._memo.get("candidate_index")
        if found is None:
            found = self._memo["candidate_index"] = CandidateIndex(self.candidates)
        return cast(CandidateIndex, found)

    def _venue_index(self) -> VenueIndex:
        found = self._memo.get("venue_index")
        if found is None:
            found = self._memo["venue_index"] = VenueIndex(self.venues)
        return cast(VenueIndex, found)


def _bitmap_of(mask: Mask) -> bytes:
    return np.packbits(mask, bitorder="big").tobytes()


def pack_mask(mask: Mask) -> str:
    """A boolean array as the bitmap text of the module docstring."""
    return base64.b64encode(_bitmap_of(mask)).decode("ascii")


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


_ROW_BYTES = 5  # LEB128 bytes of one gap at most (2^35 rows: no snapshot comes near)


def pack_rows(rows: Sequence[int] | np.ndarray) -> str:
    """Ascending distinct rows of a snapshot as row-list text: the base64 (standard, padded) of
    each gap (row minus the previous row minus one; the first: the row itself) in unsigned
    LEB128, shortest form. A few thousand experts barred out of 300,000 cost a few kilobytes
    this way, not a 37 KB bitmap nor 60 KB of ids; built in numpy, no Python loop per row."""
    r = np.asarray(rows, dtype=np.int64)
    if not r.size:
        return ""
    gaps = np.empty_like(r)  # np.diff(prepend=) cost six times this (30 us for 1,800 rows)
    gaps[0] = r[0]
    np.subtract(r[1:], r[:-1], out=gaps[1:])
    gaps[1:] -= 1
    if int(gaps.min()) < 0:
        raise ValueError("rows must be ascending, distinct and not negative")
    if int(gaps.max()) >= 1 << (7 * _ROW_BYTES):
        raise ValueError(f"a row gap needs more than {_ROW_BYTES} bytes")
    return base64.b64encode(_leb128(gaps).tobytes()).decode("ascii")


_LOOP_BELOW = 256  # values `_leb128` encodes one by one (a dozen numpy calls cost ~100 us)


def _leb128(values: NDArray[np.int64]) -> NDArray[np.uint8]:
    """Each value (not negative) in unsigned LEB128, shortest form, one after the other. Each
    value's first byte, then the rest of the few values over 127 (the same encoding, of the
    value shifted by 7) put in after it: a barred row list is mostly one byte a row. Short
    lists (a cool-off rule's few rows, the rest of the values over 127) value by value."""
    if len(values) < _LOOP_BELOW:
        encoded = bytearray()
        for value in values.tolist():
            while value > 0x7F:
                encoded.append(value & 0x7F | 0x80)
                value >>= 7
            encoded.append(value)
        return np.frombuffer(bytes(encoded), dtype=np.uint8)
    first = (values & 0x7F).astype(np.uint8)
    big = np.flatnonzero(values >= 0x80)
    if not big.size:
        return first
    first[big] |= 0x80
    rest = _leb128(values[big] >> 7)
    ends = np.flatnonzero(rest < 0x80)  # the last byte of each big value's rest
    width = np.empty_like(ends)
    width[0] = ends[0] + 1
    np.subtract(ends[1:], ends[:-1], out=width[1:])
    # A first byte moves right by the rest bytes of the big values before it.
    moved = np.zeros(len(first) + 1, dtype=np.int64)
    moved[big + 1] = width
    at = np.arange(len(first)) + np.cumsum(moved[:-1])
    out = np.empty(len(first) + len(rest), dtype=np.uint8)
    placed = np.zeros(len(out), dtype=np.bool_)
    out[at] = first
    placed[at] = True
    out[~placed] = rest
    return out


def unpack_rows(text: str, n: int, what: str) -> NDArray[np.intp]:
    """The rows of row-list text over n rows (see `pack_rows`); ValueError naming `what` if it
    is not one: not base64, cut inside a number, a number not in its shortest form, or a row
    past the snapshot's end."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise ValueError(f"{what}: not base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"{what}: not in canonical base64")
    data = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    if not data.size:
        return np.zeros(0, dtype=np.intp)
    if data[-1] & 0x80:
        raise ValueError(f"{what}: ends inside a number")
    ends = np.flatnonzero((data & 0x80) == 0)
    starts = np.concatenate(([0], ends[:-1] + 1))
    width = ends - starts + 1
    if int(width.max()) > _ROW_BYTES:
        raise ValueError(f"{what}: a number longer than {_ROW_BYTES} bytes")
    if bool(np.any((width > 1) & (data[ends] == 0))):
        raise ValueError(f"{what}: a number not in its shortest form")
    gaps = np.zeros(ends.size, dtype=np.int64)
    for b in range(_ROW_BYTES):
        on = width > b
        gaps[on] |= (data[starts[on] + b] & 0x7F) << (7 * b)
    rows = np.cumsum(gaps + 1) - 1
    if int(rows[-1]) >= n:
        raise ValueError(f"{what}: row {int(rows[-1])} past the {n} rows of the snapshot")
    return rows.astype(np.intp)


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
    # (barred, its bytes, unavailable, its bytes) when the texts were just encoded from those
    # bytes (`referenced`): then they are not decoded and checked again. Used only while the
    # fields are those very strings (`replace(inputs, barred=...)` gets them checked).
    _packed: tuple[str, bytes, str, bytes] | None = field(default=None, repr=False,
                                                          compare=False)
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
            known = self._packed
            if known is not None and known[0] is self.barred and known[2] is self.unavailable:
                self._memo["barred"], self._memo["unavailable"] = known[1], known[3]
            else:
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
        packed = (_bitmap_of(barred), _bitmap_of(unavailable))
        texts = [base64.b64encode(b).decode("ascii") for b in packed]
        inputs = cls(
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
            barred=texts[0],
            unavailable=texts[1],
            _packed=(texts[0], packed[0], texts[1], packed[1]),
        )
        # The draw reads the masks, not the bitmaps: kept, not unpacked again (see _LOCAL);
        # the counts of the commitment record are read off them here.
        memo = inputs._memo
        memo["allowed"], memo["free"] = ~barred, ~unavailable
        memo["candidate_count"] = int(np.count_nonzero(memo["allowed"]))
        inputs.venue_count()
        return inputs

    def __getstate__(self) -> list[Any]:
        """Pickled (a day plan's draws cross a pipe, coordinator/plan_drawing.py) without
        what `_LOCAL` names nor the bitmaps' bytes: the texts hold the same (decoded and
        checked again where needed)."""
        def kept(name: str, value: Any) -> Any:
            if name == "_memo":
                return {k: v for k, v in value.items() if k not in _LOCAL}
            return None if name == "_packed" else value

        return [kept(f.name, getattr(self, f.name)) for f in fields(self)]

    def __setstate__(self, state: list[Any]) -> None:
        for f, value in zip(fields(self), state, strict=True):
            object.__setattr__(self, f.name, value)

    def memo(self, key: str, make: Callable[[], _T]) -> _T:
        """`make()`, computed once per (frozen) inputs and kept under `key`."""
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = make()
        return cast(_T, found)

    def seat_quotas(self) -> tuple[int, ...]:
        """The quota index of each seat to fill, in draw order."""
        if self.seats is not None:
            return self.seats
        return tuple(i for i, q in enumerate(self.project.quotas) for _ in range(q.count))

    def candidate_count(self) -> int:
        """How many candidates the draw sees (after resolving a snapshot)."""
        snapshot = self.snapshot
        if snapshot is None:
            return len(self.candidates)
        return self.memo("candidate_count", lambda: len(snapshot.candidates)
                         - int.from_bytes(self._bitmap("barred")).bit_count())

    def _bitmap(self, name: str) -> bytes:
        """The checked bytes of bitmap `name` ("barred" or "unavailable")."""
        assert self.snapshot is not None
        n = (len(self.snapshot.candidates) if name == "barred"
             else self.snapshot.workstation_count())
        return self.memo(name, lambda: _bitmap_bytes(getattr(self, name), n, name))

    def venue_count(self) -> int:
        """How many venue offers the draw sees (after resolving a snapshot)."""
        if self.snapshot is None:
            return len(self.venues)
        return self.memo("venue_count", lambda: int(np.count_nonzero(_offered(self))))

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
    vidx, free = venue_side(inputs)
    return vidx.offering(free)


def _strictly_increasing(items: list[str]) -> bool:
    """Sorted without duplicates; compared in C (map over two views) for 50,000 ids."""
    return all(map(lt, items, islice(items, 1, None)))


def candidate_side(inputs: DrawInputs) -> tuple[CandidateIndex, Mask]:
    """The candidate index the draw reads and which of its rows are candidates at all."""
    if inputs.snapshot is None:
        index = CandidateIndex(inputs.candidates)
        return index, np.ones(len(inputs.candidates), dtype=np.bool_)
    allowed = inputs._memo.get("allowed")
    if allowed is None:
        n = len(inputs.snapshot.candidates)
        allowed = ~unpack_mask(inputs.barred, n, "barred", inputs._bitmap("barred"))
    return inputs.snapshot.candidate_index(), allowed


def venue_side(inputs: DrawInputs) -> tuple[VenueIndex, Mask]:
    """The venue index the draw reads and which of its workstations are free."""
    if inputs.snapshot is None:
        index = VenueIndex(inputs.venues)
        return index, np.ones(index.n_ws, dtype=np.bool_)
    index = inputs.snapshot._venue_index()
    free = inputs._memo.get("free")
    if free is None:
        raw = inputs._bitmap("unavailable")
        free = ~unpack_mask(inputs.unavailable, index.n_ws, "unavailable", raw)
    return index, free
