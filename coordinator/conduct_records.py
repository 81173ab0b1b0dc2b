"""The shell of expert conduct: the bars in force in Redis, the history behind them.

`conduct:bars` holds the bars the draw applies, sealed (a bar's evidence links an expert to
a project) with a version the coordinator checks before each draw; `conduct:sanctions` the
sanctions operators recorded by hand. The history is read from the audit trail, the sealed
allocations (an audited read, as for collusion) and the signed reports; the rules are pure
(`coordinator.domain.conduct`), the keys and their sealing are the store's
(`coordinator.store.conduct`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as aioredis

from coordinator.domain.audit import AuditEntry
from coordinator.domain.conduct import (
    FOLLOWED_KINDS,
    ConductError,
    ConductEvent,
    Sanction,
    SeatLink,
    bars_from_events,
    events_from_audit,
    follow_bars,
    merge_events,
)
from coordinator.domain.model import ConductBar, Window
from coordinator.domain.rules import Rules
from coordinator.store.audit_log import AuditLog
from coordinator.store.conduct import ConductStore
from coordinator.store.errors import STORE_CONFLICT
from coordinator.store.registry import Registry
from evalgrid.ids import opaque_id

if TYPE_CHECKING:
    from coordinator.allocation import Allocation


def report_warnings(reports_dir: Path, projects: Iterable[str] | None = None
                    ) -> dict[str, list[str]]:
    """Project -> the expert refs of the deviation warnings in its signed report (of the
    given projects only, when named)."""
    wanted = None if projects is None else set(projects)
    warnings: dict[str, list[str]] = {}
    for path in sorted(reports_dir.glob("*.json")):
        if wanted is not None and path.stem not in wanted:
            continue
        try:
            body = json.loads(path.read_text(encoding="utf-8"))["report"]
            project_id = body["project"]["id"]
            warnings[project_id] = [str(w["expert_ref"]) for w in
                                    body["evaluation"].get("warnings", [])
                                    if w.get("kind") == "deviation" and w.get("expert_ref")]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # `report verify` is where a damaged report is named
    return warnings


@dataclass
class ConductHistory:
    entries: list[AuditEntry]
    events: list[ConductEvent]
    sanctions: list[Sanction]
    windows: dict[str, Window]


async def load_history(redis: aioredis.Redis, master_key: bytes, log: AuditLog, rules: Rules,
                       reports_dir: Path, *, purpose: str) -> ConductHistory:
    """Events from the trail, the allocations (an audited read) and the signed reports."""
    from coordinator.offline import read_allocation

    registry = Registry(redis)
    projects = (await registry.load_province()).projects
    windows = {p.id: p.window for p in projects}
    seats: list[SeatLink] = []
    for project in projects:
        alloc = await read_allocation(redis, master_key, project.id)
        if alloc is not None:
            seats += [SeatLink(s.expert_id, project.id, s.session_id, s.expert_ref)
                      for s in alloc.seats]
    warnings = report_warnings(reports_dir)
    entries = await log.entries()
    events = events_from_audit(entries, seats, windows, rules.conduct, warnings)
    sanctions = await ConductStore(redis, master_key).read_sanctions()
    await log.append("conduct.history_read", "conduct", {
        "purpose": purpose, "allocations": len({s.project_id for s in seats}),
        "entries": len(entries), "events": len(events)})
    return ConductHistory(entries, events, sanctions, windows)


async def update_bars(redis: aioredis.Redis, master_key: bytes, log: AuditLog, rules: Rules,
                      reports_dir: Path, *, by: str) -> dict[str, Any]:
    """Recompute every bar from the history and the sanctions; store them for the draw."""
    history = await load_history(redis, master_key, log, rules, reports_dir,
                                 purpose=f"conduct update by {by}")
    bars = bars_from_events(history.events, history.sanctions, rules.conduct,
                            rules.local_utc_offset_minutes)
    store = ConductStore(redis, master_key)
    if history.entries:
        await store_followed(store, history.events, history.entries[-1].seq)
    version = await store.store_bars(bars)
    kinds: dict[str, int] = {}
    for b in bars:
        kinds[b.kind] = kinds.get(b.kind, 0) + 1
    entry = await log.append("conduct.bars_recorded", "conduct", {
        "by": by, "version": version, "bars": len(bars), "by_kind": kinds,
        "experts": len({b.expert_id for b in bars}), "rules_digest": rules.digest()})
    return {"version": version, "bars": len(bars), "by_kind": kinds,
            "experts": len({b.expert_id for b in bars}), "audit_seq": entry.seq,
            "events": len(history.events)}


async def record_sanction(redis: aioredis.Redis, master_key: bytes, log: AuditLog,
                          rules: Rules, reports_dir: Path, *, expert_id: str, start: date,
                          end: date, reason: str, by: str) -> dict[str, Any]:
    """An operator's sanction: checked, audited (under the expert's pseudonym), stored, and
    the bars recomputed so the next draw applies it."""
    from coordinator.offline import pseudonym

    if not by.strip():
        raise ConductError("operator: a sanction names the operator who records it")
    if not await Registry(redis).has_expert(expert_id):
        raise ConductError(f"expert: no expert {expert_id!r} in the registry")
    sanction_id = opaque_id("sanction")
    draft = Sanction(sanction_id, expert_id, start, end, reason.strip(), by)  # validates
    entry = await log.append("conduct.sanction_recorded", "conduct", {
        "sanction": sanction_id, "expert": pseudonym(master_key, expert_id),
        "from": start.isoformat(), "until": end.isoformat(), "reason": draft.reason,
        "by": by})
    await ConductStore(redis, master_key).store_sanction(Sanction(
        sanction_id, expert_id, start, end, draft.reason, by, (entry.seq,)))
    summary = await update_bars(redis, master_key, log, rules, reports_dir, by=by)
    return {"sanction": sanction_id, "sanction_seq": entry.seq, **summary}


class ConductFeed:
    """The coordinator's side: before a draw, bring the pool's bars up to date (one HGET
    when nothing changed)."""

    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.store = ConductStore(redis, master_key)
        self.seen = -1
        self._pool: object = None

    async def refresh(self, pool: Any, version: int | None = None) -> bool:
        """Bring the pool's bars up to date; True when they changed (screens built on the old
        bars must be rebuilt). `version`: the bars' version as just read (by the follower's
        skim, in its round trip), else read here."""
        if pool is None:
            return False
        if version is None:
            version = await self.store.bars_version()
        if pool is self._pool and version == self.seen:
            return False
        version, bars = await self.store.read_bars()
        pool.set_conduct_bars(bars)
        self.seen, self._pool = version, pool
        return True


# --- following the trail -------------------------------------------------------------------

#: Entries the follower reads past (nothing in them to follow) before it stores its cursor.
SKIM_STORE_AFTER: Final = 256


class ConductFollower:
    """Keeps the conduct bars in step with the audit trail by itself.

    From the cursor (the last audit seq followed) it reads the new entries, turns the ones
    that can make conduct (FOLLOWED_KINDS) into events, adds them to their experts' events
    and derives those experts' bars again; events, cursor and bars are written in one
    transaction (a crash re-follows the same stretch, which changes nothing), and a change
    of bars is audited `conduct.bars_followed`. The draw then picks the new bars up through
    ConductFeed (their version moved) and rebuilds the day's screen.
    """

    def __init__(self, redis: aioredis.Redis, master_key: bytes, log: AuditLog, rules: Rules,
                 reports_dir: Path, *,
                 windows: Callable[[], Mapping[str, Window]],
                 allocation: Callable[[str], Awaitable[Allocation | None]],
                 record: Callable[[str, str, dict[str, Any]], Awaitable[AuditEntry]]) -> None:
        self.store = ConductStore(redis, master_key)
        self.master_key, self.log, self.rules = master_key, log, rules
        self.reports_dir = reports_dir
        self._windows, self._allocation, self._record = windows, allocation, record
        self._lock = asyncio.Lock()
        # Between two follows: the stored cursor as this follower last read or wrote it, and
        # how far past it the trail was read and held nothing to follow (not stored yet).
        self._stored: int | None = None
        self._skimmed = 0
        #: The bars' version read by the last follow's skim (None: that follow did more).
        self.bars_version: int | None = None
        #: The replies of the reads `skim(also)` staged on its trip (None: no skim ran, as in
        #: a follower's first follow: the caller reads them itself).
        self.also_replies: list[Any] | None = None

    async def follow(self) -> dict[str, Any] | None:
        """Follow the trail up to its end; a summary when the bars changed, else None."""
        async with self._lock:
            self.bars_version = self.also_replies = None
            if await self._skim():
                return None
            for _ in range(8):
                try:
                    return await self._follow_once()
                except STORE_CONFLICT:
                    continue  # a `conduct update` or a sanction wrote meanwhile: read again
            return None

    async def skim(self, also: Callable[[Any], None]) -> int | None:
        """Only the skim, with the caller's reads `also` in its round trip (a single draw's
        own; their replies in `also_replies`): the bars' version when the trail holds
        nothing to follow, else None and `follow` has writing to do. A draw skims before it
        knows it will go on, and follows only then: a refused request writes nothing."""
        async with self._lock:
            self.bars_version = self.also_replies = None
            return self.bars_version if await self._skim(also) else None

    async def _seats(self, entries: Sequence[AuditEntry],
                     windows: Mapping[str, Window]) -> list[SeatLink]:
        projects = {e.subject for e in entries if e.subject in windows}
        for e in entries:  # a lockout names its site: the projects around its time
            if e.kind in ("signin.locked", "checkin.locked"):
                at = datetime.fromisoformat(e.at.replace("Z", "+00:00"))
                projects |= {p for p, w in windows.items()
                             if w.start.date() <= at.date() <= w.end.date()}
        seats: list[SeatLink] = []
        for project_id in sorted(projects):
            alloc = await self._allocation(project_id)
            if alloc is not None:
                seats += [SeatLink(s.expert_id, project_id, s.session_id, s.expert_ref)
                          for s in alloc.seats]
        return seats

    async def _skim(self, also: Callable[[Any], None] | None = None) -> bool:
        """A single draw's usual case in one round trip (every draw follows first, and the
        transaction below costs five): the stored cursor is where this follower left it and
        the entries since hold nothing to follow. True when so; they are then only counted
        as read, and stored once `SKIM_STORE_AFTER` of them are (a restart reads no more)."""
        if self._stored is None:
            return False

        def reads(pipe: Any) -> None:
            self.store.stage_cursor_read(pipe)
            self.store.stage_bars_version_read(pipe)
            if also is not None:
                also(pipe)

        entries, (cursor, version, *self.also_replies) = await self.log.entries_with(
            self._skimmed, also=reads)
        if (self.store.counter_of(cursor) != self._stored
                or any(e.kind in FOLLOWED_KINDS for e in entries)):
            return False  # moved by `conduct update`, or something to follow: the transaction
        if entries:
            self._skimmed = entries[-1].seq
        if self._skimmed - self._stored >= SKIM_STORE_AFTER:
            return False
        self.bars_version = self.store.counter_of(version)
        return True

    async def _follow_once(self) -> dict[str, Any] | None:
        async with self.store.following() as step:
            cursor = await step.cursor()
            # Past what this follower skimmed, while the cursor is where it left it (watched
            # from here): nothing before that is to follow.
            start = self._skimmed if cursor == self._stored else cursor
            entries = await self.log.entries(after_seq=start)
            if not entries:
                if start > cursor:
                    await step.write({}, start, None)
                self._stored = self._skimmed = start
                return None
            last = entries[-1].seq
            relevant = [e for e in entries if e.kind in FOLLOWED_KINDS]
            new: list[ConductEvent] = []
            if relevant:
                windows = self._windows()
                reported = [e.subject for e in relevant if e.kind == "evaluation.reported"]
                warnings = report_warnings(self.reports_dir, reported) if reported else {}
                new = events_from_audit(relevant, await self._seats(relevant, windows),
                                        windows, self.rules.conduct, warnings)
            held = await self.store.read_events({e.expert_id for e in new})
            merged = {x: merge_events(evs, [e for e in new if e.expert_id == x])
                      for x, evs in held.items()}
            grown = {x: evs for x, evs in merged.items() if len(evs) > len(held[x])}
            changed = False
            bars: list[ConductBar] = []
            old_bars: list[ConductBar] = []
            if grown:
                _, old_bars = await self.store.read_bars()
                bars = follow_bars(old_bars, merged, await self.store.read_sanctions(),
                                   self.rules.conduct, self.rules.local_utc_offset_minutes)
                changed = set(bars) != set(old_bars)
            version = await step.write(grown, last, bars if changed else None)
            self._stored = self._skimmed = last
        if version is None:
            return None
        added = sorted(set(bars) - set(old_bars), key=lambda b: (b.start, b.kind))
        from coordinator.offline import pseudonym

        summary = {
            "version": version, "followed_to": last, "entries": len(entries),
            "events": sum(len(grown[x]) - len(held[x]) for x in grown),
            "bars": len(bars), "experts": len(grown),
            "added": [{"expert": pseudonym(self.master_key, b.expert_id), "kind": b.kind,
                       "until": b.end.isoformat(), "evidence": list(b.evidence)}
                      for b in added],
            "lifted": len(set(old_bars) - set(bars))}
        await self._record("conduct.bars_followed", "conduct", summary)
        return summary


async def store_followed(store: ConductStore, events: Sequence[ConductEvent],
                         cursor: int) -> None:
    """After a full recompute (`conduct update`): every expert's events and the cursor, so
    the follower goes on from there instead of reading the trail again."""
    per_expert: dict[str, list[ConductEvent]] = {}
    for e in events:
        per_expert.setdefault(e.expert_id, []).append(e)
    await store.store_followed(per_expert, cursor)
