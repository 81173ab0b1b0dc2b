"""Screening a project: who in the pool may sit, and why the others may not.

Party-based rules (employers, interests, relatives, department, declared conflicts) come from the
`ConflictIndex`; this module adds the per-expert rules: status, penalties, age, city, cool-off,
overlapping sessions and the half-day workload cap.

One path. `PoolIndex.build` is O(pool x specialty depth) once per pool version; the pool-level
rules (status, penalties, age) are evaluated once per day (`PoolIndex.day_reasons`) and applied
by the day's `DrawSnapshot`. `DayScreen` is the only screening the coordinator does: each
per-project rule is one boolean mask over the snapshot with a reason code (`rule_masks`; "why
was this expert barred" is "which masks hit", `explain`; the sitting rules yield the rows they
bar, set in place by `barred`), the workstations not offered another
mask, both turned into referenced draw inputs. Per project it costs a few vectorised operations
over the pool plus the conflict-index look-ups, whatever the number of relevant experts, and it
keeps the day's bookings incrementally. The independent checker (violations.py) re-derives
every rule without any of this code.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from coordinator.domain.conflicts import ConflictIndex, Reason, years_before
from coordinator.domain.draw.index import Mask, Rows
from coordinator.domain.draw.inputs import (
    Candidate,
    DrawInputs,
    DrawSnapshot,
    VenueOffer,
    pack_rows,
)
from coordinator.domain.model import (
    Company,
    ConductBar,
    Expert,
    ExpertKind,
    ExpertStatus,
    Parties,
    Project,
    Quota,
    Site,
    Sitting,
    Window,
)
from coordinator.domain.rules import Rules

HALF_DAY_SECONDS = 12 * 3600

_Rule = TypeVar("_Rule", bound=Callable[..., Rows])
# The sitting rules, by reason code, in the order they are listed: every screen applies them
# (`DayScreen.state_rows`), every draw archive declares what they barred (`declared_bars`), and
# the registry snapshot's verifier reads those declarations (registry_snapshot.DECLARED_CODES).
SITTING_RULES: Final[dict[str, Callable[..., Rows]]] = {}


def _registrar(registry: dict[str, Callable[..., Rows]], what: str, code: str
               ) -> Callable[[_Rule], _Rule]:
    """A decorator putting a method into `registry` under `code`, once."""
    def register(method: _Rule) -> _Rule:
        if code in registry:
            raise ValueError(f"{what} {code!r}: registered twice")
        registry[code] = method
        return method
    return register


def sitting_rule(code: str) -> Callable[[_Rule], _Rule]:
    """Register a `DayScreen` method `(self, project) -> rows` as the sitting rule `code`: the
    snapshot rows it bars, in any order, repeats allowed. Rows, not a mask: a rule bars a few
    thousand of 300,000, and a mask costs a pass over the pool to read back."""
    return _registrar(SITTING_RULES, "sitting rule", code)


# Where a sitting rule's declared rows (its rows among the project's quotas, ascending and
# distinct: `DayScreen.declared_bars`) are kept up to date instead of read back from its rows,
# the method that gives them, by reason code.
DECLARED_READERS: Final[dict[str, Callable[..., Rows]]] = {}


def declared_reader(code: str) -> Callable[[_Rule], _Rule]:
    """Register a `DayScreen` method `(self, project) -> rows` as the declared rows of the
    sitting rule `code` (the same rows `_ascending` reads back from the rule's, faster)."""
    return _registrar(DECLARED_READERS, "declared reader", code)


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
    return _half_day_range(window.start_ts, window.end_ts, offset_minutes)


def _half_day_range(start: int, end: int, offset_minutes: int) -> range:
    offset = offset_minutes * 60
    first = (start + offset) // HALF_DAY_SECONDS
    last = (max(end - 1, start) + offset) // HALF_DAY_SECONDS
    return range(first, last + 1)


def host_city_of(project: Project, sites: Iterable[Site]) -> str:
    """The city of the project's host site (where it is opened)."""
    for site in sites:
        if site.id == project.host_site_id:
            return site.city
    raise KeyError(f"project {project.id}: unknown host site {project.host_site_id!r}")


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
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Conduct bars (expert -> bars) are pool-level like status and penalties, but change
    # between imports: `set_conduct_bars` replaces them and forgets the day's rules.
    conduct_bars: dict[str, tuple[ConductBar, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def set_conduct_bars(self, bars: Iterable[ConductBar]) -> None:
        by_expert: dict[str, list[ConductBar]] = defaultdict(list)
        for bar in bars:
            if bar.expert_id in self.experts:
                by_expert[bar.expert_id].append(bar)
        self.conduct_bars.clear()
        self.conduct_bars.update({e: tuple(bs) for e, bs in by_expert.items()})
        for old in [k for k in self._memo if k[0] == "day"]:
            del self._memo[old]

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
        """Experts whose specialty falls under the quota's code and whose kind fits (kept per
        code and kind: a national quota intersects sets of 60,000)."""
        code = normalise_specialty(quota.specialty)
        if quota.kind is None:
            return self.by_prefix.get(code, frozenset())
        key = ("matching", code, quota.kind)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self.by_prefix.get(code, frozenset()) & self.by_kind.get(
                quota.kind, frozenset()
            )
        return cast(frozenset[str], found)

    def candidate(self, expert_id: str) -> Candidate:
        return self.candidates[expert_id]

    def day_reasons(self, rules: Rules, today: date) -> Mapping[str, tuple[Reason, ...]]:
        """The pool-level rules (status, penalties, age) on `today`: expert -> sorted reasons.

        They do not depend on the project, so they are evaluated once per day (the last day
        asked is kept) instead of once per project.
        """
        return self._day(rules, today).reasons

    def _day(self, rules: Rules, today: date) -> _DayRules:
        key = ("day", today, rules.age_limit, rules.look_back_years)
        found = self._memo.get(key)
        if found is not None:
            return cast(_DayRules, found)
        reasons: dict[str, list[Reason]] = defaultdict(list)
        for eid, status in self.inactive.items():
            reasons[eid].append(Reason("status", status))
        too_old_if_born_by = years_before(today, rules.age_limit + 1)
        cut = bisect.bisect_right(self.by_birth, (too_old_if_born_by, "\U0010ffff"))
        for born, eid in self.by_birth[:cut]:
            reasons[eid].append(Reason("age", f"born {born.isoformat()}"))
        since = years_before(today, rules.look_back_years)
        start = bisect.bisect_left(self.by_last_penalty, (since, ""))
        for _, eid in self.by_last_penalty[start:]:
            e = self.experts[eid]
            recent = max((p for p in e.penalties if p.on >= since), key=lambda p: p.on)
            reasons[eid].append(Reason("penalty", f"{recent.on.isoformat()}: {recent.reason}"))
        for eid, bars in self.conduct_bars.items():
            for bar in bars:
                if bar.covers(today):
                    reasons[eid].append(Reason("conduct", f"{bar.kind} until "
                                               f"{bar.end.isoformat()}: {bar.reason}"))
        done = {eid: tuple(sorted(set(rs))) for eid, rs in reasons.items()}
        rank = self._ranks()[1]
        ordered = sorted(done, key=rank.__getitem__)
        combos: dict[frozenset[str], int] = {}
        combo = [
            combos.setdefault(frozenset(r.code for r in done[e]), len(combos)) for e in ordered
        ]
        day = _DayRules(
            reasons=done,
            ids=tuple(ordered),
            sorted_reasons=tuple(done[e] for e in ordered),
            ranks=np.array([rank[e] for e in ordered], dtype=np.intp),
            combo=np.array(combo, dtype=np.intp),
            combos=tuple(combos),
        )
        for old in [k for k in self._memo if k[0] == "day"]:
            del self._memo[old]
        self._memo[key] = day
        return day

    def _ranks(self) -> tuple[tuple[str, ...], dict[str, int]]:
        """Every expert id sorted, and each id's position in that order."""
        found = self._memo.get(("ranks",))
        if found is None:
            ids = tuple(sorted(self.experts))
            found = self._memo[("ranks",)] = (ids, {e: i for i, e in enumerate(ids)})
        return cast(tuple[tuple[str, ...], dict[str, int]], found)

    def _quota_ranks(self, quota: Quota) -> NDArray[np.intp]:
        """The ranks of `matching(quota)`, sorted (kept per quota code and kind)."""
        key = ("quota_ranks", normalise_specialty(quota.specialty), quota.kind)
        found = self._memo.get(key)
        if found is None:
            rank = self._ranks()[1]
            found = self._memo[key] = np.sort(
                np.fromiter(map(rank.__getitem__, self.matching(quota)), dtype=np.intp)
            )
        return cast(NDArray[np.intp], found)

    def _city(self, city: str) -> tuple[NDArray[np.intp], tuple[Reason, ...]]:
        """The ranks of the experts living or working in `city`, and each one's reason."""
        key = ("city", city)
        found = self._memo.get(key)
        if found is None:
            rank = self._ranks()[1]
            members = sorted(self.by_city.get(city, frozenset()), key=rank.__getitem__)
            lives, works = Reason("city", f"lives in {city}"), Reason("city", f"works in {city}")
            found = self._memo[key] = (
                np.array([rank[e] for e in members], dtype=np.intp),
                tuple(lives if self.experts[e].city == city else works for e in members),
            )
        return cast(tuple[NDArray[np.intp], tuple[Reason, ...]], found)

    def _relevant_mask(self, quotas: Sequence[Quota]) -> Mask:
        """Over all experts by rank: does the expert match one of `quotas`?"""
        mask = np.zeros(len(self.experts), dtype=np.bool_)
        for q in quotas:
            mask[self._quota_ranks(q)] = True
        return mask


@dataclass(frozen=True, slots=True)
class _DayRules:
    """The pool-level rules of one day: reasons per expert, and the same as arrays by rank
    (`combo`: index of the expert's set of reason codes in `combos`) for counting."""

    reasons: dict[str, tuple[Reason, ...]]
    ids: tuple[str, ...]  # the experts with a reason, by rank
    sorted_reasons: tuple[tuple[Reason, ...], ...]  # their reasons, in the same order
    ranks: NDArray[np.intp]
    combo: NDArray[np.intp]
    combos: tuple[frozenset[str], ...]


# --- the day's screening as bitmaps (national scale) -------------------------------------------


def day_snapshot(pool: PoolIndex, sites: Iterable[Site], rules: Rules, today: date) -> DrawSnapshot:
    """The day's draw snapshot: the experts who pass the pool-level rules on `today` (status,
    penalties, age) as draw candidates, and every guest venue with all its workstations."""
    barred = pool.day_reasons(rules, today)
    candidates = tuple(pool.candidates[e] for e in pool._ranks()[0] if e not in barred)
    venues = sorted(
        (
            VenueOffer(v.id, s.id, v.city, tuple(sorted((w.id, w.room_id) for w in v.workstations)))
            for s in sites
            if "guest" in s.roles
            for v in s.venues
            if v.workstations
        ),
        key=lambda v: v.venue_id,
    )
    return DrawSnapshot(candidates, tuple(venues))


_NO_ROWS: NDArray[np.intp] = np.zeros(0, dtype=np.intp)


def _distinct(ascending: Rows) -> Rows:
    """Ascending rows without their repeats."""
    if len(ascending) < 2:
        return ascending
    return ascending[np.concatenate(([True], ascending[1:] != ascending[:-1]))]


def _joined(parts: list[NDArray[np.intp]]) -> NDArray[np.intp]:
    """Row arrays as one (most windows lie in one half-day: no copy then)."""
    if not parts:
        return _NO_ROWS
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Span:
    """The rows of one interval (start, end), in a growable array; a removed one is -1."""

    __slots__ = ("n", "removed", "rows")

    def __init__(self) -> None:
        self.n = self.removed = 0
        self.rows = np.zeros(16, dtype=np.intp)

    def copy(self) -> _Span:
        other = _Span()
        other.n, other.removed, other.rows = self.n, self.removed, self.rows.copy()
        return other

    def live(self) -> NDArray[np.intp]:
        rows = self.rows[: self.n]
        if self.removed:
            return rows[rows >= 0]
        rows.flags.writeable = False  # a view of the span: nobody writes through it
        return rows


class _Intervals:
    """Time intervals of rows (experts or workstations), grouped by interval: a day's
    committees sit in a few windows, so the overlap query compares a few intervals and
    joins their rows, instead of comparing each of a half-day's tens of thousands of
    sittings. A removed interval's row becomes -1 (it overlaps nothing). Rows come back in
    no particular order (callers set masks or sort)."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: dict[tuple[int, int], _Span] = {}

    def add(self, row: int, start: int, end: int) -> None:
        span = self._spans.get((start, end))
        if span is None:
            span = self._spans[(start, end)] = _Span()
        if span.n == len(span.rows):
            span.rows = np.concatenate([span.rows, np.zeros_like(span.rows)])
        span.rows[span.n] = row
        span.n += 1

    def remove(self, row: int, start: int, end: int) -> bool:
        span = self._spans.get((start, end))
        if span is None:
            return False
        hit = np.flatnonzero(span.rows[: span.n] == row)
        if not len(hit):
            return False
        span.rows = span.rows.copy()  # rows handed out (views) keep what they read
        span.rows[hit[0]] = -1
        span.removed += 1
        return True

    def copy(self) -> _Intervals:
        other = _Intervals()
        other._spans = {key: span.copy() for key, span in self._spans.items()}
        return other

    def live_rows(self) -> NDArray[np.intp]:
        return _joined([span.live() for span in self._spans.values()])

    def overlapping(self, start: int, end: int) -> NDArray[np.intp]:
        return _joined([span.live() for (s, e), span in self._spans.items()
                        if s < end and start < e])


_SORT_BELOW = 16  # `_ascending` sorts rows fewer than the pool / this (measured crossover ~12)


class _AtCap:
    """The rows that reached the workload cap in a half-day, in the order they reached it (a
    growable array: a booking appends, the rule reads a slice, not a pass over the day's
    sittings). A removed sitting marks it stale: rebuilt from the counts when next read.

    `within` keeps, per quota (code and kind), those of the rows that match it, ascending:
    a draw's declared bars list them, and reading them back from tens of thousands of rows
    at the cap cost a pass over the pool per draw; kept, a draw merges in the few rows that
    reached the cap since the quota's last draw."""

    __slots__ = ("_within", "n", "rows", "stale")

    def __init__(self, rows: NDArray[np.intp]) -> None:
        self.rows, self.n, self.stale = rows.astype(np.intp), len(rows), False
        self._within: dict[tuple[str, str | None], tuple[int, Rows]] = {}

    def add(self, row: int) -> None:
        if self.n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros(max(64, self.n), dtype=np.intp)])
        self.rows[self.n] = row
        self.n += 1

    def live(self) -> NDArray[np.intp]:
        return self.rows[: self.n]

    def within(self, quota: tuple[str, str | None], matching: Rows) -> Rows:
        """The rows at the cap among `matching` (the quota's rows, ascending), ascending and
        distinct (a row is appended once: again only after a removal, which rebuilds). Read
        only: the next call may return it again."""
        seen, found = self._within.get(quota, (0, _NO_ROWS))
        if seen < self.n and len(matching):
            new = self.rows[seen:self.n]
            at = np.minimum(np.searchsorted(matching, new), len(matching) - 1)
            new = np.sort(new[matching[at] == new])
            if len(new):
                found = np.insert(found, np.searchsorted(found, new), new)
        self._within[quota] = (self.n, found)
        return found

    def copy(self) -> _AtCap:
        other = _AtCap(self.live().copy())
        other.stale = self.stale
        other._within = dict(self._within)  # its arrays are never changed in place
        return other


class DayScreen:
    """One day's screening as bitmaps over the day's `DrawSnapshot`, kept current as draws book.

    For a project, `barred` marks the snapshot's candidates who may not sit (the union of
    `rule_masks`: city, party, cool-off, overlapping sessions, the half-day workload cap, on top
    of the pool-level rules the snapshot already applied), and `unavailable` the workstations a
    draw may not use (busy in the window, down, or in the project's or host's city). `inputs`
    turns both into referenced draw inputs. A property test checks both against the
    independent checker's rules (violations.py).

    Bookings: `add_sitting` / `remove_sitting` for experts and `add_booking` / `remove_booking`
    for workstations (`book` does both for a drawn committee), `set_down` for faults. Sittings
    and bookings are kept per local half-day, and the workload counts per half-day as arrays,
    so a project costs a few passes over arrays of the pool's size, never a Python loop over
    the pool or over the day's sittings.
    """

    def __init__(
        self,
        pool: PoolIndex,
        index: ConflictIndex,
        sites: Iterable[Site],
        rules: Rules,
        today: date,
        *,
        sittings: Iterable[Sitting] = (),
        bookings: Iterable[tuple[str, int, int]] = (),
        down: Iterable[str] = (),
        companies_by_id: Mapping[str, Company] | None = None,
    ) -> None:
        self.pool, self.index, self.rules, self.today = pool, index, rules, today
        self.companies = index.companies if companies_by_id is None else companies_by_id
        site_list = tuple(sites)
        self.snapshot = snapshot = day_snapshot(pool, site_list, rules, today)
        self._rows = snapshot.expert_rows()
        self.party = PartyRule(index, self.companies, today, self._rows)
        # Per quota shape, by the quotas themselves and by their normalised codes.
        self._relevant_memo: dict[tuple[Any, ...], tuple[Mask, NDArray[np.intp]]] = {}
        self._conduct: list[str] | None = None  # conduct bars of the day (fixed per screen)
        self._n = len(snapshot.candidates)
        self._scratch = np.zeros(self._n, dtype=np.bool_)  # all False between uses
        # The last project's state masks and the booking picture they were made on
        # (`_changes` counts sittings added or removed): a draw's bars and its declared bars
        # read the same masks.
        self._changes = 0
        self._state_memo: tuple[tuple[Any, ...], list[tuple[str, Rows]]] | None = None
        self._n_ws = snapshot.workstation_count()
        self._city_rows = {
            city: np.array(sorted(self._rows[e] for e in ids if e in self._rows), dtype=np.intp)
            for city, ids in pool.by_city.items()
        }
        site_city = {s.id: s.city for s in site_list}
        ws_city: dict[str, list[int]] = defaultdict(list)
        row = 0
        for v in snapshot.venues:
            span = range(row, row + len(v.free))
            for city in {v.city, site_city.get(v.site_id, v.city)}:
                ws_city[city].extend(span)
            row += len(v.free)
        self._ws_city_rows = {c: np.array(r, dtype=np.intp) for c, r in ws_city.items()}
        self._ws_rows = snapshot.workstation_rows()
        self._down = np.zeros(self._n_ws, dtype=np.bool_)
        self._by_tenderer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self._sittings: dict[int, _Intervals] = defaultdict(_Intervals)
        self._counts: dict[int, NDArray[np.int32]] = {}  # per half-day read: sittings per row
        self._at_cap: dict[int, _AtCap] = {}  # per half-day counted: the rows at the cap
        self._cap = max(1, rules.workload_cap_per_half_day)
        self._bookings: dict[int, _Intervals] = defaultdict(_Intervals)
        for s in sittings:
            self.add_sitting(s)
        for ws, start, end in bookings:
            self.add_booking(ws, start, end)
        self.set_down(down)

    # --- the booking picture -------------------------------------------------------------

    def _half_days(self, start: int, end: int) -> range:
        return _half_day_range(start, end, self.rules.local_utc_offset_minutes)

    def add_sitting(self, s: Sitting) -> None:
        """An expert's booked session (anyone outside the day's snapshot is never a candidate)."""
        row = self._rows.get(s.expert_id)
        if row is None:
            return
        self._changes += 1
        start, end = s.window.start_ts, s.window.end_ts
        self._by_tenderer[s.tenderer_id].append((row, start, end))
        for h in self._half_days(start, end):
            self._sittings[h].add(row, start, end)
            counts = self._counts.get(h)
            if counts is not None:
                counts[row] += 1
                if counts[row] == self._cap:
                    self._at_cap[h].add(row)

    def remove_sitting(self, s: Sitting) -> None:
        row = self._rows.get(s.expert_id)
        if row is None:
            return
        self._changes += 1
        start, end = s.window.start_ts, s.window.end_ts
        entries = self._by_tenderer.get(s.tenderer_id, [])
        if (row, start, end) in entries:
            entries.remove((row, start, end))
        for h in self._half_days(start, end):
            if self._sittings[h].remove(row, start, end) and h in self._counts:
                self._counts[h][row] -= 1
                if self._counts[h][row] == self._cap - 1:
                    self._at_cap[h].stale = True

    def add_booking(self, workstation_id: str, start: int, end: int) -> None:
        """A workstation booked for [start, end) (unix seconds)."""
        row = self._ws_rows.get(workstation_id)
        if row is not None:
            for h in self._half_days(start, end):
                self._bookings[h].add(row, start, end)

    def remove_booking(self, workstation_id: str, start: int, end: int) -> None:
        row = self._ws_rows.get(workstation_id)
        if row is not None:
            for h in self._half_days(start, end):
                self._bookings[h].remove(row, start, end)

    def set_down(self, workstation_ids: Iterable[str]) -> None:
        """The workstations reported faulty or offline now (replaces the previous set)."""
        self._down = self.snapshot.workstation_mask(workstation_ids)

    def book(self, project: Project, seats: Iterable[tuple[str, str]]) -> None:
        """A drawn committee: (expert id, workstation id) per seat, for the project's window."""
        w = project.window
        for expert_id, workstation_id in seats:
            self.add_sitting(Sitting(expert_id, project.id, project.tenderer_id, w))
            self.add_booking(workstation_id, w.start_ts, w.end_ts)

    # --- per project ---------------------------------------------------------------------

    def _count(self, h: int) -> NDArray[np.int32]:
        found = self._counts.get(h)
        if found is None:
            found = np.bincount(self._sittings[h].live_rows(), minlength=self._n).astype(np.int32)
            self._counts[h] = found
            self._at_cap[h] = _AtCap(np.flatnonzero(found >= self._cap))
        return found

    def _rows_at_cap(self, h: int) -> NDArray[np.intp]:
        counts = self._count(h)
        at_cap = self._at_cap[h]
        if at_cap.stale:
            at_cap = self._at_cap[h] = _AtCap(np.flatnonzero(counts >= self._cap))
        return at_cap.live()

    def fork(self) -> DayScreen:
        """A screen sharing this one's snapshot and indexes (read-only) with a copy of its
        booking picture: a plan drawing in a worker thread books into the fork while the event
        loop goes on changing the original."""
        other = object.__new__(DayScreen)
        other.__dict__.update(self.__dict__)
        other._down = self._down.copy()
        other._scratch = np.zeros(self._n, dtype=np.bool_)  # one per screen: threads
        other._by_tenderer = defaultdict(list, {k: list(v) for k, v in self._by_tenderer.items()})
        other._sittings = defaultdict(_Intervals, {h: v.copy() for h, v in self._sittings.items()})
        other._counts = {h: v.copy() for h, v in self._counts.items()}
        other._at_cap = {h: v.copy() for h, v in self._at_cap.items()}
        other._bookings = defaultdict(_Intervals, {h: v.copy() for h, v in self._bookings.items()})
        return other

    # --- the rules, one mask each (a reason code per rule) ----------------------------------

    def tied_rows(self, project: Project) -> NDArray[np.intp]:
        """Rule "party" for `project` (see `PartyRule`)."""
        return self.party.rows(project)

    def rule_masks(
        self, project: Project, host_city: str, tied: NDArray[np.intp] | None = None
    ) -> list[tuple[str, Mask]]:
        """(reason code, snapshot rows it bars) for every per-project rule: "why was this expert
        barred" is "which masks hit". The pool-level rules (status, penalty, age) are applied
        by the snapshot itself (`PoolIndex.day_reasons`)."""
        masks = []
        for code, rows in self._row_rules(project, host_city, tied):
            hit = np.zeros(self._n, dtype=np.bool_)
            for r in rows:
                hit[r] = True
            masks.append((code, hit))
        return [*masks, *self.state_masks(project)]

    def _row_rules(
        self, project: Project, host_city: str, tied: NDArray[np.intp] | None
    ) -> list[tuple[str, list[NDArray[np.intp]]]]:
        """The registry rules, as the rows each bars: "city" (lives or works in the project's
        or the host's city) and "party" (`PartyRule`, or `tied` from a plan's batch)."""
        return [
            ("city", [self._city_rows.get(c, _NO_ROWS) for c in {project.city, host_city}]),
            ("party", [self.tied_rows(project) if tied is None else tied]),
        ]

    def state_rows(self, project: Project) -> list[tuple[str, Rows]]:
        """The sitting rules: they read the booking picture, not the registry, so a draw
        archive declares what they bar (`declared_bars`). One method each (`sitting_rule`).
        The rows are shared with the next call for the same project and booking picture (a
        draw's bars and its declared bars read the same ones): read only."""
        key = (project.id, project.tenderer_id, project.window.start_ts,
               project.window.end_ts, self._changes)
        if self._state_memo is not None and self._state_memo[0] == key:
            return list(self._state_memo[1])
        found = [(code, rule(self, project)) for code, rule in SITTING_RULES.items()]
        self._state_memo = (key, found)
        return list(found)

    def state_masks(self, project: Project) -> list[tuple[str, Mask]]:
        """`state_rows` as masks over the snapshot (for `rule_masks`)."""
        out = []
        for code, rows in self.state_rows(project):
            hit = np.zeros(self._n, dtype=np.bool_)
            hit[rows] = True
            out.append((code, hit))
        return out

    # --- the sitting rules (a new one: one method here, registered by `sitting_rule`) -----

    @sitting_rule("cool_off")
    def _cool_off(self, project: Project) -> Rows:
        """Sat for the same tenderer within `cool_off_days` of the window."""
        start, end = project.window.start_ts, project.window.end_ts
        cool = self.rules.cool_off_days * 86400
        return np.array([row for row, s_start, s_end in self._by_tenderer.get(
            project.tenderer_id, ()) if s_start < end + cool and s_end > start - cool],
            dtype=np.intp)

    @sitting_rule("overlap")
    def _overlap(self, project: Project) -> Rows:
        """Already has a session overlapping the window."""
        start, end = project.window.start_ts, project.window.end_ts
        return _joined([self._sittings[h].overlapping(start, end)
                        for h in self._half_days(start, end)])

    @sitting_rule("workload")
    def _workload(self, project: Project) -> Rows:
        """One more sitting would exceed `workload_cap_per_half_day` in a local half-day."""
        return _joined([self._rows_at_cap(h)
                        for h in self._half_days(project.window.start_ts, project.window.end_ts)])

    @declared_reader("workload")
    def _workload_declared(self, project: Project) -> Rows:
        """`_workload`'s rows among the project's quotas, ascending, distinct: per quota from
        the half-day's kept lists (`_AtCap.within`), not a pass over the tens of thousands at
        the cap (a test checks it against `_ascending`)."""
        index = self.snapshot.candidate_index()
        quotas = {(normalise_specialty(q.specialty), q.kind) for q in project.quotas}
        parts = []
        for h in self._half_days(project.window.start_ts, project.window.end_ts):
            self._rows_at_cap(h)  # counted, and rebuilt if stale
            at_cap = self._at_cap[h]
            parts += [at_cap.within(q, index.matching(*q)[0]) for q in quotas]
        if len(parts) < 2:
            return parts[0] if parts else _NO_ROWS
        return _distinct(np.sort(np.concatenate(parts), kind="stable"))  # merges the runs

    def declared_bars(self, project: Project) -> dict[str, Any]:
        """What the booking picture and the conduct records bar for `project`: state, not
        registry, so a draw archive carries it as a declared input (registry_snapshot.py).
        The state rules are listed for the experts matching a quota (no other candidate can
        be drawn), as row-list text over the day's snapshot (`pack_rows`: a national plan
        bars thousands a draw); conduct bars for the whole pool, as expert ids (they shape
        the day's snapshot, so they cannot be rows of it)."""
        relevant = self._relevant(project)[0]  # a quota's experts, not the pool
        out: dict[str, Any] = {}
        for code, rows in self.state_rows(project):
            reader = DECLARED_READERS.get(code)
            out[code] = pack_rows(self._ascending(rows, within=relevant) if reader is None
                                  else reader(self, project))
        if self._conduct is None:
            self._conduct = sorted(e for e, bars in self.pool.conduct_bars.items()
                                   if any(b.covers(self.today) for b in bars))
        out["conduct"] = list(self._conduct)
        return out

    def _ascending(self, rows: Rows, within: Mask) -> Rows:
        """Those of `rows` that `within` marks, ascending and without repeats. Under a
        sixteenth of the pool (the overlap rule's few thousand): narrowed and sorted; more:
        through the screen's scratch mask (set, narrowed, read back, cleared), one pass over
        the pool instead of a sort of tens of thousands."""
        if len(rows) * _SORT_BELOW < self._n:
            return _distinct(np.sort(rows[within[rows]]))
        scratch = self._scratch
        scratch[rows] = True
        np.logical_and(scratch, within, out=scratch)
        found: Rows = np.flatnonzero(scratch)
        scratch[found] = False
        return found

    def barred(
        self, project: Project, host_city: str, tied: NDArray[np.intp] | None = None
    ) -> Mask:
        """The snapshot's candidates who may not sit for `project`: any rule's rows (the
        union of `rule_masks`, every rule's rows set in place: no mask per rule)."""
        mask = np.zeros(self._n, dtype=np.bool_)
        for _, rows in self._row_rules(project, host_city, tied):
            for r in rows:
                mask[r] = True
        for _, state in self.state_rows(project):
            mask[state] = True
        return mask

    def explain(self, project: Project, host_city: str) -> dict[str, tuple[str, ...]]:
        """Every expert matching one of the project's quotas who may not sit now, with the
        reason codes of the rules that bar them: the pool-level ones (status, penalty, age),
        then the masks that hit, "party" told apart by the conflict index's own codes.
        O(experts matching a quota): for refusals, tools and tests, not for every draw."""
        ids = self.pool._ranks()[0]
        relevant = [ids[r] for r in np.flatnonzero(self.pool._relevant_mask(project.quotas))]
        pool_level = self.pool.day_reasons(self.rules, self.today)
        masks = self.rule_masks(project, host_city)
        ties: dict[str, list[Reason]] | None = None
        out: dict[str, tuple[str, ...]] = {}
        for eid in relevant:
            codes = {r.code for r in pool_level.get(eid, ())}
            row = self._rows.get(eid)
            if row is not None:
                for code, hit in masks:
                    if not hit[row]:
                        continue
                    if code != "party":
                        codes.add(code)
                        continue
                    if ties is None:
                        ties = self.index.ineligible_for(project, self.companies, self.today)
                    codes |= {r.code for r in ties.get(eid, ())}
            if codes:
                out[eid] = tuple(sorted(codes))
        return out

    def why(self, project: Project, host_city: str, expert_id: str) -> tuple[str, ...]:
        """The reason codes that bar `expert_id` from `project` now (empty: may sit, or
        matches none of its quotas)."""
        return self.explain(project, host_city).get(expert_id, ())

    def reason_counts(self, project: Project, host_city: str) -> Counter[str]:
        """For the experts matching a quota who may not sit: how many each reason code bars
        (an expert barred twice counts under both): what explains a refused draw."""
        return Counter(code for codes in self.explain(project, host_city).values()
                       for code in codes)

    def per_quota(self, project: Project, host_city: str) -> tuple[tuple[int, int], ...]:
        """Per quota: (experts of the pool matching it, of whom may sit now)."""
        barred = self.barred(project, host_city)
        index = self.snapshot.candidate_index()
        out = []
        for q in project.quotas:
            rows = index.matching(normalise_specialty(q.specialty), q.kind)[0]
            out.append((len(self.pool.matching(q)), int(np.count_nonzero(~barred[rows]))))
        return tuple(out)

    def unavailable(self, project: Project, host_city: str) -> Mask:
        """The snapshot's workstations a draw for `project` may not use."""
        mask = self._down.copy()
        for city in {project.city, host_city}:
            mask[self._ws_city_rows.get(city, _NO_ROWS)] = True
        start, end = project.window.start_ts, project.window.end_ts
        for h in self._half_days(start, end):
            mask[self._bookings[h].overlapping(start, end)] = True
        return mask

    def inputs(
        self, project: Project, host_city: str, tied: NDArray[np.intp] | None = None
    ) -> DrawInputs:
        """Referenced draw inputs for a first draw of `project` against the picture now."""
        return DrawInputs.referenced(
            project=project,
            rules_version=self.rules.version,
            snapshot=self.snapshot,
            barred=self.barred(project, host_city, tied),
            unavailable=self.unavailable(project, host_city),
            per_venue_cap=self.rules.per_venue_cap,
        )

    def relevant(self, project: Project) -> Mask:
        """The snapshot rows matching one of the project's quotas, as a mask (read only)."""
        return self._relevant(project)[0]

    def _relevant(self, project: Project) -> tuple[Mask, NDArray[np.intp]]:
        """`relevant` as mask and as rows, kept per quota shape (a day's projects share few,
        and a draw reads them three times: no pass over the pool for them per draw)."""
        found = self._relevant_memo.get(project.quotas)
        if found is None:
            key = tuple((normalise_specialty(q.specialty), q.kind) for q in project.quotas)
            found = self._relevant_memo.get(key)
            if found is None:
                index = self.snapshot.candidate_index()
                mask = np.zeros(self._n, dtype=np.bool_)
                for code, kind in key:
                    mask[index.matching(code, kind)[0]] = True
                found = self._relevant_memo[key] = (mask, np.flatnonzero(mask))
            self._relevant_memo[project.quotas] = found
        return found

    def eligible_count(self, project: Project, barred: Mask) -> int:
        """How many of the snapshot's candidates not barred match one of the project's quotas
        (0: a draw is refused before it is committed)."""
        relevant, rows = self._relevant(project)
        return len(rows) - int(np.count_nonzero(relevant & barred))


@dataclass(frozen=True, slots=True)
class PartyRule:
    """Rule "party" (employer, interests, relatives, department, declared conflicts): the
    snapshot rows the conflict index ties to a project's parties. The costly look-up of a
    project and independent of the bookings, so a day plan runs it in batch: this is what each
    worker holds (sent once per plan), not the whole screen."""

    index: ConflictIndex
    companies: Mapping[str, Company]
    today: date
    expert_rows: Mapping[str, int]

    def rows(self, project: Project | Parties) -> NDArray[np.intp]:
        rows = self.expert_rows
        tied = self.index.ineligible_ids(project, self.companies, self.today)
        return np.array(sorted(rows[e] for e in tied if e in rows), dtype=np.intp)


def tied_rows_chunk(rule: PartyRule, chunk: Sequence[Parties]) -> list[NDArray[np.intp]]:
    """The batch job of a day plan: rule "party" for each project of the chunk (its
    `Project.parties`: what the rule reads, and cheap to send to a worker)."""
    return [rule.rows(p) for p in chunk]


# Every reason code of a barred expert: the pool's (status: suspended, blacklisted or retired;
# penalty: within the look-back; age: over the limit on the day), the project's (city: lives or
# works in the project's or host's city; party: a tie through the conflict index), the sitting
# rules, and conduct (barred for a period: coordinator/domain/conduct.py).
ELIGIBILITY_CODES: Final[tuple[str, ...]] = (
    "status", "penalty", "age", "city", "party", *SITTING_RULES, "conduct")
