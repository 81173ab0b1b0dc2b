"""The shell of the sign-in lockout: scope states in Redis, every attempt audited.

The rules are in `evalgrid.lockout`; this keeps each scope's state under
``lock:<scope>`` (so a lock survives a coordinator restart), serialises updates per scope, and
writes the audit entries: each refused attempt (``<what>.refused``, with the reason and the
count, never the code or the ID number), each lock (``<what>.locked``) and each unlock
(``signin.unlocked``, with who and why). Successes are audited by the workflow's own entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import redis.asyncio as aioredis

from coordinator.store.lockouts import ScopeStates
from evalgrid.clock import Clock
from evalgrid.lockout import (
    LockoutPolicy,
    ScopeState,
    locked_message,
    locked_scope,
    record_failure,
)

__all__ = ["SignInGuard"]

Record = Callable[[str, str, dict[str, Any]], Awaitable[Any]]


class SignInGuard:
    def __init__(self, redis: aioredis.Redis, clock: Clock, policy: LockoutPolicy,
                 record: Record, local_tz: tzinfo = UTC) -> None:
        self.states = ScopeStates(redis)
        self.local_tz = local_tz  # messages people read show the province's time
        self.clock = clock
        self.policy = policy
        self.record = record
        self._locks: dict[str, asyncio.Lock] = {}

    async def _state(self, scope: str) -> ScopeState:
        return ScopeState.from_json(await self.states.get(scope))

    async def _save(self, scope: str, state: ScopeState) -> None:
        if not state.failures and state.locked_until is None:
            await self.states.clear(scope)
            return
        # Real-time expiry only collects garbage; the lock itself runs on the (injected) clock.
        keep_s = int((self.policy.window + self.policy.lock_for).total_seconds()) + 86_400
        await self.states.put(scope, state.to_json(), keep_s=keep_s)

    async def refuse_if_locked(self, what: str, site_id: str, scopes: Sequence[str],
                               detail: dict[str, Any]) -> str | None:
        """The refusal message when any scope is locked now (the attempt is audited), else
        None."""
        states = {scope: await self._state(scope) for scope in scopes}
        found = locked_scope(states, scopes, self.clock.now())
        if found is None:
            return None
        scope, until = found
        await self.record(f"{what}.refused", site_id,
                          {**detail, "reason": "locked", "scope": scope,
                           "locked_until": until.isoformat()})
        return locked_message(scope, until, self.policy, self.local_tz)

    async def failed(self, what: str, site_id: str, scopes: Sequence[str],
                     detail: dict[str, Any]) -> list[tuple[str, datetime]]:
        """Count one wrong attempt in every scope; audit it, and any lock it engages."""
        now = self.clock.now()
        locked: list[tuple[str, datetime]] = []
        counts: dict[str, int] = {}
        for scope in scopes:
            async with self._locks.setdefault(scope, asyncio.Lock()):
                state = record_failure(await self._state(scope), scope, now, self.policy)
                await self._save(scope, state)
            counts[scope] = len(state.failures)
            if state.locked_until is not None:
                locked.append((scope, state.locked_until))
        await self.record(f"{what}.refused", site_id,
                          {**detail, "reason": "identity or code does not match",
                           "failures": counts})
        for scope, until in locked:
            await self.record(f"{what}.locked", site_id,
                              {**detail, "scope": scope, "locked_until": until.isoformat(),
                               "limit": self.policy.limit(scope)})
        return locked

    async def succeeded(self, scopes: Sequence[str]) -> None:
        """A right code clears the count of every scope it was tried in."""
        for scope in scopes:
            async with self._locks.setdefault(scope, asyncio.Lock()):
                state = await self._state(scope)
                if state.locked(self.clock.now()) is None:
                    await self.states.clear(scope)

    async def unlock(self, scopes: Sequence[str], *, site_id: str, reason: str,
                     by: str) -> list[str]:
        """Lift locks (and counts) on ``scopes``; audited with who and why. Returns the scopes
        that were locked."""
        now = self.clock.now()
        lifted = []
        for scope in scopes:
            async with self._locks.setdefault(scope, asyncio.Lock()):
                state = await self._state(scope)
                if state.locked(now) is not None:
                    lifted.append(scope)
                await self.states.clear(scope)
        await self.record("signin.unlocked", site_id,
                          {"scopes": list(scopes), "lifted": lifted, "reason": reason, "by": by})
        return lifted

