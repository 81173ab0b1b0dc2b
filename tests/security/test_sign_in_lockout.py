"""One-time codes resist guessing: wrong tries run out per seat, workstation and desk.

The rules on their own (`evalgrid.lockout`), then on the in-process grid: five wrong codes at a
booth lock the seat and the workstation (FAILED_PRECONDITION, saying until when), even the right
code is refused while locked, every attempt is audited without the code or the ID number, an
operator lifts the lock (audited, with a reason), and a lock also ends by itself after its time.
The desk's check-in counts wrong codes against the expert's seat the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from grid_fixture import Grid, focus_projects, start_grid
from hypothesis import given, settings
from hypothesis import strategies as st

from evalgrid.ids import request_id
from evalgrid.lockout import (
    LockoutPolicy,
    ScopeState,
    desk_scope,
    record_failure,
    session_scope,
    unlock_scopes,
    workstation_scope,
)
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.booth_terminal import BoothTerminal

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
POLICY = LockoutPolicy()

# --- the rules ---------------------------------------------------------------------------------


def test_the_fifth_wrong_code_in_the_window_locks_for_lock_for() -> None:
    state = ScopeState()
    for i in range(4):
        state = record_failure(state, "session:s", T0 + timedelta(minutes=i), POLICY)
        assert state.locked(T0 + timedelta(minutes=i)) is None
    state = record_failure(state, "session:s", T0 + timedelta(minutes=4), POLICY)
    until = T0 + timedelta(minutes=4) + POLICY.lock_for
    assert state.locked(until - timedelta(seconds=1)) == until
    assert state.locked(until) is None  # opens by itself
    # A refused try while locked does not extend the lock.
    assert record_failure(state, "session:s", until - timedelta(minutes=1), POLICY) == state
    assert ScopeState.from_json(state.to_json()) == state


def test_failures_older_than_the_window_are_forgotten() -> None:
    state = ScopeState()
    for i in range(10):  # one wrong try every 4 minutes: never 5 within 15 minutes
        state = record_failure(state, "session:s", T0 + timedelta(minutes=4 * i), POLICY)
        assert state.locked_until is None
        assert len(state.failures) <= 4


def test_the_desk_tolerates_more_and_unlocks_name_their_scopes() -> None:
    state = ScopeState()
    for i in range(POLICY.desk_max_failures - 1):
        state = record_failure(state, "desk:S1", T0 + timedelta(seconds=i), POLICY)
    assert state.locked_until is None
    assert record_failure(state, "desk:S1", T0 + timedelta(minutes=1), POLICY).locked_until
    assert unlock_scopes("S1", "W1", "sess-1") == [workstation_scope("S1", "W1"),
                                                  session_scope("sess-1")]
    assert unlock_scopes("S1", "", "") == [desk_scope("S1")]
    with pytest.raises(ValueError, match="max_failures"):
        LockoutPolicy(max_failures=0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3 * 3600), max_size=40))
def test_a_lock_engages_exactly_at_the_limit_within_a_window(offsets: list[int]) -> None:
    """Against the rule as stated: at each wrong try made while open, the scope locks iff it
    is the limit-th try counted since the last lock within the window ending at that try."""
    state = ScopeState()
    counted: list[datetime] = []  # tries made while open, since the last lock
    for offset in sorted(offsets):
        now = T0 + timedelta(seconds=offset)
        if state.locked(now) is not None:
            assert record_failure(state, "session:s", now, POLICY) == state
            continue
        counted.append(now)
        state = record_failure(state, "session:s", now, POLICY)
        in_window = [t for t in counted if now - t < POLICY.window]
        if len(in_window) >= POLICY.max_failures:
            assert state.locked(now) == now + POLICY.lock_for
            counted = []
        else:
            assert state.locked(now) is None


# --- on the grid ------------------------------------------------------------------------------

ON_GRID = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def evaluating() -> AsyncIterator[tuple[Grid, list[dict[str, str]]]]:
    """A grid with one project under evaluation; its accepted notices."""
    async with start_grid(seed=23) as grid:
        project = focus_projects(grid.province)[0]
        await grid.register(project)
        _, notices = await grid.draw(project.id)
        for notice in notices:
            assert await grid.reply(notice["notice_id"], True) == "accepted"
        await grid.advance_to(project.window.start)
        assert await grid.start(project.id) == "evaluating"
        yield grid, notices


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _head(grid: Grid) -> int:
    return int((await grid.operator.Watch(operator_pb2.WatchRequest(tail=1)).read()).id)


async def _audit_since(grid: Grid, after: int) -> list[operator_pb2.Event]:
    head = await _head(grid)
    events = []
    call = grid.operator.Watch(operator_pb2.WatchRequest(after_id=str(after)))
    async for event in call:
        events.append(event)
        if int(event.id) >= head:
            break
    call.cancel()
    return events


async def _booth_for(grid: Grid, notice: dict[str, str]) -> tuple[BoothTerminal, str]:
    site = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    checked = await grid.desk(site).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site, checked.workstation_id)
    await booth.enrol()
    return booth, site


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**len(code):0{len(code)}d}"


@ON_GRID
async def test_five_wrong_codes_lock_the_seat_until_an_operator_unlocks(
        evaluating: tuple[Grid, list[dict[str, str]]]) -> None:
    grid, notices = evaluating
    notice = notices[0]
    expert = grid.experts[notice["expert_id"]]
    booth, site = await _booth_for(grid, notice)
    start = await _head(grid)
    for attempt in range(1, POLICY.max_failures + 1):
        error = await _refused(booth.sign_in(expert.id_number, _wrong(notice["code"])))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, attempt
    # Locked now: even the right code is refused, saying why and until when.
    error = await _refused(booth.sign_in(expert.id_number, notice["code"]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "locked after 5 wrong attempts until" in (error.details() or "")
    assert "operator can unlock" in (error.details() or "")

    events = await _audit_since(grid, start)
    refused = [json.loads(e.detail_json) for e in events if e.kind == "signin.refused"]
    assert len(refused) == POLICY.max_failures + 1  # every attempt, the locked one too
    assert refused[-1]["reason"] == "locked"
    assert [e.kind for e in events].count("signin.locked") == 2  # the seat and the workstation
    for event in events:  # no code, no ID number on the audit trail
        assert notice["code"] not in event.detail_json
        assert _wrong(notice["code"]) not in event.detail_json
        assert expert.id_number not in event.detail_json

    # An operator unlocks it: a reason is required, the act is audited.
    session = booth.session_id or json.loads(
        next(e for e in events if e.kind == "signin.locked").detail_json)["session"]
    ws = booth.workstation_id
    error = await _refused(grid.operator.UnlockSignIn(operator_pb2.UnlockSignInRequest(
        request_id=request_id(), site_id=site, workstation_id=ws, session_id=session),
        timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in str(error.details())
    unlocked = await grid.operator.UnlockSignIn(operator_pb2.UnlockSignInRequest(
        request_id=request_id(), site_id=site, workstation_id=ws, session_id=session,
        reason="identity checked in person at the desk"), timeout=UNARY_DEADLINE_S)
    assert set(unlocked.unlocked) == {session_scope(session), workstation_scope(site, ws)}
    signed = await booth.sign_in(expert.id_number, notice["code"])
    assert signed.session_id == session
    events = await _audit_since(grid, start)
    unlock = next(json.loads(e.detail_json) for e in events if e.kind == "signin.unlocked")
    assert unlock["by"].startswith("operator:") and unlock["reason"].startswith("identity")
    assert "expert.signed_in" in [e.kind for e in events]
    await booth.close()


@ON_GRID
async def test_a_lock_opens_by_itself_after_its_time(
        evaluating: tuple[Grid, list[dict[str, str]]]) -> None:
    grid, notices = evaluating
    notice = notices[1]
    expert = grid.experts[notice["expert_id"]]
    booth, _ = await _booth_for(grid, notice)
    for _ in range(POLICY.max_failures):
        await _refused(booth.sign_in(expert.id_number, _wrong(notice["code"])))
    error = await _refused(booth.sign_in(expert.id_number, notice["code"]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    now = (await grid.operator.Status(operator_pb2.StatusRequest(),
                                      timeout=UNARY_DEADLINE_S)).now.ToDatetime(tzinfo=UTC)
    await grid.advance_to(now + POLICY.lock_for + timedelta(seconds=1))
    assert (await booth.sign_in(expert.id_number, notice["code"])).session_id
    await booth.close()


@ON_GRID
async def test_wrong_codes_at_the_desk_lock_that_seat(
        evaluating: tuple[Grid, list[dict[str, str]]]) -> None:
    grid, notices = evaluating
    notice = notices[2]
    expert = grid.experts[notice["expert_id"]]
    site = grid.site_of_venue(notice["venue_id"])
    desk = grid.desk(site)
    start = await _head(grid)

    def check_in(code: str) -> object:
        return desk.CheckIn(booth_pb2.DeskCheckInRequest(
            request_id=request_id(), id_number=expert.id_number, code=code),
            timeout=UNARY_DEADLINE_S)

    for _ in range(POLICY.max_failures):
        error = await _refused(check_in(_wrong(notice["code"])))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await _refused(check_in(notice["code"]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "sign-in for this seat is locked" in (error.details() or "")
    events = await _audit_since(grid, start)
    assert [e.kind for e in events].count("checkin.refused") == POLICY.max_failures + 1
    locked = json.loads(next(e for e in events if e.kind == "checkin.locked").detail_json)
    session = locked["scope"].removeprefix("session:")
    assert all(expert.id_number not in e.detail_json for e in events)
    unlocked = await grid.operator.UnlockSignIn(operator_pb2.UnlockSignInRequest(
        request_id=request_id(), site_id=site, session_id=session,
        reason="expert identified in person"), timeout=UNARY_DEADLINE_S)
    assert list(unlocked.unlocked) == [session_scope(session)]
    assert (await check_in(notice["code"])).workstation_id  # type: ignore[attr-defined]
