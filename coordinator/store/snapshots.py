"""The days' draw snapshots (``DRAW_SNAPSHOT``): sealed, filed under their digest, stored once.

A draw archive names the snapshot of the day it drew from (the candidates and venues after the
pool-level rules); `draw export` embeds it and a verifier checks it against that digest.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.draw.canonical import snapshot_from_json
from coordinator.domain.draw.inputs import DrawSnapshot
from coordinator.domain.seal import SealedBox, seal_json_text, unseal_json
from coordinator.store.layout import DRAW_SNAPSHOT
from coordinator.store.values import text


def snapshot_record(master_key: bytes, snapshot: DrawSnapshot) -> tuple[str, str]:
    """(Redis key, sealed JSON text) of a day's draw snapshot, filed under its digest."""
    digest = snapshot.digest()
    return DRAW_SNAPSHOT.format(digest), seal_json_text(
        master_key, digest, "draw_snapshot", snapshot.canonical().decode("ascii")).to_json()


async def read_snapshot(redis: Any, master_key: bytes, digest: str) -> DrawSnapshot | None:
    """The stored snapshot filed under `digest` (None if absent); checked against it."""
    raw = await redis.get(DRAW_SNAPSHOT.format(digest))
    if raw is None:
        return None
    found = snapshot_from_json(unseal_json(master_key, SealedBox.from_json(text(raw)),
                                           project_id=digest, purpose="draw_snapshot"))
    if found.digest() != digest:
        raise ValueError(f"snapshot {digest}: the stored snapshot digests to {found.digest()}")
    return found


class DrawSnapshots:
    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis = redis
        self.master_key = master_key
        self._stored: set[str] = set()  # digests known to be in Redis

    async def store_once(self, snapshot: DrawSnapshot) -> None:
        """Store the snapshot unless it is (one round trip the first time per digest)."""
        digest = snapshot.digest()
        if digest in self._stored:
            return
        key, sealed = snapshot_record(self.master_key, snapshot)
        if not await self.redis.exists(key):
            await self.redis.set(key, sealed)
        self._stored.add(digest)

    async def read(self, digest: str) -> DrawSnapshot | None:
        return await read_snapshot(self.redis, self.master_key, digest)
