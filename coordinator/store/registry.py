"""The province registry in Redis: sites, experts, companies and projects as JSON records.

An import is validated completely before anything is written, then written in one MULTI, so
a failed import stores nothing and a successful one is all there at once.

Experts' ID and phone numbers never reach Redis in clear (so neither a dump nor the append-only
file holds them): each record carries them only in a sealed box (`coordinator.domain.pii`), and
the desk's lookup by ID number goes through the keyed-hash index ``prov:expert_ids``. Experts
loaded from the registry therefore have empty ``id_number`` and ``phone``; `personal_data`
opens one box when a real need arises (an SMS gateway), `expert_by_id_number` answers the desk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.lifecycle import ProjectState, StoryEntry
from coordinator.domain.model import Expert, Project, Province
from coordinator.domain.pii import PersonalData, PiiKeys
from coordinator.province.codec.companies import company_from_dict, company_to_dict
from coordinator.province.codec.experts import (
    expert_from_dict,
    expert_from_stored,
    expert_to_stored,
)
from coordinator.province.codec.places import (
    city_from_dict,
    city_to_dict,
    site_from_dict,
    site_to_dict,
)
from coordinator.province.codec.projects import project_from_dict, project_to_dict
from coordinator.store.layout import (
    CITIES,
    COMPANIES,
    EXPERT_IDS,
    EXPERTS,
    META,
    PROJECT_STATE,
    PROJECT_STORY,
    PROJECTS,
    SITES,
)
from coordinator.store.values import text

log = logging.getLogger("evalgrid.coordinator")

STORY_KEPT = 1000  # the newest transitions kept per project (a project goes through dozens)


class PersonalDataError(RuntimeError):
    """Personal data cannot be stored or read: the registry was opened without the keys."""


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Registry:
    def __init__(self, redis: aioredis.Redis, pii: PiiKeys | None = None) -> None:
        self.redis = redis
        self.pii = pii  # None: a reader that never needs personal data (checker, tools)

    def _keys(self) -> PiiKeys:
        if self.pii is None:
            raise PersonalDataError("this registry was opened without the coordinator's keys: "
                                    "it cannot seal or look up personal data")
        return self.pii

    def _stored_expert(self, expert: Expert) -> dict[str, Any]:
        sealed = self._keys().seal(expert.id, PersonalData(expert.id_number, expert.phone))
        return expert_to_stored(expert, sealed)

    async def store_province(self, province: Province, *, replace: bool = False) -> None:
        """Write a validated province atomically (projects included); personal data sealed."""
        keys = self._keys() if province.experts else None
        stale: list[str] = []
        if keys is not None and not replace:
            # A re-imported expert whose ID number changed must not stay findable by the old one.
            fresh = {keys.id_lookup(e.id_number) for e in province.experts}
            ids = {e.id for e in province.experts}
            for lookup, owner in (await self.redis.hgetall(EXPERT_IDS)).items():
                if text(owner) in ids and text(lookup) not in fresh:
                    stale.append(text(lookup))
        pipe = self.redis.pipeline(transaction=True)
        if replace:
            pipe.delete(CITIES, SITES, EXPERTS, COMPANIES, EXPERT_IDS)
        if stale:
            pipe.hdel(EXPERT_IDS, *stale)
        await self._add(pipe, CITIES,
                        ((c.name, city_to_dict(c)) for c in province.cities))
        await self._add(pipe, SITES, ((s.id, site_to_dict(s)) for s in province.sites))
        await self._add(pipe, EXPERTS,
                        ((e.id, self._stored_expert(e)) for e in province.experts))
        if keys is not None:
            index = {keys.id_lookup(e.id_number): e.id for e in province.experts}
            items = list(index.items())
            for i in range(0, len(items), 5000):
                pipe.hset(EXPERT_IDS, mapping=dict(items[i:i + 5000]))
        await self._add(pipe, COMPANIES,
                        ((c.id, company_to_dict(c)) for c in province.companies))
        for project in province.projects:
            pipe.hsetnx(PROJECTS, project.id, _dump(project_to_dict(project)))
            pipe.hsetnx(PROJECT_STATE, project.id, ProjectState.REGISTERED.value)
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
        sites_raw, experts_raw, companies_raw, projects_raw, cities_raw = await _hgetall_many(
            self.redis, SITES, EXPERTS, COMPANIES, PROJECTS, CITIES
        )
        experts = []
        legacy = []
        for raw in experts_raw.values():
            record = json.loads(raw)
            if "pii" in record:
                experts.append(expert_from_stored(record)[0])
            else:  # written before personal data was sealed: seal it now, if we can
                expert = expert_from_dict(record)
                legacy.append(expert)
                experts.append(dataclasses.replace(expert, id_number="", phone=""))
        if legacy:
            await self._seal_legacy(legacy)
        return Province(
            sites=tuple(site_from_dict(json.loads(v)) for v in sites_raw.values()),
            experts=tuple(experts),
            companies=tuple(
                company_from_dict(json.loads(v)) for v in companies_raw.values()
            ),
            projects=tuple(
                project_from_dict(json.loads(v)) for v in projects_raw.values()
            ),
            cities=tuple(sorted((city_from_dict(json.loads(v))
                                 for v in cities_raw.values()), key=lambda c: c.name)),
        )

    async def _seal_legacy(self, experts: list[Expert]) -> None:
        if self.pii is None:
            log.warning("%d expert records still hold personal data in clear; the coordinator "
                        "seals them when it starts", len(experts))
            return
        pipe = self.redis.pipeline(transaction=True)
        await self._add(pipe, EXPERTS, ((e.id, self._stored_expert(e)) for e in experts))
        pipe.hset(EXPERT_IDS, mapping={self.pii.id_lookup(e.id_number): e.id for e in experts})
        await pipe.execute()
        log.warning("sealed the personal data of %d expert records written in clear by an "
                    "older version", len(experts))

    async def expert_by_id_number(self, id_number: str) -> str | None:
        """The expert holding this ID number, through the keyed-hash index (never in clear)."""
        if not id_number.strip():
            return None
        owner = await self.redis.hget(EXPERT_IDS, self._keys().id_lookup(id_number))
        return text(owner) if owner is not None else None

    async def has_expert(self, expert_id: str) -> bool:
        return bool(await self.redis.hexists(EXPERTS, expert_id))

    async def personal_data(self, expert_id: str) -> PersonalData | None:
        """Open one expert's sealed personal data (callers audit why they needed it)."""
        raw = await self.redis.hget(EXPERTS, expert_id)
        if raw is None:
            return None
        _, sealed = expert_from_stored(json.loads(raw))
        return self._keys().unseal(expert_id, sealed)

    async def add_project(self, project: Project) -> bool:
        """Register a project; False when one with that id exists (a resend is harmless)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(PROJECTS, project.id, _dump(project_to_dict(project)))
        pipe.hsetnx(PROJECT_STATE, project.id, ProjectState.REGISTERED.value)
        added, _ = await pipe.execute()
        return bool(added)

    @staticmethod
    def stage_replaced_project(pipe: Any, project: Project) -> None:
        """A registered project's record replaced (a new window after an incident), in the
        caller's MULTI."""
        pipe.hset(PROJECTS, project.id, _dump(project_to_dict(project)))

    async def project(self, project_id: str) -> Project | None:
        raw = await self.redis.hget(PROJECTS, project_id)
        return project_from_dict(json.loads(raw)) if raw else None

    async def project_and_state(self, project_id: str) -> tuple[Project | None, str | None]:
        """`project` and `project_state` in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        self.stage_project_and_state(pipe, project_id)
        return self.read_project_and_state(*await pipe.execute())

    @staticmethod
    def stage_project_and_state(pipe: Any, project_id: str) -> None:
        """`project_and_state`'s two reads on the caller's pipeline (a single draw's first
        trip); their replies go to `read_project_and_state`."""
        pipe.hget(PROJECTS, project_id)
        pipe.hget(PROJECT_STATE, project_id)

    @staticmethod
    def read_project_and_state(raw: Any, state: Any) -> tuple[Project | None, str | None]:
        return (project_from_dict(json.loads(raw)) if raw else None,
                None if state is None else text(state))

    async def project_states(self) -> dict[str, str]:
        raw = await self.redis.hgetall(PROJECT_STATE)
        return {text(k): text(v) for k, v in raw.items()}

    async def project_state(self, project_id: str) -> str | None:
        """One project's state (one field: a national day holds 20,000 of them)."""
        raw = await self.redis.hget(PROJECT_STATE, project_id)
        return None if raw is None else text(raw)

    async def project_states_of(self, project_ids: list[str]) -> list[str | None]:
        """The states of these projects, in order, in one round trip (a plan's chunk)."""
        raw = await self.redis.hmget(PROJECT_STATE, project_ids)
        return [None if r is None else text(r) for r in raw]

    async def set_project_state(self, project_id: str, state: str) -> None:
        """Tests only: the workflow moves a project by `stage_transition` (lifecycle.py)."""
        await self.redis.hset(PROJECT_STATE, project_id, state)

    def stage_transition(self, pipe: Any, project_id: str, entry: StoryEntry) -> None:
        """The project's new state (the entry's `after`) and its story entry, in the caller's
        MULTI."""
        pipe.hset(PROJECT_STATE, project_id, entry.after)
        self.stage_story(pipe, project_id, entry)

    @staticmethod
    def stage_story(pipe: Any, project_id: str, entry: StoryEntry) -> None:
        """Append a transition to the project's story in the caller's MULTI (with the state
        it records, so neither is stored without the other)."""
        key = PROJECT_STORY.format(project_id)
        pipe.rpush(key, json.dumps(entry.to_dict(), sort_keys=True, separators=(",", ":")))
        pipe.ltrim(key, -STORY_KEPT, -1)

    async def story(self, project_id: str, *, last: int = 0) -> list[StoryEntry]:
        """The project's transitions, oldest first (only the `last` ones if given)."""
        raw = await self.redis.lrange(PROJECT_STORY.format(project_id),
                                      -last if last > 0 else 0, -1)
        return [StoryEntry.from_dict(json.loads(item)) for item in raw]

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
