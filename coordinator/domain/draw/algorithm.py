"""The draw itself: a pure function of the inputs and the seed.

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
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import NDArray

from coordinator.domain.draw.canonical import input_digest
from coordinator.domain.draw.index import CandidateIndex, CatchGroups, Mask, Rows
from coordinator.domain.draw.inputs import DrawInputs, candidate_side, venue_side
from coordinator.domain.draw.outcome import DrawFailure, DrawOutcome, DrawResult, Seat
from coordinator.domain.randomness import DrawRandom


def _norm_code(code: str) -> str:
    return ".".join(p for p in code.strip().split(".") if p)


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
    cidx, allowed = candidate_side(inputs)
    vidx, free = venue_side(inputs)

    excluded = np.zeros(len(cidx.candidates) if inputs.exclude else 0, dtype=np.bool_)
    for expert_id in inputs.exclude:
        row = cidx.row_of(expert_id)
        if row is not None:
            excluded[row] = True

    # Per quota: the candidates matching it, grouped by catchment, and which of them may sit.
    found: dict[int, tuple[CatchGroups, Mask]] = {}
    n_excluded: dict[int, int] = {}
    served_codes = np.zeros(len(cidx.catch_keys), dtype=np.bool_)
    for qi in sorted(set(seat_quotas)):
        q = project.quotas[qi]
        groups = cidx.grouped(_norm_code(q.specialty), q.kind)
        keep = allowed[groups.rows]
        n_excluded[qi] = 0
        if inputs.exclude:
            hits = int(np.count_nonzero(keep))
            keep &= ~excluded[groups.rows]
            n_excluded[qi] = hits - int(np.count_nonzero(keep))
        found[qi] = (groups, keep)
        served_codes[groups.served(keep)] = True

    # 1. Venues.
    occ = np.zeros(vidx.n_venues, dtype=np.int64)
    room_ok = vidx.rooms_open(free)
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
    city_ok = cidx.cities_served(served_codes, vidx.city_keys)
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
    # E, Fisher-Yates'd lazily: `moved` holds the positions a swap changed (E is thousands of
    # venues at national scale, a draw takes a few), the rest still hold their own venue.
    moved: dict[int, int] = {}
    spare: dict[int, int] = {}  # of the drawn venues
    k = 0
    n_order = len(eligible)

    def next_venue() -> int:
        """The next venue of the lazily drawn uniform order (partial Fisher-Yates)."""
        nonlocal k
        j = k + rng.randbelow(n_order - k)
        at_k, at_j = moved.get(k, k), moved.get(j, j)
        moved[k], moved[j] = at_j, at_k
        k += 1
        venue = int(eligible[at_j])
        spare[venue] = max(0, min(cap - int(occ[venue]), int(rooms[venue])))
        return venue

    drawn: list[int] = []
    total = 0
    while k < n_order and total < seats_needed:
        drawn.append(next_venue())
        total += spare[drawn[-1]]

    # 2. Experts. Open venues are drawn ones, so only candidates whose catchment meets a drawn
    # venue's city can ever be a seat's candidates: each quota's rows are narrowed to those
    # (a few thousand at national scale) once, and again whenever a reserve is drawn.
    def narrowed() -> dict[int, tuple[Rows, Rows]]:
        near = cidx.catch_ok(frozenset(vidx.city[v] for v in drawn))
        return {qi: groups.within(keep, near) for qi, (groups, keep) in found.items()}

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
            if count or k >= n_order:
                break
            drawn.append(next_venue())
            near = narrowed()
        if not count:
            eligible_cities = frozenset(vidx.city[v] for v in eligible.tolist())
            offered = vidx.offering(free)
            return _failure(
                inputs,
                cidx,
                seat_quotas,
                seat_no,
                np.sort(found[qi][0].rows[found[qi][1]]),  # the quota's candidates
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
    cidx: CandidateIndex,
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
