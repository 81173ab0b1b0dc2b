"""The sign-in lockout's scope states (``SIGN_IN_LOCK``): a lock survives a coordinator
restart. The rules that read and change them: `evalgrid.lockout`, `coordinator/sign_in_guard.py`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from coordinator.store.layout import SIGN_IN_LOCK


class ScopeStates:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def get(self, scope: str) -> bytes | str | None:
        """The scope's stored state (`ScopeState` JSON), or None."""
        raw: bytes | str | None = await self.redis.get(SIGN_IN_LOCK.format(scope))
        return raw

    async def put(self, scope: str, state_json: str, *, keep_s: int) -> None:
        """Store the state; Redis forgets it after `keep_s` (garbage collection only: the
        lock runs on the coordinator's clock)."""
        await self.redis.set(SIGN_IN_LOCK.format(scope), state_json, ex=keep_s)

    async def clear(self, scope: str) -> None:
        await self.redis.delete(SIGN_IN_LOCK.format(scope))
