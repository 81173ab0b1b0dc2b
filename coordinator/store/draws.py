"""The draws' archives (``DRAW``): sealed (seed and inputs), the public commitment, and the
seed once revealed after the award; and the departures still awaiting their redraw
(``REDRAW_PENDING``).

An archive's box is stored in the binary form (`SealedBox.to_bytes`: 70 KB a national draw,
base64 would add a third); archives stored as JSON text by earlier versions read as before.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.store.layout import DRAW, REDRAW_PENDING
from coordinator.store.values import text


class DrawArchives:
    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis = redis
        self.master_key = master_key

    def stage_archive(self, pipe: Any, draw_id: str, fields: dict[str, str | bytes]) -> None:
        pipe.hset(DRAW.format(draw_id), mapping=fields)

    async def sealed_archive(self, draw_id: str) -> dict[str, Any] | None:
        """The full archive, seed included (only the coordinator opens it); None if absent."""
        sealed = await self.redis.hget(DRAW.format(draw_id), "sealed")
        if sealed is None:
            return None
        return unseal_json(self.master_key, SealedBox.parse(sealed),
                           project_id=draw_id, purpose="draw")

    async def commitment(self, draw_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(DRAW.format(draw_id), "commitment")
        return dict(json.loads(raw)) if raw else None

    async def revealed_seed(self, draw_id: str) -> tuple[str | None, bool]:
        """The published seed (hex) if any, and whether its publication is audited."""
        revealed, audited = await self.redis.hmget(DRAW.format(draw_id),
                                                   ["seed", "seed_audited"])
        return (text(revealed) if revealed else None), bool(audited)

    async def reveal_seed(self, draw_id: str, seed_hex: str) -> None:
        await self.redis.hset(DRAW.format(draw_id), "seed", seed_hex)

    async def seed_audited(self, draw_id: str) -> None:
        await self.redis.hset(DRAW.format(draw_id), "seed_audited", "1")


class PendingRedraws:
    """Departures stored whose replacement draw has not run yet (an outage cut it off)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, project_id: str, session_id: str) -> None:
        await self.redis.sadd(REDRAW_PENDING, f"{project_id}/{session_id}")

    async def done(self, project_id: str, session_id: str) -> None:
        await self.redis.srem(REDRAW_PENDING, f"{project_id}/{session_id}")

    async def all(self) -> list[tuple[str, str]]:
        """(project, session) of every pending departure."""
        found = []
        for raw in await self.redis.smembers(REDRAW_PENDING):
            project_id, _, session_id = text(raw).partition("/")
            found.append((project_id, session_id))
        return sorted(found)
