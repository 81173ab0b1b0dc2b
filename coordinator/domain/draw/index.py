"""The pool coded into arrays, so a draw filters 300,000 candidates without a Python loop.

A draw never loops in Python over its candidates: they are coded once into arrays (kind,
distinct specialty tuple, distinct catchment tuple) and each seat is a few vectorised operations
over the rows matching its quota. For referenced inputs the arrays belong to the snapshot and
are built once per day; explicit inputs build them per draw, with C-level passes only.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from coordinator.domain.draw.inputs import Candidate, VenueOffer

Mask = NDArray[np.bool_]
Rows = NDArray[np.intp]

_EXPERT_ID = attrgetter("expert_id")
_CODE = attrgetter("code")


# Every distinct kind, specialty tuple and catchment tuple seen in this process gets a small
# number once; a candidate keeps its three numbers packed in `code`, so a draw codes 85,000
# candidates with one array conversion instead of hashing their tuples. Draws depend only on
# which values are equal, never on the numbers (they differ between processes).
_VALUE_CODES: dict[Any, int] = {}
_VALUES: list[Any] = []
_VALUE_LOCK = threading.Lock()
_FIELD_BITS = 21


def value_code(value: Any) -> int:
    """This process's number for a kind, specialty tuple or catchment tuple."""
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


class CandidateIndex:
    """Candidates (id order) coded into arrays, so a draw filters them without a Python loop.

    Candidates share few distinct specialty tuples, kinds and catchments: each is coded as its
    index among the distinct values, and a test over the distinct values (a few hundred) is
    spread to every row by one array look-up.
    """

    __slots__ = (
        "_by_code",
        "_city_codes",
        "_city_ok",
        "_flat",
        "_grouped",
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
        self._flat: tuple[dict[str, int], Rows, Rows] | None = None
        self._city_ok: dict[int, Mask] = {}
        self._city_codes: dict[tuple[str, ...], Rows] = {}
        self._by_code: dict[str, list[int]] | None = None
        self._matching: dict[tuple[str, str | None], tuple[Rows, Rows]] = {}
        self._grouped: dict[tuple[str, str | None], CatchGroups] = {}

    def matching(self, code: str, kind: str | None) -> tuple[Rows, Rows]:
        """Rows (ascending) whose kind fits and one of whose specialties falls under `code`,
        and their catchment codes (kept per code and kind)."""
        found = self._matching.get((code, kind))
        if found is None:
            spec_ok = np.zeros(len(self.spec_keys), dtype=np.bool_)
            spec_ok[self._under().get(code, [])] = True
            mask = spec_ok[self.spec_code]
            if kind is not None:
                kind_ok = np.array([k == kind for k in self.kind_keys], dtype=np.bool_)
                mask &= kind_ok[self.kind_code]
            rows = np.flatnonzero(mask)
            found = self._matching[(code, kind)] = (rows, self.catch_code[rows])
        return found

    def grouped(self, code: str, kind: str | None) -> CatchGroups:
        """`matching` grouped by catchment (kept per code and kind)."""
        found = self._grouped.get((code, kind))
        if found is None:
            found = self._grouped[(code, kind)] = CatchGroups(*self.matching(code, kind),
                                                              len(self.catch_keys))
        return found

    def _under(self) -> dict[str, list[int]]:
        """Code -> the distinct specialty tuples with a specialty under it: the code itself
        or a prefix of it ending before a dot ("W.01" covers "W.01.03", not "W.011"). Built
        once, so a day's thousands of quota codes cost a look-up each, not a scan."""
        if self._by_code is None:
            by_code: dict[str, list[int]] = defaultdict(list)
            for i, specialties in enumerate(self.spec_keys):
                codes = set()
                for s in specialties:
                    codes.add(s)
                    codes.update(s[:p] for p, ch in enumerate(s) if ch == ".")
                for c in codes:
                    by_code[c].append(i)
            self._by_code = dict(by_code)
        return self._by_code

    def _catch_cities(self) -> tuple[dict[str, int], Rows, Rows]:
        """The catchments' cities coded: city -> code, and per flat entry (each catchment's
        cities one after the other) its city code and its catchment."""
        if self._flat is None:
            codes: dict[str, int] = {}
            flat = [codes.setdefault(c, len(codes)) for t in self.catch_keys for c in t]
            sizes = np.array([len(t) for t in self.catch_keys], dtype=np.intp)
            owner = np.repeat(np.arange(len(self.catch_keys), dtype=np.intp), sizes)
            self._flat = (codes, np.array(flat, dtype=np.intp), owner)
        return self._flat

    def catch_ok(self, cities: frozenset[str]) -> Mask:
        """Per distinct catchment: does it hold one of `cities`? (One mask per city, kept:
        a draw asks for the cities of the venues it drew, a day for a few hundred cities.)"""
        codes, flat, owner = self._catch_cities()
        ok = np.zeros(len(self.catch_keys), dtype=np.bool_)
        for city in cities:
            code = codes.get(city)
            if code is None:
                continue
            found = self._city_ok.get(code)
            if found is None:  # filled, then kept: other threads read the kept ones
                found = np.zeros(len(self.catch_keys), dtype=np.bool_)
                found[owner[flat == code]] = True
                self._city_ok[code] = found
            ok |= found
        return ok

    def cities_served(self, catchments: Mask, cities: list[str]) -> Mask:
        """Per city of `cities`: does one of the marked catchments hold it?"""
        codes, flat, owner = self._catch_cities()
        hit = np.zeros(len(codes) + 1, dtype=np.bool_)  # the last: a city no catchment holds
        hit[flat[catchments[owner]]] = True
        key = tuple(cities)
        where = self._city_codes.get(key)
        if where is None:
            where = self._city_codes[key] = np.array(
                [codes.get(c, len(codes)) for c in cities], dtype=np.intp)
        served: Mask = hit[where]
        return served

    def row_of(self, expert_id: str) -> int | None:
        if self._ids is None:
            self._ids = list(map(_EXPERT_ID, self.candidates))
        i = bisect_left(self._ids, expert_id)
        return i if i < len(self._ids) and self._ids[i] == expert_id else None


class CatchGroups:
    """A quota's matching rows grouped by catchment (rows ascending within a group).

    A draw asks two things of a quota's candidates, tens of thousands at national size: which
    catchments still hold one (the cities a venue may be drawn in) and which candidates live
    in the catchments of the venues drawn (a few hundred). Grouped once per quota, the first
    is one gather and one reduction, the second a few slices, where filtering and compacting
    the whole matching set per draw cost more than the rest of the draw.
    """

    __slots__ = ("catch", "codes", "ends", "rows", "starts")

    def __init__(self, rows: Rows, catch: Rows, n_codes: int) -> None:
        # A stable sort of small integers is a radix sort: a tenth of a comparison sort's time
        # (a single draw may group a quota the day has not seen yet).
        key = catch.astype(np.uint16) if n_codes <= 1 << 16 else catch
        order = np.argsort(key, kind="stable")
        self.rows: Rows = rows[order]
        self.catch: Rows = catch[order]
        self.starts: Rows = np.zeros(0, dtype=np.intp)
        self.ends: Rows = self.starts
        if len(order):
            edge = np.flatnonzero(self.catch[1:] != self.catch[:-1]) + 1
            self.starts = np.concatenate(([0], edge)).astype(np.intp)
            self.ends = np.concatenate((edge, [len(order)])).astype(np.intp)
        self.codes: Rows = self.catch[self.starts]

    def served(self, keep: Mask) -> Rows:
        """The catchment codes with a row kept (`keep`: per row of this grouping)."""
        if not len(keep):
            return self.codes
        return self.codes[np.logical_or.reduceat(keep, self.starts)]

    def within(self, keep: Mask, catchments: Mask) -> tuple[Rows, Rows]:
        """The kept rows (ascending) whose catchment is marked, and their catchment codes."""
        groups = np.flatnonzero(catchments[self.codes]).tolist()
        if not groups:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        at = np.concatenate([np.arange(self.starts[g], self.ends[g]) for g in groups])
        at = at[keep[at]]
        rows = self.rows[at]
        order = np.argsort(rows, kind="stable")
        return rows[order], self.catch[at][order]


class VenueIndex:
    """Venues (id order) and their workstations as arrays: venue and room of each station."""

    __slots__ = (
        "_by_room",
        "_filled",
        "_opening",
        "_room_opening",
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
        # The venues with a station, and where their stations start (for `offering`).
        self._filled = np.flatnonzero(np.diff(start) > 0)
        self._opening = np.array(start[:-1], dtype=np.intp)[self._filled]
        # The stations room by room (for `rooms_open`); None where they already are.
        order = np.argsort(self.ws_room, kind="stable")
        self._by_room = None if bool((order == np.arange(self.n_ws)).all()) else order
        self._room_opening = np.searchsorted(self.ws_room[order], np.arange(self.n_rooms))

    def offering(self, free: Mask) -> Mask:
        """Per venue: is one of its workstations free? (A venue's stations are contiguous:
        one reduction per venue, no gather of the free ones.)"""
        out = np.zeros(self.n_venues, dtype=np.bool_)
        if len(self._opening):
            out[self._filled] = np.logical_or.reduceat(free, self._opening)
        return out

    def rooms_open(self, free: Mask) -> Mask:
        """Per room: is one of its workstations free? (One reduction per room.)"""
        if not self.n_rooms:
            return np.zeros(0, dtype=np.bool_)
        by_room = free if self._by_room is None else free[self._by_room]
        out: Mask = np.logical_or.reduceat(by_room, self._room_opening)
        return out

    def row_of(self, venue_id: str) -> int | None:
        i = bisect_left(self.ids, venue_id)
        return i if i < len(self.ids) and self.ids[i] == venue_id else None

    def room_code(self, vi: int, room_id: str) -> int | None:
        s = self.start[vi]
        for j, (_, room) in enumerate(self.venues[vi].free):
            if room == room_id:
                return int(self.ws_room[s + j])
        return None
