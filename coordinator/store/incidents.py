"""The fault desk's records: incidents, the seat passes already sent, and what an incident that
ended a committee sealed away (its materials and the dissolved allocation).

Incidents are plain JSON (no personal data: projects, sites and workstations by id); the
materials and the dissolved allocation arrive sealed.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from coordinator.store.layout import (
    FAULT_ADMITTED,
    FAULT_INCIDENTS,
    FAULT_MATERIALS,
    FAULT_SUPERSEDED,
)
from coordinator.store.values import text


class Incidents:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def all(self) -> list[dict[str, Any]]:
        """Every incident as stored (JSON objects)."""
        raw = await self.redis.hgetall(FAULT_INCIDENTS)
        return [json.loads(v) for v in raw.values()]

    async def get(self, incident_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(FAULT_INCIDENTS, incident_id)
        return None if raw is None else dict(json.loads(raw))

    async def save(self, incident_id: str, record: dict[str, Any]) -> None:
        await self.redis.hset(FAULT_INCIDENTS, incident_id, json.dumps(record, sort_keys=True))

    async def admitted(self, project_id: str) -> set[str]:
        """The sessions of the project already sent a seat pass."""
        return {text(s) for s in await self.redis.smembers(FAULT_ADMITTED.format(project_id))}

    async def add_admitted(self, project_id: str, session_id: str) -> None:
        await self.redis.sadd(FAULT_ADMITTED.format(project_id), session_id)

    @staticmethod
    def stage_sealed_away(pipe: Any, project_id: str, incident_id: str, *, materials: str,
                          allocation: str) -> None:
        """An incident's sealed materials and dissolved allocation, in the caller's MULTI."""
        pipe.set(FAULT_MATERIALS.format(project_id, incident_id), materials)
        pipe.set(FAULT_SUPERSEDED.format(project_id, incident_id), allocation)
