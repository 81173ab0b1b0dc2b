"""The consoles' derived views as pure functions: the exceptions queue, use by city, alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from evalgrid_wire.v1 import operator_pb2
from tui_testkit import START, sample_board, sample_grid, with_state

from evalgrid.wire import to_timestamp
from tui.audit_lines import alarming, phrase
from tui.operator_client import Flagged, GridView, SeatRow, SeedWaitRow, grid_from_wire
from tui.operator_model import city_use, exceptions_queue, matches, project_lines
from tui.site_alerts import board_alerts
from tui.states import hhmm

P1, P2 = "P20260302-0001", "P20260302-0002"


def kinds(view: GridView) -> list[tuple[str, str, str, bool]]:
    return [(i.kind, i.session_id or i.workstation_id, i.action, i.open)
            for i in exceptions_queue(view)]


def test_the_sample_queue_orders_draws_first_then_open_then_history() -> None:
    assert kinds(sample_grid()) == [
        ("no_show", "ses-0000000000000002", "no_show", True),
        ("fault", "ses-0000000000000007", "leave", True),
        ("decline", "ses-0000000000000004", "", False),
        ("late", "ses-0000000000000003", "", False),
    ]


def test_no_show_needs_an_open_window_and_a_started_evaluation() -> None:
    before = sample_grid(now=START - timedelta(minutes=1))
    assert "no_show" not in [k[0] for k in kinds(before)]
    # Drawn but not started, past its window start: no no-show yet (the rules need evaluating).
    view = sample_grid(now=START + timedelta(hours=6))
    assert [k for k in kinds(view) if k[1] == "ses-0000000000000008"] == []


def test_a_seat_at_an_offline_site_and_a_fault_during_evaluation() -> None:
    view = sample_grid()
    sites = list(view.sites)
    sites[1] = replace(sites[1], online=False,
                       flagged=(Flagged("S0002-V1-R01-W03", "fault", "smoke"),))
    found = kinds(replace(view, sites=tuple(sites)))
    assert ("site_offline", "ses-0000000000000002", "no_show", True) in found
    assert ("site_offline", "ses-0000000000000008", "leave", True) in found
    # Signed in on a workstation that failed: open, but no redraw (resume within 4 h).
    assert ("fault", "ses-0000000000000006", "", True) in found


def test_a_fault_without_a_seat_and_a_short_committee() -> None:
    view = sample_grid()
    sites = list(view.sites)
    sites[1] = replace(sites[1], flagged=(Flagged("S0002-V9-R01-W09", "offline"),))
    seats = tuple(replace(s, status="declined") if s.session_id.endswith("5") else s
                  for s in view.seats)
    found = kinds(replace(view, sites=tuple(sites), seats=seats))
    assert ("fault", "S0002-V9-R01-W09", "", True) in found
    decline = [i for i in exceptions_queue(replace(view, seats=seats)) if i.kind == "decline"]
    assert {i.detail for i in decline} == {"committee short by 1"}
    assert all(i.open for i in decline)


def test_use_by_city_counts_an_offline_site_as_offline() -> None:
    rows = {c.city: c for c in city_use(sample_grid())}
    assert (rows["Hangzhou"].in_use, rows["Hangzhou"].fault) == (2, 1)
    assert (rows["Wenzhou"].online, rows["Wenzhou"].offline) == (0, 2)


def test_project_lines_count_members_draws_and_open_issues() -> None:
    view = sample_grid()
    lines = {line.project.project_id: line for line in
             project_lines(view, exceptions_queue(view))}
    assert (lines[P1].seated, lines[P1].draws, lines[P1].issues) == (5, 2, 1)
    assert (lines[P2].seated, lines[P2].draws, lines[P2].issues) == (2, 1, 1)


def test_search_is_a_case_insensitive_substring() -> None:
    assert matches("", "anything")
    assert matches("wenz", "S0003", "Wenzhou")
    assert not matches("S0004", "S0003", "Wenzhou")


def test_late_sign_in_is_after_fifteen_minutes() -> None:
    seat = SeatRow(P1, "ses-x", "exp-x", "signed_in", "S0001", "S0001-V1-R01-W01",
                   signed_in_at=START + timedelta(minutes=15))
    view = replace(sample_grid(), seats=(seat,))
    assert [i for i in exceptions_queue(view) if i.kind == "late"] == []
    view = replace(view, seats=(replace(seat, signed_in_at=START + timedelta(minutes=16)),))
    assert [i.detail for i in exceptions_queue(view) if i.kind == "late"] == [
        "signed in 09:16, 16 min late"]


def test_board_alerts() -> None:
    board = sample_board()
    first = board_alerts(None, board)
    assert [a.text for a in first] == ["S0001-V1-R02-W02 (Room 302) is marked faulty: no power"]
    assert board_alerts(board, board) == []
    changed = with_state(with_state(board, "S0001-V1-R02-W02", "free"),
                         "S0001-V1-R01-W02", "signed_in")
    assert [(a.level, a.text) for a in board_alerts(board, changed)] == [
        ("info", "expert signed in at S0001-V1-R01-W02 (Room 301)"),
        ("ok", "S0001-V1-R02-W02 (Room 302) back in service"),
    ]
    down = replace(board, coordinator_connected=False)
    assert board_alerts(board, down)[0].level == "error"
    assert board_alerts(down, board)[0].text == "coordinator link restored"
    assert board_alerts(None, down)[0].level == "error"


def test_a_member_is_awaited_for_15_minutes_then_a_no_show() -> None:
    early = kinds(sample_grid(now=START + timedelta(minutes=5)))
    assert ("awaited", "ses-0000000000000002", "", False) in early
    assert "no_show" not in [k[0] for k in early]
    late = kinds(sample_grid(now=START + timedelta(minutes=16)))
    assert ("no_show", "ses-0000000000000002", "no_show", True) in late


def test_tenderer_representatives_do_not_make_a_committee_short() -> None:
    """Committee of 5 with one tenderer representative: 4 drawn seats, all there, none short.

    The same seats counted against all 5 would say "committee short by 1" (the old bug)."""
    view = sample_grid()
    projects = tuple(replace(p, committee_size=6, tenderer_reps=1) if p.project_id == P1
                     else p for p in view.projects)
    declines = [i for i in exceptions_queue(replace(view, projects=projects))
                if i.kind == "decline"]
    assert [(i.detail, i.open) for i in declines] == [("redrawn", False)]
    line = next(x for x in project_lines(replace(view, projects=projects), [])
                if x.project.project_id == P1)
    assert (line.seated, line.project.drawn_seats) == (5, 5)
    # Without the representative the same committee is one short, and the row says so.
    bigger = tuple(replace(p, committee_size=6) if p.project_id == P1 else p
                   for p in view.projects)
    declines = [i for i in exceptions_queue(replace(view, projects=bigger))
                if i.kind == "decline"]
    assert [(i.detail, i.open) for i in declines] == [("committee short by 1", True)]


def test_a_day_waiting_for_the_seed_share_comes_off_the_wire_into_the_queue() -> None:
    snapshot = operator_pb2.GridSnapshot(status=operator_pb2.StatusReply(
        now=to_timestamp(START)))
    snapshot.seed_waits.add(day="2026-03-03", state="awaiting",
                            fallback_at=to_timestamp(START + timedelta(minutes=30)))
    view = grid_from_wire(snapshot)
    assert view.seed_waits == (SeedWaitRow("2026-03-03", "awaiting",
                                           START + timedelta(minutes=30)),)
    (issue,) = exceptions_queue(view)
    assert (issue.kind, issue.open, issue.action) == ("seed wait", True, "")
    assert issue.detail == f"03-03: supervisor's share not committed; fallback " \
        f"{hhmm(START + timedelta(minutes=30))}"


def test_a_seed_fallback_reads_as_words_and_alarms() -> None:
    assert phrase("seed.fallback") == "day seed without supervisor" and alarming("seed.fallback")
    assert phrase("seed.fixed") == "day seed fixed" and not alarming("seed.fixed")
