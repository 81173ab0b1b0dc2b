"""The members' score sheets (``SHEET``) and the committee's questions (``CLARIFICATIONS``).

A sheet is stored by session with its digest, the coordinator's signature and whether it is
signed and audited (a signed sheet is final; `audited` lets a retry finish what an outage cut).
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from coordinator.store.layout import CLARIFICATIONS, SHEET
from coordinator.store.values import text


class Sheets:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def sheet(self, session_id: str) -> dict[str, str]:
        """The stored sheet's fields ({} where none is stored)."""
        raw = await self.redis.hgetall(SHEET.format(session_id))
        return {text(k): text(v) for k, v in raw.items()}

    async def store(self, session_id: str, fields: dict[str, str]) -> None:
        await self.redis.hset(SHEET.format(session_id), mapping=fields)  # type: ignore[arg-type]

    async def mark(self, session_id: str, field: str, value: str) -> None:
        """One field of the stored sheet: `audited`, or `signed` "0" for a returned sheet."""
        await self.redis.hset(SHEET.format(session_id), field, value)

    async def questions(self, project_id: str) -> list[dict[str, Any]]:
        """The committee's questions and answers, oldest first."""
        raw = await self.redis.hgetall(CLARIFICATIONS.format(project_id))
        return sorted((json.loads(v) for v in raw.values()), key=lambda r: r["asked_at"])

    async def questions_as_stored(self, project_id: str) -> list[str]:
        """The questions' stored JSON texts (sealed into an incident's materials)."""
        raw = await self.redis.hgetall(CLARIFICATIONS.format(project_id))
        return [text(v) for v in raw.values()]

    async def put_question(self, project_id: str, record: dict[str, str]) -> None:
        await self.redis.hset(CLARIFICATIONS.format(project_id), record["question_id"],
                              json.dumps(record))
