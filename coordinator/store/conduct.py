"""The conduct records in Redis, sealed (a bar's or an event's evidence links an expert to a
project): the bars the draw applies with their version (``CONDUCT_BARS``), the operators'
sanctions (``CONDUCT_SANCTIONS``), each expert's followed events (``CONDUCT_EVENTS``) and the
follower's cursor (``CONDUCT_FOLLOW``). What they mean and how the bars are derived:
coordinator/conduct_records.py and coordinator/domain/conduct.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.conduct import ConductError, ConductEvent, Sanction
from coordinator.domain.model import ConductBar
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.store.layout import (
    CONDUCT_BARS,
    CONDUCT_EVENTS,
    CONDUCT_FOLLOW,
    CONDUCT_SANCTIONS,
)
from coordinator.store.values import text

SEALED_AS = "conduct"  # the project every conduct record is sealed under


def bar_to_json(bar: ConductBar) -> dict[str, Any]:
    return {"expert_id": bar.expert_id, "kind": bar.kind, "start": bar.start.isoformat(),
            "end": bar.end.isoformat(), "reason": bar.reason, "evidence": list(bar.evidence)}


def bar_from_json(data: dict[str, Any]) -> ConductBar:
    return ConductBar(str(data["expert_id"]), str(data["kind"]),
                      date.fromisoformat(data["start"]), date.fromisoformat(data["end"]),
                      str(data["reason"]), tuple(int(s) for s in data["evidence"]))


def events_key(expert_id: str) -> str:
    return CONDUCT_EVENTS.format(expert_id=expert_id)


def _event_to_json(e: ConductEvent) -> dict[str, Any]:
    return {"kind": e.kind, "at": e.at.isoformat(), "project": e.project_id,
            "evidence": list(e.evidence), "detail": e.detail}


def _event_from_json(expert_id: str, d: dict[str, Any]) -> ConductEvent:
    return ConductEvent(expert_id, str(d["kind"]), datetime.fromisoformat(d["at"]),
                        str(d["project"]), tuple(int(s) for s in d["evidence"]),
                        str(d.get("detail", "")))


class ConductStore:
    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis = redis
        self.master_key = master_key

    # --- the bars ------------------------------------------------------------------------------

    def seal_bars(self, bars: Sequence[ConductBar]) -> str:
        return seal_json(self.master_key, SEALED_AS, "conduct_bars",
                         {"bars": [bar_to_json(b) for b in bars]}).to_json()

    async def bars_version(self) -> int:
        return self.counter_of(await self.redis.hget(CONDUCT_BARS, "version"))

    @staticmethod
    def stage_bars_version_read(pipe: Any) -> None:
        """`bars_version` on the caller's pipeline; its reply reads with `counter_of`."""
        pipe.hget(CONDUCT_BARS, "version")

    async def read_bars(self) -> tuple[int, list[ConductBar]]:
        raw = await self.redis.hgetall(CONDUCT_BARS)
        if not raw:
            return 0, []
        body = unseal_json(self.master_key, SealedBox.from_json(text(raw[b"sealed"])),
                           project_id=SEALED_AS, purpose="conduct_bars")
        return int(raw[b"version"]), [bar_from_json(b) for b in body["bars"]]

    async def store_bars(self, bars: Sequence[ConductBar]) -> int:
        """Store the bars; their new version (the draw's cue to take them up)."""
        sealed = self.seal_bars(bars)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(CONDUCT_BARS, "version", 1)
        pipe.hset(CONDUCT_BARS, "sealed", sealed)
        version, _ = await pipe.execute()
        return int(version)

    # --- the sanctions -------------------------------------------------------------------------

    async def read_sanctions(self) -> list[Sanction]:
        found = []
        for sid, raw in sorted((await self.redis.hgetall(CONDUCT_SANCTIONS)).items()):
            d = unseal_json(self.master_key, SealedBox.from_json(text(raw)),
                            project_id=SEALED_AS, purpose="conduct_sanction")
            found.append(Sanction(text(sid), d["expert_id"], date.fromisoformat(d["start"]),
                                  date.fromisoformat(d["end"]), d["reason"], d["by"],
                                  tuple(d["evidence"])))
        return found

    async def store_sanction(self, s: Sanction) -> None:
        body = {"expert_id": s.expert_id, "start": s.start.isoformat(),
                "end": s.end.isoformat(), "reason": s.reason, "by": s.by,
                "evidence": list(s.evidence)}
        await self.redis.hset(CONDUCT_SANCTIONS, s.sanction_id, seal_json(
            self.master_key, SEALED_AS, "conduct_sanction", body).to_json())

    # --- the followed events and the cursor ----------------------------------------------------

    def seal_events(self, expert_id: str, events: Sequence[ConductEvent]) -> str:
        return seal_json(self.master_key, SEALED_AS, "conduct_events", {
            "expert_id": expert_id, "events": [_event_to_json(e) for e in events]}).to_json()

    async def read_events(self, experts: Iterable[str]) -> dict[str, list[ConductEvent]]:
        """The followed events of `experts` (an empty list for one with none yet)."""
        wanted = sorted(set(experts))
        if not wanted:
            return {}
        found: dict[str, list[ConductEvent]] = {}
        for expert_id, raw in zip(wanted, await self.redis.mget([events_key(e) for e in wanted]),
                                  strict=True):
            if raw is None:
                found[expert_id] = []
                continue
            body = unseal_json(self.master_key, SealedBox.from_json(text(raw)),
                               project_id=SEALED_AS, purpose="conduct_events")
            if body.get("expert_id") != expert_id:  # a blob moved to another expert's key
                raise ConductError(f"{events_key(expert_id)}: holds another expert's events")
            found[expert_id] = [_event_from_json(expert_id, d) for d in body["events"]]
        return found

    async def followed_cursor(self) -> int:
        return self.counter_of(await self.redis.hget(CONDUCT_FOLLOW, "cursor"))

    @staticmethod
    def stage_cursor_read(pipe: Any) -> None:
        """`followed_cursor` on the caller's pipeline; its reply reads with `counter_of`."""
        pipe.hget(CONDUCT_FOLLOW, "cursor")

    @staticmethod
    def counter_of(reply: Any) -> int:
        """A stored counter (the follower's cursor, the bars' version) from its reply (0: none
        yet)."""
        return int(reply or 0)

    async def store_followed(self, events: Mapping[str, Sequence[ConductEvent]],
                             cursor: int) -> None:
        """Every named expert's events and the cursor, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        for expert_id, evs in events.items():
            pipe.set(events_key(expert_id), self.seal_events(expert_id, evs))
        pipe.hset(CONDUCT_FOLLOW, "cursor", cursor)
        await pipe.execute()

    @asynccontextmanager
    async def following(self) -> AsyncIterator[FollowStep]:
        """One step of the follower, optimistic: the cursor and the bars are watched from
        here, so a `conduct update` or a sanction written meanwhile makes `FollowStep.write`
        raise STORE_CONFLICT (coordinator/store/errors.py) and the caller reads again."""
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(CONDUCT_FOLLOW, CONDUCT_BARS)
            yield FollowStep(self, pipe)


class FollowStep:
    """The watched side of `ConductStore.following`."""

    def __init__(self, store: ConductStore, pipe: Any) -> None:
        self.store, self.pipe = store, pipe

    async def cursor(self) -> int:
        return self.store.counter_of(await self.pipe.hget(CONDUCT_FOLLOW, "cursor"))

    async def write(self, events: Mapping[str, Sequence[ConductEvent]], cursor: int,
                    bars: Sequence[ConductBar] | None) -> int | None:
        """The grown experts' events, the cursor and (when not None) the bars, in one MULTI;
        the bars' new version when they were written."""
        pipe = self.pipe
        pipe.multi()
        for expert_id, evs in events.items():
            pipe.set(events_key(expert_id), self.store.seal_events(expert_id, evs))
        pipe.hset(CONDUCT_FOLLOW, "cursor", cursor)
        if bars is not None:
            pipe.hincrby(CONDUCT_BARS, "version", 1)
            pipe.hset(CONDUCT_BARS, "sealed", self.store.seal_bars(bars))
        replies = await pipe.execute()
        return None if bars is None else int(replies[len(events) + 1])
