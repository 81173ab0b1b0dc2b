"""The shell of expert conduct: the bars in force in Redis, the history behind them.

`conduct:bars` holds the bars the draw applies, sealed (a bar's evidence links an expert to
a project) with a version the coordinator checks before each draw; `conduct:sanctions` the
sanctions operators recorded by hand. The history is read from the audit trail, the sealed
allocations (an audited read, as for collusion) and the signed reports; the rules are pure
(`coordinator.domain.conduct`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.audit import AuditEntry
from coordinator.domain.conduct import (
    ConductError,
    ConductEvent,
    Sanction,
    SeatLink,
    bars_from_events,
    events_from_audit,
)
from coordinator.domain.model import ConductBar, Window
from coordinator.domain.rules import Rules
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.store.audit_log import AuditLog
from coordinator.store.layout import CONDUCT_BARS, CONDUCT_SANCTIONS, EXPERTS
from coordinator.store.registry import Registry
from coordinator.store.values import text
from evalgrid.ids import opaque_id

BARS = CONDUCT_BARS  # hash: version, sealed ({"bars": [...]}, project "conduct")
SANCTIONS = CONDUCT_SANCTIONS  # hash: sanction id -> sealed Sanction (project "conduct")
_SEALED_AS = "conduct"


def bar_to_json(bar: ConductBar) -> dict[str, Any]:
    return {"expert_id": bar.expert_id, "kind": bar.kind, "start": bar.start.isoformat(),
            "end": bar.end.isoformat(), "reason": bar.reason, "evidence": list(bar.evidence)}


def bar_from_json(data: dict[str, Any]) -> ConductBar:
    return ConductBar(str(data["expert_id"]), str(data["kind"]),
                      date.fromisoformat(data["start"]), date.fromisoformat(data["end"]),
                      str(data["reason"]), tuple(int(s) for s in data["evidence"]))


async def bars_version(redis: aioredis.Redis) -> int:
    return int(await redis.hget(BARS, "version") or 0)


async def read_bars(redis: aioredis.Redis, master_key: bytes) -> tuple[int, list[ConductBar]]:
    raw = await redis.hgetall(BARS)
    if not raw:
        return 0, []
    body = unseal_json(master_key, SealedBox.from_json(text(raw[b"sealed"])),
                       project_id=_SEALED_AS, purpose="conduct_bars")
    return int(raw[b"version"]), [bar_from_json(b) for b in body["bars"]]


async def store_bars(redis: aioredis.Redis, master_key: bytes,
                     bars: Sequence[ConductBar]) -> int:
    sealed = seal_json(master_key, _SEALED_AS, "conduct_bars",
                       {"bars": [bar_to_json(b) for b in bars]}).to_json()
    pipe = redis.pipeline(transaction=True)
    pipe.hincrby(BARS, "version", 1)
    pipe.hset(BARS, "sealed", sealed)
    version, _ = await pipe.execute()
    return int(version)


async def read_sanctions(redis: aioredis.Redis, master_key: bytes) -> list[Sanction]:
    found = []
    for sid, raw in sorted((await redis.hgetall(SANCTIONS)).items()):
        d = unseal_json(master_key, SealedBox.from_json(text(raw)), project_id=_SEALED_AS,
                        purpose="conduct_sanction")
        found.append(Sanction(text(sid), d["expert_id"], date.fromisoformat(d["start"]),
                              date.fromisoformat(d["end"]), d["reason"], d["by"],
                              tuple(d["evidence"])))
    return found


async def store_sanction(redis: aioredis.Redis, master_key: bytes, s: Sanction) -> None:
    body = {"expert_id": s.expert_id, "start": s.start.isoformat(), "end": s.end.isoformat(),
            "reason": s.reason, "by": s.by, "evidence": list(s.evidence)}
    await redis.hset(SANCTIONS, s.sanction_id,
                     seal_json(master_key, _SEALED_AS, "conduct_sanction", body).to_json())


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
    warnings: dict[str, list[str]] = {}
    for path in sorted(reports_dir.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))["report"]
            project_id = body["project"]["id"]
            warnings[project_id] = [str(w["expert_ref"]) for w in
                                    body["evaluation"].get("warnings", [])
                                    if w.get("kind") == "deviation" and w.get("expert_ref")]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # `report verify` is where a damaged report is named
    entries = await log.entries()
    events = events_from_audit(entries, seats, windows, rules.conduct, warnings)
    sanctions = await read_sanctions(redis, master_key)
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
    version = await store_bars(redis, master_key, bars)
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
    if not await redis.hexists(EXPERTS, expert_id):
        raise ConductError(f"expert: no expert {expert_id!r} in the registry")
    sanction_id = opaque_id("sanction")
    draft = Sanction(sanction_id, expert_id, start, end, reason.strip(), by)  # validates
    entry = await log.append("conduct.sanction_recorded", "conduct", {
        "sanction": sanction_id, "expert": pseudonym(master_key, expert_id),
        "from": start.isoformat(), "until": end.isoformat(), "reason": draft.reason,
        "by": by})
    await store_sanction(redis, master_key, Sanction(
        sanction_id, expert_id, start, end, draft.reason, by, (entry.seq,)))
    summary = await update_bars(redis, master_key, log, rules, reports_dir, by=by)
    return {"sanction": sanction_id, "sanction_seq": entry.seq, **summary}


class ConductFeed:
    """The coordinator's side: before a draw, bring the pool's bars up to date (one HGET
    when nothing changed)."""

    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis, self.master_key = redis, master_key
        self.seen = -1
        self._pool: object = None

    async def refresh(self, pool: Any) -> bool:
        """Bring the pool's bars up to date; True when they changed (screens built on the old
        bars must be rebuilt)."""
        if pool is None:
            return False
        if pool is self._pool and await bars_version(self.redis) == self.seen:
            return False
        version, bars = await read_bars(self.redis, self.master_key)
        pool.set_conduct_bars(bars)
        self.seen, self._pool = version, pool
        return True
