"""The conduct follower in a real Redis: bars follow the trail from a cursor, exactly once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.conduct_records import SKIM_STORE_AFTER, ConductFollower
from coordinator.domain.audit import AuditEntry, generate_signing_key
from coordinator.domain.model import Window
from coordinator.domain.rules import load_rules
from coordinator.store.audit_log import AuditLog
from coordinator.store.conduct import ConductStore, events_key
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.layout import CONDUCT_FOLLOW
from evalgrid.clock import SimClock

RULES = load_rules()
DAY1 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 local
WINDOWS = {"P1": Window(DAY1, DAY1 + timedelta(hours=4)),
           "P2": Window(DAY1 + timedelta(days=1), DAY1 + timedelta(days=1, hours=4))}


@dataclass(frozen=True)
class _Seat:
    expert_id: str
    session_id: str
    expert_ref: str


@dataclass(frozen=True)
class _Alloc:
    seats: tuple[_Seat, ...]


ALLOCS = {"P1": _Alloc((_Seat("E1", "S1", "R1"), _Seat("E2", "S2", "R2"))),
          "P2": _Alloc((_Seat("E3", "S3", "R3"),))}


@pytest.fixture
async def aredis(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


class Grid:
    """The follower with the coordinator's collaborators, over one Redis."""

    def __init__(self, redis: aioredis.Redis, key: Ed25519PrivateKey, master: bytes,
                 clock: SimClock, tmp: Path) -> None:
        self.log = AuditLog(redis, signing_key=key, clock=clock)
        self.reads: list[str] = []
        self.follower = ConductFollower(redis, master, self.log, RULES, tmp,
                                        windows=lambda: WINDOWS, allocation=self._alloc,
                                        record=self._record)

    async def _alloc(self, project_id: str) -> Any:
        self.reads.append(project_id)
        return ALLOCS.get(project_id)

    async def _record(self, kind: str, subject: str, detail: dict[str, Any]) -> AuditEntry:
        return await self.log.append(kind, subject, detail)


async def test_a_no_show_bars_its_expert_once_and_restarts_from_the_cursor(
        aredis: aioredis.Redis, tmp_path: Path) -> None:
    key, master = generate_signing_key(), os.urandom(32)
    clock = SimClock(DAY1 + timedelta(minutes=5))
    grid = Grid(aredis, key, master, clock, tmp_path)
    store = ConductStore(aredis, master)
    await grid.log.append("draw.committed", "P1", {"x": 1})  # not conduct: no allocation read
    assert await grid.follower.follow() is None
    assert grid.reads == [] and await store.followed_cursor() == 1

    signed = await grid.log.append("expert.signed_in", "P1", {"session": "S1"})
    no_show = await grid.log.append("seat.no_show", "P1", {"session": "S2", "reason": "absent"})
    summary = await grid.follower.follow()
    assert summary is not None and summary["experts"] == 2
    assert [a["kind"] for a in summary["added"]] == ["no_show_cool_off"]
    assert summary["added"][0]["evidence"] == [no_show.seq]
    assert "E2" not in str(summary)  # the audit names pseudonyms only
    version, bars = await store.read_bars()
    assert [(b.expert_id, b.kind, b.evidence) for b in bars] == [
        ("E2", "no_show_cool_off", (no_show.seq,))]
    assert bars[0].end == date(2026, 11, 2) + timedelta(days=RULES.conduct.no_show_cool_off_days)
    followed = [e for e in await grid.log.entries() if e.kind == "conduct.bars_followed"]
    assert len(followed) == 1 and followed[0].detail["version"] == version
    events = await store.read_events(["E1", "E2"])
    assert [e.kind for e in events["E1"]] == ["signed_in"]
    assert [e.evidence for e in events["E2"]] == [(no_show.seq,)]

    # Following again (its own audit entry is all that is new): nothing changes.
    assert await grid.follower.follow() is None
    assert (await store.read_bars())[0] == version
    # A cursor rewound (a crash before it was stored, as seen by Redis): the same stretch is
    # read again and changes nothing - no event counted twice, no bar re-audited.
    await aredis.hset(CONDUCT_FOLLOW, "cursor", signed.seq - 1)
    assert await grid.follower.follow() is None
    again = await store.read_events(["E1", "E2"])
    assert again == events and (await store.read_bars())[0] == version

    # A restarted coordinator (a new follower) goes on from the stored cursor: a second
    # no-show of the same expert within the period adds the suspension.
    cursor = await store.followed_cursor()
    grid2 = Grid(aredis, key, master, clock, tmp_path)
    clock.advance_to(DAY1 + timedelta(days=1, minutes=5))
    await grid2.log.append("seat.no_show", "P2", {"session": "S3", "reason": "absent"})
    ALLOCS["P2"] = _Alloc((_Seat("E2", "S3", "R3"),))
    try:
        second = await grid2.follower.follow()
    finally:
        ALLOCS["P2"] = _Alloc((_Seat("E3", "S3", "R3"),))
    assert grid2.reads == ["P2"]  # only the project the new entries name
    assert second is not None and second["entries"] == await store.followed_cursor() - cursor
    kinds = sorted(b.kind for b in (await store.read_bars())[1])
    assert kinds == ["no_show_cool_off", "no_show_cool_off", "no_show_suspension"]
    assert await aredis.exists(events_key("E1")) == 1


async def test_entries_with_nothing_to_follow_are_skimmed_in_one_trip_and_stored_in_batches(
        aredis: aioredis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, master = generate_signing_key(), os.urandom(32)
    clock = SimClock(DAY1 + timedelta(minutes=5))
    grid = Grid(aredis, key, master, clock, tmp_path)
    store = ConductStore(aredis, master)
    await grid.log.append("draw.committed", "P1", {"x": 0})
    assert await grid.follower.follow() is None and await store.followed_cursor() == 1
    transactions: list[int] = []
    following = store.following

    def counting() -> Any:
        transactions.append(1)
        return following()

    monkeypatch.setattr(grid.follower.store, "following", counting)
    trips: list[int] = []
    entries_with = grid.log.entries_with

    async def reading(after_seq: int = 0, also: Any = None) -> Any:
        trips.append(after_seq)
        return await entries_with(after_seq, also)

    monkeypatch.setattr(grid.log, "entries_with", reading)
    seq = 1
    for n in range(3):  # a draw's entries, then the next draw's follow
        seq = (await grid.log.append("draw.placed", "P1", {"n": n})).seq
        assert await grid.follower.follow() is None
    assert transactions == [] and trips == [1, 2, 3]  # each trip reads only the new entries
    assert await store.followed_cursor() == 1  # skimmed, not yet stored
    # The skim reads the bars' version in its trip (the draw then needs no read of its own):
    # a change not made through the trail (a sanction) shows at the next skim.
    assert grid.follower.bars_version == await store.bars_version() == 0
    assert await store.store_bars([]) == 1
    assert await grid.follower.follow() is None
    assert grid.follower.bars_version == 1 and trips[-1] == seq
    # Once SKIM_STORE_AFTER entries are skimmed the cursor is stored (a restart reads no more).
    for n in range(SKIM_STORE_AFTER):
        seq = (await grid.log.append("draw.placed", "P1", {"n": n})).seq
    assert await grid.follower.follow() is None
    assert transactions == [1] and await store.followed_cursor() == seq
    assert trips[4:] == [4, seq]  # the transaction read on from where the skim stopped
    # Something to follow after a skim is followed, from where the skim left off.
    await grid.log.append("draw.placed", "P1", {"n": -1})
    assert await grid.follower.follow() is None
    await grid.log.append("expert.signed_in", "P1", {"session": "S1"})
    no_show = await grid.log.append("seat.no_show", "P1", {"session": "S2", "reason": "absent"})
    summary = await grid.follower.follow()
    assert summary is not None and summary["entries"] == 2
    assert [(b.expert_id, b.evidence) for b in (await store.read_bars())[1]] == [
        ("E2", (no_show.seq,))]
    assert await store.followed_cursor() == no_show.seq


async def test_a_cursor_moved_under_a_skim_is_followed_from_where_it_now_is(
        aredis: aioredis.Redis, tmp_path: Path) -> None:
    """`conduct update` stores its events and cursor without knowing the follower: a skim
    seeing the cursor moved reads again from it, so nothing the update left out is lost."""
    key, master = generate_signing_key(), os.urandom(32)
    clock = SimClock(DAY1 + timedelta(minutes=5))
    grid = Grid(aredis, key, master, clock, tmp_path)
    store = ConductStore(aredis, master)
    signed = await grid.log.append("expert.signed_in", "P1", {"session": "S1"})
    no_show = await grid.log.append("seat.no_show", "P1", {"session": "S2", "reason": "absent"})
    assert await grid.follower.follow() is not None
    followed = await store.read_events(["E2"])
    await grid.log.append("draw.placed", "P1", {"n": 0})
    assert await grid.follower.follow() is None  # skimmed
    # An update that read the trail before the no-show: its events lack it, its cursor is back.
    await store.store_followed({"E2": []}, signed.seq)
    assert (await store.read_events(["E2"]))["E2"] == []
    assert await grid.follower.follow() is None  # the bars stand: no change to audit
    assert await store.read_events(["E2"]) == followed
    assert await store.followed_cursor() > no_show.seq
