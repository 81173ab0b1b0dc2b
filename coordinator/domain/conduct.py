"""Expert conduct: what the grid records about each expert, and the bars it earns.

The trading centres publish conduct every quarter (lateness, absence, leaving, declines,
misconduct) and it decides who may be drawn. Nothing here is new data: every event is read
from the audit trail (each carries the seq numbers of the entries it rests on), with the
sealed allocations linking a session or an expert reference to the expert. The rules of the
`[conduct]` table turn events into `ConductBar`s, which screening applies like status and
penalties (reason code "conduct"). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from coordinator.domain.audit import AuditEntry
from coordinator.domain.model import ConductBar, Window
from coordinator.domain.rules import ConductRules

# What is recorded, in report order. Every kind but "sanction" comes from the audit trail.
EVENT_KINDS: tuple[str, ...] = (
    "signed_in",  # attended (the denominator of a record)
    "late_sign_in",  # signed in later than the grace after the window start
    "no_show",  # not signed in at the window start: redrawn
    "decline",  # declined the notice in time
    "late_decline",  # declined (or left) less than the notice period before the window
    "leave",  # left the committee before the opening
    "recusal",  # recused on seeing the parties
    "sheet_returned",  # the leader returned the member's signed sheet
    "deviation_upheld",  # a deviation warning on the member's scores stands in the report
    "lockout",  # a sign-in locked after too many wrong codes for the member's seat
    "sanction",  # recorded by hand by an operator
)

# Seat departures in the audit trail (coordinator/allocation.py DEPARTURES) -> event kind.
_DEPARTURE_KINDS = {"seat.declined": "decline", "seat.left": "leave", "seat.no_show": "no_show",
                    "seat.recused": "recusal"}


# Audit kinds that can make a conduct event: the follower reads only these (and skips the
# allocations altogether when a stretch of the trail holds none).
FOLLOWED_KINDS: frozenset[str] = frozenset({
    *_DEPARTURE_KINDS, "expert.signed_in", "sheet.returned", "signin.locked",
    "checkin.locked", "evaluation.reported"})


class ConductError(ValueError):
    """Bad input for a conduct record; the message names the field."""


@dataclass(frozen=True, slots=True)
class SeatLink:
    """Who sat (or was to sit) behind a session: from the sealed allocation."""

    expert_id: str
    project_id: str
    session_id: str
    expert_ref: str


@dataclass(frozen=True, slots=True)
class ConductEvent:
    expert_id: str
    kind: str
    at: datetime  # when it was recorded (the coordinator's clock)
    project_id: str
    evidence: tuple[int, ...]  # audit entry seq numbers
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Sanction:
    """A bar recorded by hand by an operator (audited when recorded)."""

    sanction_id: str
    expert_id: str
    start: date
    end: date
    reason: str
    by: str
    evidence: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.expert_id.strip():
            raise ConductError("expert_id: must not be empty")
        if self.end < self.start:
            raise ConductError("until: must not be before the start")
        if not self.reason.strip():
            raise ConductError("reason: a sanction needs a stated reason")


def _at(entry: AuditEntry) -> datetime:
    return datetime.fromisoformat(entry.at.replace("Z", "+00:00"))


def local_day(when: datetime, offset_minutes: int) -> date:
    return (when + timedelta(minutes=offset_minutes)).date()


def events_from_audit(entries: Iterable[AuditEntry], seats: Iterable[SeatLink],
                      windows: Mapping[str, Window], rules: ConductRules,
                      report_warnings: Mapping[str, Sequence[str]] | None = None
                      ) -> list[ConductEvent]:
    """Every conduct event the trail shows, in trail order.

    `seats`: every seat of every allocation (departed ones included); `windows`: project ->
    window; `report_warnings`: project -> the expert refs of each deviation warning in its
    signed report (one ref per warning), attributed to the `evaluation.reported` entry.
    """
    by_session = {s.session_id: s for s in seats}
    by_ref = {(s.project_id, s.expert_ref): s for s in by_session.values()}
    late_sign_in = timedelta(minutes=rules.late_sign_in_minutes)
    late_decline = timedelta(hours=rules.late_decline_hours)
    out: list[ConductEvent] = []
    for entry in entries:
        d = entry.detail
        kind = entry.kind
        seat: SeatLink | None = None
        if kind in _DEPARTURE_KINDS or kind == "expert.signed_in":
            seat = by_session.get(str(d.get("session", "")))
        elif kind == "sheet.returned":
            seat = by_ref.get((entry.subject, str(d.get("expert_ref", ""))))
        elif kind in ("signin.locked", "checkin.locked"):
            scope = str(d.get("scope", ""))
            if scope.startswith("session:"):
                seat = by_session.get(scope.partition(":")[2])
        elif kind == "evaluation.reported" and report_warnings is not None:
            for ref in report_warnings.get(entry.subject, ()):
                hit = by_ref.get((entry.subject, ref))
                if hit is not None:
                    out.append(ConductEvent(hit.expert_id, "deviation_upheld", _at(entry),
                                            entry.subject, (entry.seq,),
                                            "deviation warning in the signed report"))
            continue
        if seat is None:
            continue
        at = _at(entry)
        window = windows.get(seat.project_id)
        if kind == "expert.signed_in":
            out.append(ConductEvent(seat.expert_id, "signed_in", at, seat.project_id,
                                    (entry.seq,)))
            if window is not None and at > window.start + late_sign_in:
                minutes = int((at - window.start).total_seconds() // 60)
                out.append(ConductEvent(seat.expert_id, "late_sign_in", at, seat.project_id,
                                        (entry.seq,), f"{minutes} min after the start"))
        elif kind in _DEPARTURE_KINDS:
            event = _DEPARTURE_KINDS[kind]
            reason = str(d.get("reason", ""))
            if (event in ("decline", "leave") and window is not None
                    and window.start - at < late_decline):
                hours = max(0, int((window.start - at).total_seconds() // 3600))
                out.append(ConductEvent(seat.expert_id, "late_decline", at, seat.project_id,
                                        (entry.seq,), f"{event} {hours} h before the start: "
                                        f"{reason}"))
            else:
                out.append(ConductEvent(seat.expert_id, event, at, seat.project_id,
                                        (entry.seq,), reason))
        elif kind == "sheet.returned":
            out.append(ConductEvent(seat.expert_id, "sheet_returned", at, seat.project_id,
                                    (entry.seq,), str(d.get("reason", ""))))
        else:
            out.append(ConductEvent(seat.expert_id, "lockout", at, seat.project_id,
                                    (entry.seq,), f"{kind} until {d.get('locked_until', '')}"))
    return out


def bars_from_events(events: Iterable[ConductEvent], sanctions: Iterable[Sanction],
                     rules: ConductRules, offset_minutes: int) -> list[ConductBar]:
    """The bars the rules derive from `events`, and every sanction as a bar, sorted.

    A bar starts on the day of the event that earns it (the earlier of its local and UTC
    dates, since screening asks for the day of the draw: the next day's draws, made the
    evening before, already see it) and runs for the rule's number of local days.
    """
    bars: list[ConductBar] = []
    per_expert: dict[str, list[ConductEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.at, e.evidence)):
        per_expert[event.expert_id].append(event)

    def bar(event: ConductEvent, kind: str, days: int, reason: str,
            evidence: tuple[int, ...]) -> None:
        if days <= 0:
            return
        local = local_day(event.at, offset_minutes)
        start = min(local, event.at.date())
        bars.append(ConductBar(event.expert_id, kind, start, local + timedelta(days=days),
                               reason, evidence))

    for expert_events in per_expert.values():
        no_shows: list[ConductEvent] = []
        lates: list[ConductEvent] = []
        for event in expert_events:
            if event.kind == "late_decline":
                bar(event, "late_decline_cool_off", rules.late_decline_cool_off_days,
                    f"late decline ({event.project_id})", event.evidence)
            elif event.kind == "no_show":
                no_shows.append(event)
                bar(event, "no_show_cool_off", rules.no_show_cool_off_days,
                    f"no-show ({event.project_id})", event.evidence)
                window = [e for e in no_shows if event.at - e.at
                          <= timedelta(days=rules.no_show_period_days)]
                if len(window) >= rules.no_show_suspension_count:
                    bar(event, "no_show_suspension", rules.no_show_suspension_days,
                        f"{len(window)} no-shows within {rules.no_show_period_days} days",
                        tuple(s for e in window for s in e.evidence))
            elif event.kind == "late_sign_in":
                lates.append(event)
                window = [e for e in lates if event.at - e.at
                          <= timedelta(days=rules.late_sign_in_period_days)]
                if len(window) >= rules.late_sign_in_count:
                    bar(event, "late_sign_in_cool_off", rules.late_sign_in_cool_off_days,
                        f"{len(window)} late sign-ins within {rules.late_sign_in_period_days}"
                        " days", tuple(s for e in window for s in e.evidence))
                    lates = []  # the next bar needs as many late sign-ins again
    for s in sanctions:
        bars.append(ConductBar(s.expert_id, "sanction", s.start, s.end,
                               f"{s.reason} (by {s.by})", s.evidence))
    bars.sort(key=lambda b: (b.expert_id, b.start, b.kind, b.evidence))
    return bars


@dataclass(frozen=True, slots=True)
class ConductRow:
    """One expert's record over a period: counts per event kind, bars, evidence."""

    expert_id: str
    counts: Mapping[str, int]
    bars: tuple[ConductBar, ...]
    evidence: tuple[int, ...]


def quarter_bounds(quarter: str) -> tuple[date, date]:
    """"2026Q4" -> (2026-10-01, 2026-12-31); a clear error for anything else."""
    text = quarter.strip().upper()
    year, sep, q = text.partition("Q")
    if not sep or not year.isdigit() or q not in ("1", "2", "3", "4") or len(year) != 4:
        raise ConductError(f"quarter: expected YYYYQn such as 2026Q4, got {quarter!r}")
    first_month = 3 * (int(q) - 1) + 1
    start = date(int(year), first_month, 1)
    end = (date(int(year) + 1, 1, 1) if q == "4" else date(int(year), first_month + 3, 1)) \
        - timedelta(days=1)
    return start, end


def conduct_rows(events: Iterable[ConductEvent], bars: Iterable[ConductBar], start: date,
                 end: date, offset_minutes: int) -> list[ConductRow]:
    """Per expert, what happened in [start, end] (local days) and the bars overlapping it;
    experts with nothing but attendance are left out (the report lists conduct, not
    attendance)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    evidence: dict[str, set[int]] = defaultdict(set)
    for e in events:
        if start <= local_day(e.at, offset_minutes) <= end:
            counts[e.expert_id][e.kind] += 1
            if e.kind != "signed_in":
                evidence[e.expert_id].update(e.evidence)
    in_force: dict[str, list[ConductBar]] = defaultdict(list)
    for b in bars:
        if b.start <= end and start <= b.end:
            in_force[b.expert_id].append(b)
            evidence[b.expert_id].update(b.evidence)
            if b.kind == "sanction":
                counts[b.expert_id]["sanction"] += 1
    rows = []
    for expert_id in sorted(set(counts) | set(in_force)):
        c = counts.get(expert_id, Counter())
        if not in_force.get(expert_id) and not any(c[k] for k in EVENT_KINDS if k != "signed_in"):
            continue
        rows.append(ConductRow(expert_id, {k: c[k] for k in EVENT_KINDS},
                               tuple(in_force.get(expert_id, ())),
                               tuple(sorted(evidence[expert_id]))))
    return rows


def merge_events(held: Sequence[ConductEvent], new: Iterable[ConductEvent]
                 ) -> list[ConductEvent]:
    """An expert's events with the newly followed ones. An event resting on an entry at or
    before the last one already held is a second reading of the same stretch of trail, and
    is dropped: following twice changes nothing."""
    seen = max((max(e.evidence, default=0) for e in held), default=0)
    return [*held, *(e for e in new if max(e.evidence, default=0) > seen)]


def follow_bars(held_bars: Iterable[ConductBar], events: Mapping[str, Sequence[ConductEvent]],
                sanctions: Iterable[Sanction], rules: ConductRules, offset_minutes: int
                ) -> list[ConductBar]:
    """Every bar in force after following: the bars of the experts in `events` (each with all
    of its events) derived again, everyone else's kept as they were. A bar rests on one
    expert's events alone, so this equals deriving every bar from the whole trail."""
    affected = set(events)
    bars = [b for b in held_bars if b.expert_id not in affected]
    bars += bars_from_events([e for evs in events.values() for e in evs],
                             [s for s in sanctions if s.expert_id in affected],
                             rules, offset_minutes)
    bars.sort(key=lambda b: (b.expert_id, b.start, b.kind, b.evidence))
    return bars
