"""The province registry in Redis: sites, experts, companies and projects as JSON records.

An import is validated completely before anything is written, then written in one MULTI, so
a failed import stores nothing and a successful one is all there at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.model import Project, Province
from coordinator.province import codec
from coordinator.store.values import text

SITES = "prov:sites"
EXPERTS = "prov:experts"
COMPANIES = "prov:companies"
PROJECTS = "prov:projects"
PROJECT_STATE = "proj:state"
META = "prov:meta"


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Registry:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def store_province(self, province: Province, *, replace: bool = False) -> None:
        """Write a validated province atomically (projects included)."""
        pipe = self.redis.pipeline(transaction=True)
        if replace:
            pipe.delete(SITES, EXPERTS, COMPANIES)
        await self._add(pipe, SITES, ((s.id, codec.site_to_dict(s)) for s in province.sites))
        await self._add(pipe, EXPERTS,
                        ((e.id, codec.expert_to_dict(e)) for e in province.experts))
        await self._add(pipe, COMPANIES,
                        ((c.id, codec.company_to_dict(c)) for c in province.companies))
        for project in province.projects:
            pipe.hsetnx(PROJECTS, project.id, _dump(codec.project_to_dict(project)))
            pipe.hsetnx(PROJECT_STATE, project.id, "registered")
        pipe.hincrby(META, "version", 1)
        await pipe.execute()

    @staticmethod
    async def _add(pipe: Any, key: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        batch: dict[str, str] = {}
        for record_id, record in items:
            batch[record_id] = _dump(record)
            if len(batch) >= 5000:
                pipe.hset(key, mapping=batch)
                batch = {}
        if batch:
            pipe.hset(key, mapping=batch)

    async def version(self) -> int:
        value = await self.redis.hget(META, "version")
        return int(value or 0)

    async def load_province(self) -> Province:
        sites_raw, experts_raw, companies_raw, projects_raw = await _hgetall_many(
            self.redis, SITES, EXPERTS, COMPANIES, PROJECTS
        )
        return Province(
            sites=tuple(codec.site_from_dict(json.loads(v)) for v in sites_raw.values()),
            experts=tuple(codec.expert_from_dict(json.loads(v)) for v in experts_raw.values()),
            companies=tuple(
                codec.company_from_dict(json.loads(v)) for v in companies_raw.values()
            ),
            projects=tuple(
                codec.project_from_dict(json.loads(v)) for v in projects_raw.values()
            ),
        )

    async def add_project(self, project: Project) -> bool:
        """Register a project; False when one with that id exists (a resend is harmless)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(PROJECTS, project.id, _dump(codec.project_to_dict(project)))
        pipe.hsetnx(PROJECT_STATE, project.id, "registered")
        added, _ = await pipe.execute()
        return bool(added)

    async def project(self, project_id: str) -> Project | None:
        raw = await self.redis.hget(PROJECTS, project_id)
        return codec.project_from_dict(json.loads(raw)) if raw else None

    async def project_states(self) -> dict[str, str]:
        raw = await self.redis.hgetall(PROJECT_STATE)
        return {text(k): text(v) for k, v in raw.items()}

    async def set_project_state(self, project_id: str, state: str) -> None:
        await self.redis.hset(PROJECT_STATE, project_id, state)

    async def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for key in (SITES, EXPERTS, COMPANIES, PROJECTS):
            pipe.hlen(key)
        sites, experts, companies, projects = await pipe.execute()
        return {"sites": sites, "experts": experts, "companies": companies,
                "projects": projects}


async def _hgetall_many(redis: aioredis.Redis, *keys: str) -> list[dict[str, str]]:
    out = []
    for key in keys:
        raw = await redis.hgetall(key)
        out.append({text(k): text(v) for k, v in raw.items()})
    return out
