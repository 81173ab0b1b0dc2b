"""Offline sign-in counts wrong codes by the coordinator's own rule (`evalgrid.lockout`).

The agent, checking seat passes itself while its link is down, locks a seat after the policy's
`max_failures` wrong tries within its window, says until when (+08), and the lock opens by
itself after `lock_for`: the same decision the coordinator makes, from the same function.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import grpc
import pytest
from evalgrid_wire.v1 import site_link_pb2, site_link_pb2_grpc

from evalgrid.lockout import LockoutPolicy
from evalgrid.seat_pass import seal
from site_agent.booths import BoothError, SiteBooths
from site_agent.offline_journal import OfflineJournal
from site_agent.offline_mode import OfflineMode

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _mode(clock: _Clock, policy: LockoutPolicy) -> OfflineMode:
    booths = SiteBooths("S1", {}, now=clock)
    mode = OfflineMode(booths, OfflineJournal(None),
                       link=cast(site_link_pb2_grpc.SiteLinkStub, None),
                       connected=asyncio.Event(), changed=lambda: None, now=clock,
                       lockout=policy)
    payload = site_link_pb2.SeatPass(expert_ref="X1").SerializeToString()
    mode.passes["sess-1"] = seal(payload, session_id="sess-1", id_number="110101199001011234",
                                 code="123456", cost=10)
    return mode


async def _try(mode: OfflineMode, code: str) -> str:
    with pytest.raises(BoothError) as refused:
        await mode._sign_in_offline("ws-1", "sess-1", "110101199001011234", code, "rid")
    return str(refused.value)


async def test_the_seat_locks_after_the_policys_wrong_tries_and_opens_by_itself() -> None:
    clock = _Clock()
    policy = LockoutPolicy(max_failures=3, lock_for=timedelta(minutes=30))
    mode = _mode(clock, policy)
    for _ in range(policy.max_failures):
        assert "does not match" in await _try(mode, "000000")
    locked = await _try(mode, "123456")  # even the right code, while locked
    assert "sign-in for this seat is locked after 3 wrong attempts until 2026-03-02 09:30 +08:00"\
        in locked
    assert "coordinator" in locked
    clock.now = T0 + policy.lock_for
    assert "does not match" in await _try(mode, "000001")  # the lock ended: checked again


async def test_wrong_tries_outside_the_window_do_not_lock() -> None:
    clock = _Clock()
    policy = LockoutPolicy(max_failures=2, window=timedelta(minutes=15))
    mode = _mode(clock, policy)
    for i in range(4):
        clock.now = T0 + timedelta(minutes=20 * i)
        assert "does not match" in await _try(mode, "000000")


# --- a refusal the coordinator's outage caused counts toward no lockout ---

ID = "110101199001011234"


class _GoneLink:
    """The coordinator as an outage leaves it: every call UNAVAILABLE, and none counted."""

    def __init__(self) -> None:
        self.calls = 0

    async def SignIn(self, request: object, timeout: float) -> object:
        self.calls += 1
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                   grpc.aio.Metadata(), "the coordinator's store is away")


def _reserved(mode: OfflineMode, session_id: str, workstation_id: str,
              start: datetime = T0) -> None:
    from site_agent.booths import Booth, Reservation

    mode.booths.booths[workstation_id] = Booth(workstation_id, "R1", "V1", enrolled=True)
    mode.booths.reservations[session_id] = Reservation(
        session_id, workstation_id, start, start + timedelta(hours=3), 1)


async def test_a_sign_in_the_outage_refused_counts_toward_no_lockout() -> None:
    """Connected, but the coordinator answers UNAVAILABLE: a seat with its pass signs in
    offline; one without is refused for the outage; no try is counted anywhere."""
    clock = _Clock()
    policy = LockoutPolicy(max_failures=1)
    mode = _mode(clock, policy)
    link = _GoneLink()
    mode.link = cast(site_link_pb2_grpc.SiteLinkStub, link)
    mode.connected.set()
    _reserved(mode, "sess-1", "ws-1")
    _reserved(mode, "sess-2", "ws-2")  # its pass has not arrived
    for _ in range(policy.max_failures + 2):
        with pytest.raises(grpc.aio.AioRpcError):
            await mode.sign_in("ws-2", "sess-2", ID, "654321", "rid-2")
    assert mode._lockouts == {}
    mode.connected.clear()  # the link itself is down: refused here, for the missing pass
    for _ in range(policy.max_failures + 2):
        with pytest.raises(BoothError, match="pass has not arrived"):
            await mode.sign_in("ws-2", "sess-2", ID, "654321", "rid-3")
    assert mode._lockouts == {}
    mode.connected.set()
    reply = await mode.sign_in("ws-1", "sess-1", ID, "123456", "rid-1")  # offline takes over
    assert reply.offline and reply.expert_ref == "X1" and link.calls == policy.max_failures + 3
    assert mode._lockouts == {}


async def test_a_desk_check_in_with_a_pass_missing_is_not_counted() -> None:
    """Offline, the desk checks the passes it holds; while a seat here has none (it comes at
    evaluation start, an outage may keep it away), a code no pass opens may be that seat's
    member: refused, not counted. Once every seat has its pass, wrong codes count again."""
    clock = _Clock()
    policy = LockoutPolicy(max_failures=2, desk_max_failures=2)
    mode = _mode(clock, policy)
    _reserved(mode, "sess-1", "ws-1")
    _reserved(mode, "sess-2", "ws-2")  # no pass yet
    for _ in range(policy.desk_max_failures + 1):
        with pytest.raises(BoothError, match="has no pass yet"):
            await mode.check_in(ID, "654321")
    assert mode._lockouts == {}
    assert await mode.check_in(ID, "123456") == "ws-1"  # the desk is not locked

    del mode.booths.reservations["sess-2"]  # every seat held here has its pass now
    for _ in range(policy.desk_max_failures):
        with pytest.raises(BoothError, match="no seat held here opens"):
            await mode.check_in(ID, "000000")
    with pytest.raises(BoothError, match="locked after 2 wrong attempts"):
        await mode.check_in(ID, "123456")


async def test_a_redrawn_member_at_an_offline_desk_is_told_and_not_counted() -> None:
    """The seat was released here (redrawn while the member was away) before the link went:
    its pass still opens with the member's true code, so the desk says what happened and
    counts nothing, as the coordinator's desk does."""
    clock = _Clock()
    policy = LockoutPolicy(desk_max_failures=1)
    mode = _mode(clock, policy)  # sess-1's pass, its reservation released
    _reserved(mode, "sess-2", "ws-2")
    mode.passes["sess-2"] = seal(site_link_pb2.SeatPass(expert_ref="X2").SerializeToString(),
                                 session_id="sess-2", id_number="110101199202021234",
                                 code="222222", cost=10)
    for _ in range(policy.desk_max_failures + 2):
        with pytest.raises(BoothError, match="was released"):
            await mode.check_in(ID, "123456")
    assert mode._lockouts == {}
    assert await mode.check_in("110101199202021234", "222222") == "ws-2"
    with pytest.raises(BoothError, match="no seat held here opens"):  # a wrong code counts
        await mode.check_in(ID, "000000")
    with pytest.raises(BoothError, match="locked after 1 wrong attempts"):
        await mode.check_in("110101199202021234", "222222")
