"""Offline sign-in counts wrong codes by the coordinator's own rule (`evalgrid.lockout`).

The agent, checking seat passes itself while its link is down, locks a seat after the policy's
`max_failures` wrong tries within its window, says until when (+08), and the lock opens by
itself after `lock_for`: the same decision the coordinator makes, from the same function.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

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
