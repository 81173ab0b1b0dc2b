"""The security tests' snapshot of the store (`SecurityGrid.snapshot`, digested by the server):
it must see every kind of write, name the key written, and ignore how Redis orders members."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from security_grid import AUDIT_STREAM, SecurityGrid

from coordinator.store.embedded_redis import EmbeddedRedis


@pytest_asyncio.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[tuple[SecurityGrid, Any]]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.set("s", "one")
    await client.hset("h", mapping={"a": "1", "b": "2"})
    await client.sadd("set", "x", "y")
    await client.zadd("z", {"p": 1.0, "q": 2.0})
    await client.rpush("l", "1", "2")
    await client.xadd("st", {"f": "v"}, id="1-0")
    await client.xadd(AUDIT_STREAM, {"entry": "{}"})
    grid: Any = SimpleNamespace(agents={})
    try:
        yield SecurityGrid(grid=grid, redis=client, home="", other="", spare="",
                           spare_other="", home_ws="", other_ws=""), client
    finally:
        await client.aclose()


WRITES: dict[str, Callable[[Any], Awaitable[object]]] = {
    "s": lambda r: r.set("s", "two"),
    "h": lambda r: r.hset("h", "b", "3"),
    "set": lambda r: r.srem("set", "y"),
    "z": lambda r: r.zadd("z", {"p": 3.0}),
    "l": lambda r: r.lset("l", 0, "0"),
    "st": lambda r: r.xadd("st", {"f": "w"}, id="2-0"),
    "new": lambda r: r.set("new", ""),
}


@pytest.mark.parametrize("key", sorted(WRITES))
async def test_each_kind_of_write_is_seen_by_its_key(store: tuple[SecurityGrid, Any],
                                                     key: str) -> None:
    g, client = store
    before = await g.snapshot()
    await WRITES[key](client)
    assert before.changed(await g.snapshot()) == [key]


async def test_the_audit_trail_counts_apart_and_members_order_does_not_matter(
        store: tuple[SecurityGrid, Any]) -> None:
    g, client = store
    before = await g.snapshot()
    assert before.audit_length == 1 and b"audit" not in before.keys
    await client.xadd(AUDIT_STREAM, {"entry": "{}"})
    # The same members written again in another order: equal contents, equal digests.
    await client.delete("h", "set")
    await client.hset("h", mapping={"b": "2", "a": "1"})
    await client.sadd("set", "y", "x")
    after = await g.snapshot()
    assert before.changed(after) == [] and after.audit_length == 2
    # A field and its value swapped between two members is a change.
    await client.hset("h", mapping={"a": "2", "b": "1"})
    assert before.changed(await g.snapshot()) == ["h"]
