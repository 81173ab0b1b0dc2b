"""The draw intents' records (``INTENT``, listed in ``INTENTS``): sealed, since they hold
sign-in codes. What an intent is for and how its phases recover: coordinator/draw_intents.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

import redis.asyncio as aioredis
from evalgrid_wire.v1 import site_link_pb2

from coordinator.allocation import SeatRecord
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.store.layout import INTENT, INTENTS
from coordinator.store.values import text

PURPOSE = "intent"


@dataclass
class DrawIntent:
    project_id: str
    draw_id: str
    phase: str  # committed | booking | placed
    audit_seq: int  # the audit head when the intent was written: later entries are searched
    state_after: str = ""  # the project state the placement sets (DRAWN for a first draw)
    plan_id: str = ""
    seed_from: dict[str, str] | None = None  # the day's seed round the draw's seed derives from
    parent: str = ""
    outcome_digest: str = ""
    alloc_before: dict[str, Any] | None = None  # the allocation the draw extends, departures in
    seats: list[dict[str, Any]] = field(default_factory=list)  # SeatRecord fields
    commands: list[list[str]] = field(default_factory=list)  # [site id, command hex]

    def seat_records(self) -> list[SeatRecord]:
        return [SeatRecord(**s) for s in self.seats]

    def site_commands(self) -> list[tuple[str, site_link_pb2.CoordinatorCommand]]:
        return [(site, site_link_pb2.CoordinatorCommand.FromString(bytes.fromhex(raw)))
                for site, raw in self.commands]


_SEAT_FIELDS = tuple(f.name for f in dataclass_fields(SeatRecord))  # looked up once, not per seat
_INTENT_FIELDS = tuple(f.name for f in dataclass_fields(DrawIntent))


def make_intent(project_id: str, draw_id: str, phase: str, audit_seq: int, *,
                seats: Sequence[SeatRecord] = (),
                commands: Sequence[tuple[str, site_link_pb2.CoordinatorCommand]] = (),
                **extra: Any) -> DrawIntent:
    return DrawIntent(project_id, draw_id, phase, audit_seq,
                      seats=[{name: getattr(s, name) for name in _SEAT_FIELDS}
                             for s in seats],  # flat: asdict's deep copies cost a plan
                      commands=[[site, c.SerializeToString().hex()] for site, c in commands],
                      **extra)


def stage_intent(pipe: Any, master_key: bytes, intent: DrawIntent) -> None:
    """Write (or move to its next phase) an intent inside the caller's MULTI."""
    # Shallow: asdict would deep-copy every seat of the intent, three times per draw.
    fields_ = {name: getattr(intent, name) for name in _INTENT_FIELDS}
    box = seal_json(master_key, intent.project_id, PURPOSE, fields_)
    pipe.set(INTENT.format(intent.project_id), box.to_json())
    pipe.sadd(INTENTS, intent.project_id)


def stage_drop(pipe: Any, project_id: str) -> None:
    pipe.delete(INTENT.format(project_id))
    pipe.srem(INTENTS, project_id)


async def drop_intent(redis: aioredis.Redis, project_id: str) -> None:
    pipe = redis.pipeline(transaction=True)
    stage_drop(pipe, project_id)
    await pipe.execute()


async def pending_intents(redis: aioredis.Redis, master_key: bytes) -> list[DrawIntent]:
    found = []
    for raw_id in sorted(await redis.smembers(INTENTS)):
        project_id = text(raw_id)
        raw = await redis.get(INTENT.format(project_id))
        if raw is None:  # listed, never written (cannot happen with one MULTI): forget it
            await redis.srem(INTENTS, project_id)
            continue
        found.append(_unsealed(master_key, project_id, raw))
    return found


async def pending_intent(redis: aioredis.Redis, master_key: bytes,
                         project_id: str) -> DrawIntent | None:
    raw = await redis.get(INTENT.format(project_id))
    return None if raw is None else _unsealed(master_key, project_id, raw)


def _unsealed(master_key: bytes, project_id: str, raw: bytes | str) -> DrawIntent:
    return DrawIntent(**unseal_json(master_key, SealedBox.from_json(text(raw)),
                                    project_id=project_id, purpose=PURPOSE))
