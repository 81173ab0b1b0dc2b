"""The day plan's pure parts and its shell without Redis: order, seeds, screening job, bookings.

The central check: each draw of a plan gets exactly the inputs a single draw would get if it
ran after the plan's earlier draws had been booked (same input digest), so batch screening and
the incremental re-checks change nothing a single draw would decide.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from domain_factories import RULES, expert, local_window, project, simple_province

from coordinator.batch.executor import InProcessExecutor, ProcessExecutor, RayExecutor
from coordinator.day_plan import (
    PlannedDraw,
    coordinator_executor,
    plan_day,
    resolve_executor,
)
from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.day_plan import (
    chunked,
    plan_order,
    project_seed,
    projects_digest,
    projects_of_day,
)
from coordinator.domain.draw.archive import verify_replay
from coordinator.domain.eligibility import tied_rows_chunk
from coordinator.domain.model import Province, Sitting, Window
from coordinator.domain.violations import find_violations
from coordinator.drawing import DrawDesk, DrawRefused
from coordinator.province.generator import generate_province

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
PLAN_SEED = hashlib.sha256(b"plan seed for tests").digest()


def desk_of(province: Province) -> DrawDesk:
    desk = DrawDesk(RULES)
    desk.load(province, [])
    return desk


def generated(**size: int) -> Province:
    params = {"cities": 3, "sites": 6, "workstations": 120, "experts": 1200, "companies": 200,
              "projects": 24}
    params.update(size)
    return generate_province(seed=5, day=DAY, **params)


# --- seeds and order ---------------------------------------------------------------------------


def test_project_seed_is_hmac_sha256_of_the_project_id_under_the_plan_seed() -> None:
    expected = hmac.new(PLAN_SEED, b"P-1", hashlib.sha256).digest()
    assert project_seed(PLAN_SEED, "P-1") == expected
    assert project_seed(PLAN_SEED, "P-2") != expected
    assert project_seed(bytes(32), "P-1") != expected
    with pytest.raises(ValueError, match="plan_seed"):
        project_seed(b"short", "P-1")


def test_plan_order_is_window_start_then_id() -> None:
    early, late = local_window(DAY, 9, 3), local_window(DAY, 14, 3)
    projects = [project("B", window=late), project("C", window=early),
                project("A", window=late), project("D", window=early)]
    assert [p.id for p in plan_order(projects)] == ["C", "D", "A", "B"]


def test_projects_of_day_use_the_local_calendar_day() -> None:
    # 07:00 in UTC+8 on DAY is 23:00 UTC the day before: it belongs to DAY locally.
    dawn = Window(datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 2, 2, tzinfo=UTC))
    late = Window(datetime(2026, 3, 2, 16, tzinfo=UTC), datetime(2026, 3, 2, 18, tzinfo=UTC))
    chosen = projects_of_day([project("A", window=dawn), project("B", window=late)], DAY, 480)
    assert [p.id for p in chosen] == ["A"]  # B starts at 00:00 local on the next day
    assert [p.id for p in projects_of_day([project("B", window=late)], DAY, 0)] == ["B"]


def test_projects_digest_depends_on_the_ids_and_their_order() -> None:
    assert projects_digest(["A", "B"]) != projects_digest(["B", "A"])
    assert projects_digest(["A", "B"]) == hashlib.sha256(b"A\nB").hexdigest()


def test_chunked_keeps_every_job_once_in_order() -> None:
    prov = generated(projects=10)
    jobs = list(prov.projects)
    for n in (1, 3, 4, 10, 50):
        parts = chunked(jobs, n)
        assert len(parts) <= n
        assert [j for part in parts for j in part] == jobs
    assert chunked([], 4) == []


# --- the screening job -------------------------------------------------------------------------


def test_the_batch_party_rule_is_the_day_screens_own() -> None:
    prov = generated(projects=12)
    desk = desk_of(prov)
    day = desk.day_screen(NOW.date())
    parts = chunked([p.parties for p in prov.projects], 5)
    batched = [rows for part in parts for rows in tied_rows_chunk(day.party, part)]
    rows = day.snapshot.expert_rows()
    index = ConflictIndex.build(prov.experts, prov.companies, RULES)
    some = 0
    for proj, got in zip(prov.projects, batched, strict=True):
        tied = index.ineligible_ids(proj, index.companies, NOW.date())
        assert got.tolist() == sorted(rows[e] for e in tied if e in rows)
        some += len(got)
        party = dict(day.rule_masks(proj, "C0"))["party"]
        assert sorted(party.nonzero()[0].tolist()) == got.tolist()
    assert some > 0


# --- plan_day: the same inputs as single draws in plan order -----------------------------------


def _counts(reason: str) -> tuple[str, dict[str, int]]:
    head, _, rest = reason.partition("(")
    return head, {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", rest)}


def assert_plan_matches_single_draws(province: Province, plan_draws: tuple[PlannedDraw, ...],
                                     down: frozenset[str] = frozenset()) -> None:
    reference = desk_of(province)
    for planned in plan_draws:
        proj = planned.project
        try:
            prepared = reference.prepare(proj, NOW, down)
        except DrawRefused as exc:
            assert planned.outcome.outcome == "refused", proj.id
            assert _counts(planned.outcome.reason) == _counts(str(exc)), proj.id
            continue
        assert planned.outcome.outcome in ("drawn", "starved"), (proj.id, planned.outcome)
        assert planned.prepared is not None
        assert prepared.commitment.input_digest == planned.outcome.input_digest, proj.id
        if planned.result is not None:
            reference.book(proj, [(s.expert_id, s.workstation_id)
                                  for s in planned.result.seats])


@pytest.mark.parametrize(("size", "outcomes"), [
    ({}, {"drawn"}),
    ({"workstations": 60, "projects": 40}, {"drawn", "starved"}),
    ({"workstations": 400, "experts": 120, "projects": 100}, {"drawn", "starved", "refused"}),
])
def test_each_draw_sees_what_a_single_draw_after_the_earlier_ones_would(
        size: dict[str, int], outcomes: set[str]) -> None:
    province = generated(**size)
    desk = desk_of(province)
    plan = plan_day(desk, list(province.projects), PLAN_SEED, NOW, InProcessExecutor())
    assert {o.outcome for o in plan.outcomes} == outcomes
    assert [d.project.id for d in plan.draws] == [p.id for p in plan_order(province.projects)]
    assert_plan_matches_single_draws(province, plan.draws)


def test_down_workstations_are_never_offered_and_a_venue_less_project_is_refused() -> None:
    province = generated(projects=6)
    desk = desk_of(province)
    everything = frozenset(ws.id for s in province.sites for v in s.venues
                           for ws in v.workstations)
    plan = plan_day(desk, list(province.projects), PLAN_SEED, NOW, InProcessExecutor(),
                    everything)
    assert {o.outcome for o in plan.outcomes} == {"refused"}
    assert all("no guest venue" in o.reason for o in plan.outcomes)
    some = frozenset(sorted(everything)[::3])
    plan = plan_day(desk, list(province.projects), PLAN_SEED, NOW, InProcessExecutor(), some)
    for planned in plan.draws:
        assert planned.result is not None
        assert not {s.workstation_id for s in planned.result.seats} & some
    assert_plan_matches_single_draws(province, plan.draws, some)


def test_a_plan_never_double_books_and_breaks_no_rule() -> None:
    province = generated(workstations=90, projects=40)
    plan = plan_day(desk_of(province), list(province.projects), PLAN_SEED, NOW,
                    InProcessExecutor())
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)
    allocations = []
    for planned in plan.draws:
        if planned.result is None:
            continue
        w = planned.project.window
        for seat in planned.result.seats:
            for resource in (f"ws:{seat.workstation_id}", f"ex:{seat.expert_id}"):
                assert all(not (s < w.end_ts and w.start_ts < e) for s, e in held[resource]), \
                    resource
                held[resource].append((w.start_ts, w.end_ts))
        allocations.append((planned.project.id, [(s.expert_id, s.venue_id, s.workstation_id)
                                                 for s in planned.result.seats]))
    assert len(allocations) > 10
    assert find_violations(province, allocations, [], RULES, NOW.date()) == []


def test_every_draw_of_a_plan_replays_alone_from_its_own_archive() -> None:
    province = generated(projects=8)
    plan = plan_day(desk_of(province), list(province.projects), PLAN_SEED, NOW,
                    InProcessExecutor())
    for planned in plan.draws:
        assert planned.result is not None
        archive = json.loads(planned.result.archive_text)
        assert archive["seed"] == project_seed(PLAN_SEED, planned.project.id).hex()
        snapshot = planned.result.snapshot
        assert snapshot is not None and archive["inputs"]["snapshot"] == snapshot.digest()
        assert verify_replay(archive) != []  # names the snapshot, does not carry it
        assert verify_replay(archive, {snapshot.digest(): snapshot}) == []


def test_the_desk_is_left_untouched_and_the_sink_takes_each_draw_in_order() -> None:
    province = generated(projects=10)
    desk = desk_of(province)
    proj = province.projects[0]
    desk.book(proj, [("E-none", "W-none")])
    before = (dict(desk.ws_busy), {k: list(v) for k, v in desk.sittings.items()})
    seen: list[str] = []
    plan = plan_day(desk, list(province.projects), PLAN_SEED, NOW, InProcessExecutor(),
                    sink=lambda d: seen.append(d.project.id))
    assert (dict(desk.ws_busy), {k: list(v) for k, v in desk.sittings.items()}) == before
    assert seen == [o.project_id for o in plan.outcomes] and plan.draws == ()

    def refuse(planned: PlannedDraw) -> None:
        if len(seen) >= 13:
            raise RuntimeError("placement failed")
        seen.append(planned.project.id)

    with pytest.raises(RuntimeError, match="placement failed"):
        plan_day(desk, list(province.projects), PLAN_SEED, NOW, InProcessExecutor(),
                 sink=refuse)
    assert len(seen) == 13


def test_a_fork_shares_the_registry_and_copies_the_booking_picture() -> None:
    province = generated(projects=4)
    desk = desk_of(province)
    fork = desk.fork()
    assert fork.pool is desk.pool and fork.index is desk.index
    fork.book(province.projects[0], [("E1", "W1")])
    assert "W1" not in desk.ws_busy and "E1" not in desk.sittings
    assert [p.id for p in fork.projects()] == [p.id for p in desk.projects()]


def test_the_desk_keeps_one_day_screen_current_on_book_release_and_move() -> None:
    province = generated(projects=4)
    desk = desk_of(province)
    proj = province.projects[0]
    host = next(s.city for s in province.sites if s.id == proj.host_site_id)
    day = desk.day_screen(NOW.date())
    assert desk.day_screen(NOW.date()) is day  # one per day, kept
    before = day.inputs(proj, host)
    prepared = desk.prepare(proj, NOW)
    placed = desk.run(prepared)
    assert not isinstance(placed, str)
    seats = [(s.expert_id, s.workstation_id) for s in placed.seats]
    desk.book(proj, seats)
    booked = day.inputs(proj, host)
    assert booked.barred != before.barred and booked.unavailable != before.unavailable
    member, ws = seats[0]
    assert "overlap" in day.why(proj, host, member)  # which mask hit, by its reason code
    spare = next(w.id for s in province.sites for v in s.venues for w in v.workstations
                 if w.id not in {x for _, x in seats} and "guest" in s.roles
                 and s.city not in (proj.city, host))
    desk.move_workstation(proj, ws, spare)
    rows = day.snapshot.workstation_rows()
    moved = day.unavailable(proj, host)
    assert not moved[rows[ws]] and moved[rows[spare]]
    for e, w in [(member, spare), *seats[1:]]:
        desk.unbook(proj, e, w)
    after = day.inputs(proj, host)
    assert (after.barred, after.unavailable) == (before.barred, before.unavailable)
    # a sitting kept on record without a booking (a dissolved committee) bars by cool-off
    later = replace(proj, id="P-later", window=Window(proj.window.start + timedelta(days=1),
                                                      proj.window.end + timedelta(days=1)))
    desk.add_sitting(Sitting(member, proj.id, proj.tenderer_id, proj.window))
    assert "cool_off" in day.why(later, host, member)
    desk.refresh_registry(province, 2)  # a registry change: the next draw builds a new screen
    assert desk.day_screen(NOW.date()) is not day


def test_progress_names_each_phase() -> None:
    province = generated(projects=5)
    events: list[tuple[str, int, int]] = []
    plan_day(desk_of(province), list(province.projects), PLAN_SEED, NOW, InProcessExecutor(),
             progress=lambda phase, done, total, _: events.append((phase, done, total)))
    assert events[0] == ("screening", 0, 5) and events[1] == ("screening", 5, 5)
    assert events[2:] == [("drawing", n, 5) for n in range(1, 6)]


def test_an_unknown_host_site_is_refused_by_name() -> None:
    prov, _ = simple_province()
    orphan = project("P9", host_site_id="NOWHERE")
    plan = plan_day(desk_of(prov), [orphan], PLAN_SEED, NOW, InProcessExecutor())
    assert plan.outcomes[0].outcome == "refused" and "NOWHERE" in plan.outcomes[0].reason


def test_a_plan_in_a_handmade_province_follows_the_rules() -> None:
    prov, proj = simple_province(n_per_city=4)
    second = project("P2", tenderer="T")  # same window and tenderer: nobody may sit twice
    prov = Province(sites=prov.sites, experts=(*prov.experts, expert("EC19", "C1")),
                    companies=prov.companies, projects=(proj, second))
    plan = plan_day(desk_of(prov), list(prov.projects), PLAN_SEED, NOW, InProcessExecutor())
    assert_plan_matches_single_draws(prov, plan.draws)
    drawn = [d for d in plan.draws if d.result is not None]
    assert len(drawn) == 2
    members = [s.expert_id for d in drawn for s in d.result.seats]  # type: ignore[union-attr]
    assert len(members) == len(set(members))


# --- the executor a request may use ----------------------------------------------------------


def test_the_coordinator_executor_setting_is_validated() -> None:
    assert coordinator_executor("local", None) == "local"
    assert coordinator_executor("local:4", None) == "local:4"
    assert coordinator_executor("ray:2", "auto") == "ray:auto"
    assert coordinator_executor("ray", "ray://head:10001") == "ray://head:10001"
    for executor, address, field in [("threads", None, "--executor"),
                                     ("local:0", None, "--executor"),
                                     ("local", "auto", "--ray-address"),
                                     ("ray", "http://x", "--ray-address")]:
        with pytest.raises(ValueError, match=field):
            coordinator_executor(executor, address)


def test_a_request_may_narrow_the_executor_but_never_point_it_elsewhere() -> None:
    assert isinstance(resolve_executor("local:4", ""), ProcessExecutor)
    assert isinstance(resolve_executor("local:4", "local"), InProcessExecutor)
    narrowed = resolve_executor("local:4", "local:2")
    assert isinstance(narrowed, ProcessExecutor) and narrowed.workers == 2
    ray = resolve_executor("ray:auto", "ray:3")
    assert isinstance(ray, RayExecutor) and ray.address == "auto" and ray.in_flight == 3
    local_ray = resolve_executor("ray:4", "ray:2")
    assert isinstance(local_ray, RayExecutor) and local_ray.in_flight == 2
    assert local_ray.num_cpus == 4  # Ray keeps the coordinator's size; the plan uses 2
    assert isinstance(resolve_executor("ray://head:1", "local"), InProcessExecutor)
    for own, asked in [("local", "local:2"), ("local:2", "local:3"), ("local:4", "ray:1"),
                       ("ray:2", "ray:3"), ("ray:auto", "ray://elsewhere:1"),
                       ("local", "ray:auto"), ("local", "threads"), ("ray:2", "local:1")]:
        with pytest.raises(ValueError, match="executor"):
            resolve_executor(own, asked)
