"""The audit log in a real Redis: concurrent appends, forged entries, restarts, key files."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.domain.audit import (
    GENESIS,
    entry_hash,
    entry_to_json,
    generate_signing_key,
    make_entry,
    verify_chain,
)
from coordinator.store.audit_log import AuditConflictError, AuditLog
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.keys import (
    KeyFileError,
    load_or_create_master_key,
    load_or_create_signing_key,
    load_public_key,
    public_key_from_hex,
    public_key_hex,
    public_key_path,
)
from evalgrid.clock import SimClock

START = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def aredis(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return generate_signing_key()


def new_log(client: aioredis.Redis, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(client, signing_key=key, clock=SimClock(START))


async def test_append_and_read_back(aredis: aioredis.Redis, signing_key: Ed25519PrivateKey) -> None:
    log = new_log(aredis, signing_key)
    assert await log.head() == GENESIS
    first = await log.append("project.registered", "P-1", {"by": "host-1"})
    second = await log.append("draw.committed", "P-1", {"seed_hash": "ab" * 32})
    assert (first.seq, second.seq, second.prev_hash) == (1, 2, first.hash)
    assert first.at == "2025-06-01T08:00:00.000000Z"
    assert await log.entries() == [first, second]
    assert await log.entries(after_seq=1) == [second]
    assert await log.head() == second.head
    assert (await log.verify()).ok
    raw = await aredis.xrange("audit", "-", "+")
    assert raw is not None
    assert [i for i, _ in raw] == [b"1-0", b"2-0"]
    assert raw[0][1] == {b"entry": entry_to_json(first).encode()}
    assert await aredis.hgetall("audit:head") == {b"seq": b"2", b"hash": second.hash.encode()}


async def test_concurrent_appends_form_one_unbroken_chain(
    redis_server: EmbeddedRedis, signing_key: Ed25519PrivateKey
) -> None:
    """Tasks on one log, and two logs on separate connections (two coordinators), all racing."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    try:
        logs = [new_log(c, signing_key) for c in clients]

        async def writer(n: int) -> None:
            for i in range(10):
                await logs[n % 2].append("event", f"task-{n}", {"i": i})

        await asyncio.gather(*(writer(n) for n in range(10)))
        entries = await logs[0].entries()
        assert [e.seq for e in entries] == list(range(1, 101))
        head = await logs[1].head()
        check = verify_chain(entries, signing_key.public_key(), expected_head=head)
        assert check.ok and check.entries_checked == 100, check.reason
        assert sorted((e.subject, e.detail["i"]) for e in entries) == sorted(
            (f"task-{n}", i) for n in range(10) for i in range(10)
        )
    finally:
        for c in clients:
            await c.aclose()


async def test_stale_writer_cannot_fork_the_chain(
    redis_server: EmbeddedRedis, signing_key: Ed25519PrivateKey
) -> None:
    a = new_log(aioredis.Redis.from_url(redis_server.url), signing_key)
    b = new_log(aioredis.Redis.from_url(redis_server.url), signing_key)
    await a.append("k", "s", {})
    await b.append("k", "s", {})  # b learns head 1, appends 2
    retries: list[int] = []
    a.on_retry = lambda: retries.append(1)  # what the metrics count (audit retries)
    third = await a.append("k", "s", {"from": "a"})  # a's cached head is 1: refused, rebuilt
    assert third.seq == 3 and third.prev_hash == (await b.entries())[1].hash
    assert (await a.verify()).ok
    assert retries == [1]


async def test_forged_xadd_is_detected(
    aredis: aioredis.Redis, redis_client: redis.Redis, signing_key: Ed25519PrivateKey
) -> None:
    log = new_log(aredis, signing_key)
    for i in range(3):
        await log.append("event", "P-1", {"i": i})
    head = await log.head()
    forger = generate_signing_key()
    forged = make_entry(head, at="x", kind="draw.result", subject="P-1", detail={}, key=forger)
    redis_client.xadd("audit", {"entry": entry_to_json(forged)})  # around the script
    check = await log.verify()
    assert not check.ok and (check.first_bad_seq, check.position) == (4, 3), check.reason
    assert "signature" in check.reason
    # The log refuses to write after the forgery rather than burying it.
    with pytest.raises(AuditConflictError):
        await log.append("event", "P-1", {})


async def test_edited_stored_entry_is_detected(
    aredis: aioredis.Redis, redis_client: redis.Redis, signing_key: Ed25519PrivateKey
) -> None:
    log = new_log(aredis, signing_key)
    entries = [await log.append("event", "P-1", {"i": i}) for i in range(3)]
    edited = dataclasses.replace(entries[1], detail={"i": 99})
    edited = dataclasses.replace(edited, hash=entry_hash(edited))
    # A stream ID cannot be reused, so the attacker rebuilds the whole stream.
    redis_client.delete("audit")
    for e in (entries[0], edited, entries[2]):
        redis_client.xadd("audit", {"entry": entry_to_json(e)}, id=f"{e.seq}-0")
    check = await log.verify()
    assert not check.ok and check.first_bad_seq == 2 and "signature" in check.reason


async def test_restart_continues_the_chain(
    redis_server: EmbeddedRedis, signing_key: Ed25519PrivateKey
) -> None:
    first_client = aioredis.Redis.from_url(redis_server.url)
    before = [await new_log(first_client, signing_key).append("e", "s", {"i": i}) for i in range(2)]
    await first_client.aclose()
    second_client = aioredis.Redis.from_url(redis_server.url)
    try:
        log = new_log(second_client, signing_key)
        after = await log.append("e", "s", {"i": 2})
        assert after.seq == 3 and after.prev_hash == before[-1].hash
        assert (await log.verify()).ok
    finally:
        await second_client.aclose()


async def test_paged_reads(aredis: aioredis.Redis, signing_key: Ed25519PrivateKey) -> None:
    log = new_log(aredis, signing_key)
    for i in range(1203):
        await log.append("e", "s", {"i": i})
    entries = await log.entries()
    assert len(entries) == 1203 and entries[-1].seq == 1203
    assert [e.seq for e in await log.entries(after_seq=1000)] == list(range(1001, 1204))
    assert verify_chain(
        await log.entries(after_seq=1000),
        signing_key.public_key(),
        anchor=entries[999].head,
        expected_head=await log.head(),
    ).ok


def test_signing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_path(path) == tmp_path / "keys" / "audit-signing.pub.pem"
    public = load_public_key(public_key_path(path))
    assert public_key_hex(public) == public_key_hex(key)
    assert public_key_hex(public_key_from_hex(public_key_hex(key))) == public_key_hex(key)
    again = load_or_create_signing_key(path)
    assert public_key_hex(again) == public_key_hex(key)
    public_key_path(path).unlink()
    load_or_create_signing_key(path)
    assert public_key_path(path).exists()
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="accessible to others"):
        load_or_create_signing_key(path)


def test_master_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32 and load_or_create_master_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError):
        load_or_create_master_key(path)


async def test_a_batch_with_writes_is_one_chain_and_survives_a_lost_race(
    redis_server: EmbeddedRedis, signing_key: Ed25519PrivateKey
) -> None:
    a = new_log(aioredis.Redis.from_url(redis_server.url), signing_key)
    b = new_log(aioredis.Redis.from_url(redis_server.url), signing_key)
    entries, replies = await a.append_batch_with(
        [("k", "s", {"n": 1}), ("k", "s", {"n": 2})],
        before=lambda pipe: pipe.incrby("counter", 5), after=lambda pipe: pipe.set("x", "1"))
    assert [e.seq for e in entries] == [1, 2] and replies == [5]
    await b.append("k", "s", {"from": "b"})  # a's cached head (2) is now stale
    entries, replies = await a.append_batch_with(
        [("k", "s", {"n": 3}), ("k", "s", {"n": 4})],
        before=lambda pipe: pipe.incrby("counter", 1), after=lambda pipe: pipe.set("x", "2"))
    # The writes went with the first attempt; the entries follow b's, rebuilt on its head.
    assert replies == [6] and await a._redis.get("x") == b"2"
    assert [(e.seq, e.detail) for e in entries] == [(4, {"n": 3}), (5, {"n": 4})]
    assert await a._redis.get("counter") == b"6"  # not staged again by the retry
    assert (await a.verify()).ok and len(await a.entries()) == 5


async def test_a_batch_goes_in_one_round_trip_with_no_script_check_ahead(
        aredis: aioredis.Redis, signing_key: Ed25519PrivateKey) -> None:
    """The batch's script runs by EVAL inside the MULTI: no SCRIPT EXISTS trip before it, and
    a server that never saw the script (flushed, restarted) runs it all the same."""
    log = new_log(aredis, signing_key)
    await log.append("project.registered", "P-1", {"by": "host-1"})
    await aredis.script_flush()
    await aredis.config_resetstat()
    entries, replies = await log.append_batch_with(
        [("draw.committed", "P-1", {"n": 1}), ("draw.placed", "P-1", {"n": 2})],
        before=lambda pipe: pipe.set("beside", "1"))
    assert [e.seq for e in entries] == [2, 3] and replies == [True]
    stats = await aredis.info("commandstats")
    assert not any(name.startswith("cmdstat_script") for name in stats)
    assert stats["cmdstat_exec"]["calls"] == 1 and stats["cmdstat_eval"]["calls"] == 2
    assert (await log.verify()).ok and await aredis.get("beside") == b"1"
