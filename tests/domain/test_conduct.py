"""Expert conduct: events read from audit entries, bars by the rules, applied by screening."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta

import pytest

from coordinator.domain.audit import AuditEntry, generate_signing_key, make_entry
from coordinator.domain.conduct import (
    ConductError,
    ConductEvent,
    Sanction,
    SeatLink,
    bars_from_events,
    conduct_rows,
    events_from_audit,
    follow_bars,
    merge_events,
    quarter_bounds,
)
from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.eligibility import DayScreen, PoolIndex
from coordinator.domain.model import ConductBar, Window
from coordinator.domain.rules import ConductRules, load_rules
from tests.domain.domain_factories import TODAY, simple_province

RULES = load_rules()
C = RULES.conduct
OFFSET = RULES.local_utc_offset_minutes
START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 local
WINDOWS = {"P1": Window(START, START + timedelta(hours=3)),
           "P2": Window(START + timedelta(days=40), START + timedelta(days=40, hours=3))}
SEATS = [SeatLink("E1", "P1", "ses-1", "ref-1"), SeatLink("E2", "P1", "ses-2", "ref-2"),
         SeatLink("E3", "P1", "ses-3", "ref-3"), SeatLink("E1", "P2", "ses-4", "ref-4")]


def _trail(*rows: tuple[datetime, str, str, dict[str, object]]) -> list[AuditEntry]:
    key = generate_signing_key()
    out: list[AuditEntry] = []
    for at, kind, subject, detail in rows:
        out.append(make_entry(out[-1] if out else None, at=at.isoformat().replace(
            "+00:00", "Z"), kind=kind, subject=subject, detail=detail, key=key))
    return out


def test_events_carry_the_expert_and_the_entries_they_rest_on() -> None:
    trail = _trail(
        (START - timedelta(hours=15), "seat.declined", "P1", {"session": "ses-3", "reason": "x"}),
        (START + timedelta(minutes=5), "expert.signed_in", "P1", {"session": "ses-2"}),
        (START + timedelta(minutes=40), "expert.signed_in", "P1", {"session": "ses-1"}),
        (START + timedelta(minutes=20), "seat.no_show", "P1", {"session": "ses-9"}),  # unknown
        (START + timedelta(hours=1), "sheet.returned", "P1", {"expert_ref": "ref-2",
                                                               "reason": "C1 empty"}),
        (START + timedelta(hours=2), "signin.locked", "S1", {"scope": "session:ses-2",
                                                            "locked_until": "later"}),
        (START + timedelta(hours=3), "evaluation.reported", "P1", {}),
        (WINDOWS["P2"].start - timedelta(hours=2), "seat.declined", "P2",
         {"session": "ses-4", "reason": "ill"}),
    )
    events = events_from_audit(trail, SEATS, WINDOWS, C, {"P1": ["ref-1", "ref-1", "ref-x"]})
    got = [(e.expert_id, e.kind, e.evidence) for e in events]
    assert got == [
        ("E3", "decline", (1,)),  # 15 h before: in time (rule: 12 h)
        ("E2", "signed_in", (2,)),  # 5 min: within the grace
        ("E1", "signed_in", (3,)), ("E1", "late_sign_in", (3,)),  # 40 min late
        ("E2", "sheet_returned", (5,)),
        ("E2", "lockout", (6,)),
        ("E1", "deviation_upheld", (7,)), ("E1", "deviation_upheld", (7,)),
        ("E1", "late_decline", (8,)),  # 2 h before the start
    ]


def _event(expert: str, kind: str, at: datetime, seq: int) -> ConductEvent:
    return ConductEvent(expert, kind, at, "P1", (seq,))


def test_a_no_show_cools_off_and_a_second_within_the_period_suspends() -> None:
    first, second = START, START + timedelta(days=100)
    bars = bars_from_events([_event("E1", "no_show", first, 10),
                             _event("E1", "no_show", second, 20)], [], C, OFFSET)
    kinds = [(b.kind, b.start, b.evidence) for b in bars]
    assert ("no_show_cool_off", date(2026, 11, 2), (10,)) in kinds
    assert ("no_show_suspension", second.date(), (10, 20)) in kinds
    suspension = next(b for b in bars if b.kind == "no_show_suspension")
    assert suspension.end - suspension.start >= timedelta(days=C.no_show_suspension_days)
    # Two no-shows further apart than the period: cool-offs only.
    apart = bars_from_events([_event("E1", "no_show", first, 1), _event(
        "E1", "no_show", first + timedelta(days=C.no_show_period_days + 1), 2)], [], C, OFFSET)
    assert {b.kind for b in apart} == {"no_show_cool_off"}


def test_late_decline_and_repeated_lateness() -> None:
    late = [_event("E2", "late_sign_in", START + timedelta(days=i), i) for i in range(5)]
    bars = bars_from_events([_event("E1", "late_decline", START, 1), *late,
                             _event("E3", "decline", START, 9)], [], C, OFFSET)
    assert [(b.expert_id, b.kind) for b in bars] == [
        ("E1", "late_decline_cool_off"), ("E2", "late_sign_in_cool_off")]
    assert bars[1].evidence == (0, 1, 2)  # the third late sign-in earns it; counting restarts
    lenient = ConductRules(no_show_cool_off_days=0, late_decline_cool_off_days=0)
    assert bars_from_events([_event("E1", "late_decline", START, 1),
                             _event("E1", "no_show", START, 2)], [], lenient, OFFSET) == []


def test_sanctions_are_validated_and_become_bars() -> None:
    with pytest.raises(ConductError, match="until"):
        Sanction("s1", "E1", date(2026, 12, 5), date(2026, 12, 1), "x", "op")
    with pytest.raises(ConductError, match="reason"):
        Sanction("s1", "E1", date(2026, 12, 1), date(2026, 12, 5), "  ", "op")
    s = Sanction("s1", "E1", date(2026, 12, 1), date(2026, 12, 5), "bribe offer", "op", (7,))
    (bar,) = bars_from_events([], [s], C, OFFSET)
    assert (bar.kind, bar.start, bar.end, bar.evidence) == (
        "sanction", date(2026, 12, 1), date(2026, 12, 5), (7,))
    rows = conduct_rows([], [bar], *quarter_bounds("2026Q4"), OFFSET)
    assert rows[0].counts["sanction"] == 1 and rows[0].evidence == (7,)


@pytest.mark.parametrize("bad", ["2026Q5", "26Q4", "2026-Q4x", "", "Q4", "2026Q0"])
def test_quarter_spelling(bad: str) -> None:
    with pytest.raises(ConductError, match="quarter"):
        quarter_bounds(bad)


def test_quarter_bounds() -> None:
    assert quarter_bounds("2026q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert quarter_bounds(" 2027Q1 ") == (date(2027, 1, 1), date(2027, 3, 31))


def test_rows_keep_the_quarter_and_leave_out_plain_attendance() -> None:
    events = [_event("E1", "signed_in", START, 1), _event("E2", "no_show", START, 2),
              _event("E3", "no_show", datetime(2026, 9, 30, 1, tzinfo=UTC), 3)]
    rows = conduct_rows(events, [], *quarter_bounds("2026Q4"), OFFSET)
    assert [(r.expert_id, r.counts["no_show"], r.evidence) for r in rows] == [("E2", 1, (2,))]


def test_screening_bars_the_expert_with_reason_conduct_while_the_bar_lasts() -> None:
    prov, proj = simple_province(4)
    pool = PoolIndex.build(prov.experts, RULES)
    index = ConflictIndex.build(prov.experts, prov.companies, RULES)
    target = prov.experts[0].id

    def run(today: date) -> tuple[bool, int]:
        day = DayScreen(pool, index, prov.sites, RULES, today)
        return not day.why(proj, "C0", target), day.reason_counts(proj, "C0")["conduct"]

    assert run(TODAY) == (True, 0)
    pool.set_conduct_bars([ConductBar(target, "no_show_cool_off", TODAY, TODAY
                                      + timedelta(days=30), "no-show (P0)", (5,))])
    assert run(TODAY) == (False, 1)
    # The day plan ships the pool to worker processes (pickled): the bars go with it.
    shipped = pickle.loads(pickle.dumps(pool))
    assert [r.code for r in shipped.day_reasons(RULES, TODAY)[target]] == ["conduct"]
    assert DayScreen(pool, index, prov.sites, RULES, TODAY).why(proj, "C0", target) \
        == ("conduct",)
    assert "no_show_cool_off" in pool.day_reasons(RULES, TODAY)[target][0].detail
    assert run(TODAY + timedelta(days=31)) == (True, 0)  # over
    assert run(TODAY - timedelta(days=1)) == (True, 0)  # not yet
    # The national-scale path (the day's snapshot) applies it too.
    day = DayScreen(pool, index, prov.sites, RULES, TODAY)
    assert target not in {c.expert_id for c in day.snapshot.candidates}
    pool.set_conduct_bars([])  # lifted
    assert run(TODAY) == (True, 0)
    pool.set_conduct_bars([ConductBar("nobody", "sanction", TODAY, TODAY, "x")])  # ignored
    assert run(TODAY) == (True, 0)


def test_following_in_stretches_gives_the_bars_of_the_whole_trail() -> None:
    """The follower derives again only the experts a stretch touches; at every cut of the
    trail, the bars equal those derived from the whole trail at once, and a stretch read
    twice (a rewound cursor) adds nothing."""
    trail = _trail(
        (START - timedelta(hours=2), "seat.declined", "P1", {"session": "ses-3", "reason": "x"}),
        (START + timedelta(minutes=5), "expert.signed_in", "P1", {"session": "ses-2"}),
        (START + timedelta(minutes=30), "seat.no_show", "P1", {"session": "ses-1"}),
        (START + timedelta(minutes=40), "expert.signed_in", "P1", {"session": "ses-2"}),
        (WINDOWS["P2"].start + timedelta(minutes=30), "seat.no_show", "P2",
         {"session": "ses-4"}),
    )
    sanctions = [Sanction("s1", "E2", date(2026, 12, 1), date(2026, 12, 9), "gifts", "op")]
    whole = bars_from_events(events_from_audit(trail, SEATS, WINDOWS, C), sanctions, C, OFFSET)
    assert {b.kind for b in whole} >= {"no_show_suspension", "late_decline_cool_off"}
    for cut in range(len(trail) + 1):
        held: dict[str, list[ConductEvent]] = {}
        bars: list[ConductBar] = []
        for stretch in (trail[:cut], trail[cut:], trail[max(0, cut - 2):]):  # last: again
            new = events_from_audit(stretch, SEATS, WINDOWS, C)
            touched = {e.expert_id for e in new}
            merged = {x: merge_events(held.get(x, []), [e for e in new if e.expert_id == x])
                      for x in touched}
            held.update(merged)
            bars = follow_bars(bars, merged, sanctions, C, OFFSET)
        assert bars == whole, cut
        assert sum(len(v) for v in held.values()) == len(
            events_from_audit(trail, SEATS, WINDOWS, C)), cut
