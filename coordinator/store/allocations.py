"""The sealed allocations (a project's seats) and the coordinator's clear copies of them.

An allocation is personal data (who sits where), so Redis holds it sealed (``ALLOC``) and the
coordinator keeps the clear copy of each project it has opened (an audited unseal, which the
workflow records) in memory. Both are owned here, so the draw, the plan's chunks, the fault desk
and the recovery of half-placed draws keep and drop the same copies through one interface
instead of each reaching into the workflow's dictionary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis

from coordinator.allocation import Allocation
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.store.layout import ALLOC
from coordinator.store.values import text


class Allocations:
    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis = redis
        self.master_key = master_key
        self._open: dict[str, Allocation] = {}

    # --- the sealed store --------------------------------------------------------------------

    def seal(self, alloc: Allocation) -> str:
        return seal_json(self.master_key, alloc.project_id, "allocation",
                         alloc.to_dict()).to_json()

    async def read(self, project_id: str) -> Allocation | None:
        """The stored allocation, unsealed (the caller audits the unseal), or None."""
        raw = await self.redis.get(ALLOC.format(project_id))
        if raw is None:
            return None
        box = SealedBox.from_json(text(raw))
        return Allocation.from_dict(unseal_json(self.master_key, box, project_id=project_id,
                                                purpose="allocation"))

    def stage_save(self, pipe: Any, alloc: Allocation) -> None:
        """Store `alloc` sealed, in the caller's MULTI."""
        pipe.set(ALLOC.format(alloc.project_id), self.seal(alloc))

    def stage_save_sealed(self, pipe: Any, project_id: str, sealed: str) -> None:
        """Put back an allocation sealed earlier (a rolled-back draw's `before`)."""
        pipe.set(ALLOC.format(project_id), sealed)

    def stage_drop(self, pipe: Any, project_id: str) -> None:
        pipe.delete(ALLOC.format(project_id))

    async def save(self, alloc: Allocation) -> None:
        await self.redis.set(ALLOC.format(alloc.project_id), self.seal(alloc))

    # --- the clear copies ----------------------------------------------------------------------

    def opened(self, project_id: str) -> Allocation | None:
        """The clear copy, if this process has opened the project's allocation."""
        return self._open.get(project_id)

    def keep(self, alloc: Allocation) -> None:
        self._open[alloc.project_id] = alloc

    def forget(self, project_id: str) -> None:
        """Drop the clear copy: the next reader unseals the stored one (or finds none)."""
        self._open.pop(project_id, None)

    def items(self) -> Iterator[tuple[str, Allocation]]:
        """The opened allocations (a copy of the list: callers may await while iterating)."""
        return iter(list(self._open.items()))
