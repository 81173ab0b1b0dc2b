"""Replies remembered by request id, so a resent request is answered once (``REQUEST``).

The caller passes the scope (the RPC and the caller's identity, `evalgrid.tls.call_scope`) with
the id: an id reused by another caller or RPC replays nothing of theirs.
"""

from __future__ import annotations

import json
from typing import Any, Final

import redis.asyncio as aioredis

from coordinator.store.layout import REQUEST

REQUEST_TTL_S: Final = 7 * 24 * 3600  # a resend comes within minutes; a week is generous


class Requests:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def replay(self, scope: str, request_id: str) -> dict[str, Any] | None:
        if not request_id:
            return None
        return self.read_replay(request_id,
                                await self.redis.get(REQUEST.format(scope + request_id)))

    @staticmethod
    def stage_replay(pipe: Any, scope: str, request_id: str) -> None:
        """`replay`'s read on the caller's pipeline (a single draw's first trip); its reply
        goes to `read_replay`. One read even without a request id (its reply then means
        nothing), so the caller's replies keep their places."""
        pipe.get(REQUEST.format(scope + request_id))

    @staticmethod
    def read_replay(request_id: str, raw: bytes | str | None) -> dict[str, Any] | None:
        return json.loads(raw) if raw and request_id else None

    async def remember(self, scope: str, request_id: str, reply: dict[str, Any]) -> None:
        if request_id:
            pipe = self.redis.pipeline(transaction=False)
            self.stage_remember(pipe, scope, request_id, reply)
            await pipe.execute()

    @staticmethod
    def stage_remember(pipe: Any, scope: str, request_id: str, reply: dict[str, Any]) -> None:
        """`remember` on the caller's pipeline (a single draw's: with its `draw.placed`)."""
        if request_id:
            pipe.set(REQUEST.format(scope + request_id), json.dumps(reply), ex=REQUEST_TTL_S)
