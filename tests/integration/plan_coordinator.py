"""A coordinator on a private Redis with a fixed plan seed: the plan tests' set-up, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.domain.model import Province
from coordinator.domain.rules import load_rules
from coordinator.notifier import MemoryOutbox
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.workflow import Workflow
from evalgrid.clock import SimClock


@asynccontextmanager
async def private_redis(root: Path, server_binary: str | None = None
                        ) -> AsyncIterator[aioredis.Redis]:
    """A Redis of the test's own under `root` (`server_binary`: another server than the
    bundled one), stopped on exit."""
    server = EmbeddedRedis(root / "redis", server=server_binary).start()
    client = aioredis.Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()
        server.stop()


async def plan_coordinator(redis: aioredis.Redis, root: Path, *, province: Province,
                           now: datetime, seed: bytes, key: bytes, signer: Ed25519PrivateKey,
                           fresh: bool, fallback_at_once: bool = False) -> Workflow:
    """A coordinator on `redis` (a restart when not `fresh`: recovery runs in `load`) whose
    plans take `seed`; `fallback_at_once`: a redraw's day seed is the audited fallback."""
    workflow = Workflow(redis=redis, clock=SimClock(now), rules=load_rules(), master_key=key,
                        signing_key=signer, notifier=MemoryOutbox(),
                        reports_dir=root / "reports")

    async def fixed_seed(day: date) -> tuple[bytes, dict[str, Any]]:
        return seed, {}

    workflow.seed_shares.plan_seed = fixed_seed  # type: ignore[method-assign]
    if fallback_at_once:
        workflow.seed_shares.wait = timedelta(0)
    if fresh:
        await workflow.registry.store_province(province)
    await workflow.load()
    return workflow
