"""Personal data and keys at rest: a whole demo day leaves none of them in clear.

Takes the session's `evalgrid demo --sites 6 --projects 3` (coordinator and agents as
processes, logging at DEBUG into the data dir: tests/six_site_demo.py), exports every
reported project's draws, then reads every file under the data dir (the Redis append-only
file and snapshot included: they are the store at rest) and the demo's own output for every
expert's ID number and phone number, and for the master key,
its derived keys and the audit signing key in hex and base64. Only the key files themselves,
where keys live by design, are not searched. The scan proves itself on planted positives: an
ID number in a log, a phone number written to Redis in clear, the master key in a report.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.demo import DemoOptions, _scale
from coordinator.domain.model import Expert
from coordinator.domain.pii import PiiKeys, derive_key
from coordinator.province.generator import generate_province
from coordinator.store.embedded_redis import EmbeddedRedis
from tests.six_site_demo import DEBUG_ENV, PROJECTS, SEED, SITES, SixSiteDemo

DIGITS = re.compile(rb"[0-9X]{11,}")


@functools.cache
def _experts(day: date) -> tuple[Expert, ...]:
    """The experts of the province the demo generates for `day` (same seed and scale)."""
    scale = _scale(DemoOptions(data_dir=Path("."), sites=SITES, projects=PROJECTS))
    return generate_province(seed=SEED, day=day, **scale).experts


def _people(days: Iterable[date]) -> set[bytes]:
    """Every expert's ID and phone number in the province the demo generated on `days`."""
    return {number.encode() for day in set(days) for e in _experts(day)
            for number in (e.id_number, e.phone)}


def _encodings(raw: bytes) -> set[bytes]:
    return {raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
            base64.urlsafe_b64encode(raw), base64.b64encode(raw).rstrip(b"=")}


def _key_needles(data: Path) -> set[bytes]:
    """The master key, every key derived from it, and the audit signing key, as text."""
    master = (data / "keys" / "master.key").read_bytes()
    signing = serialization.load_pem_private_key(
        (data / "keys" / "audit-signing.pem").read_bytes(), None)
    assert isinstance(signing, Ed25519PrivateKey)
    raw_signing = signing.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    pii = PiiKeys.from_master(master)
    keys = [master, raw_signing, pii.seal_key, pii.index_key,
            derive_key(master, "activation-codes")]
    return {needle for key in keys for needle in _encodings(key)}


def _files(data: Path) -> Iterator[Path]:
    """Every file under the data dir except where keys are kept by design."""
    for path in sorted(data.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(data)
        if relative.parts[0] == "keys" or (relative.parts[0] == "pki"
                                           and path.suffix == ".key"):
            continue
        yield path


def scan(blobs: Iterable[tuple[str, bytes]], people: set[bytes], keys: set[bytes]
         ) -> list[tuple[str, str]]:
    """(where, what) for every personal number or key found in clear."""
    found = []
    for where, data in blobs:
        for run in DIGITS.findall(data):
            for size in {len(p) for p in people}:
                for i in range(len(run) - size + 1):
                    if run[i:i + size] in people:
                        found.append((where, "personal number"))
        found += [(where, "key") for needle in keys if needle in data]
    return found


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)
    assert done.returncode == 0, log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def demo_day(six_site_demo: SixSiteDemo) -> tuple[Path, Path, set[date]]:
    data, output = six_site_demo.data, six_site_demo.output
    env = {**os.environ, **DEBUG_ENV}
    exports = data / "exports"
    exports.mkdir()
    for report in sorted((data / "reports").glob("*.json")):
        _run(["draw", "export", report.stem, "--out", str(exports / report.name),
              "--data-dir", str(data)], env, output)
    assert list(exports.glob("*.json")), "the demo reported no project to export"
    return data, output, set(six_site_demo.days)


def test_no_personal_number_or_key_in_clear_anywhere(
        demo_day: tuple[Path, Path, set[date]]) -> None:
    data, output, days = demo_day
    people, keys = _people(days), _key_needles(data)
    assert len(people) >= 2 * len(_experts(min(days))) > 2000
    files = list(_files(data))
    names = {str(f.relative_to(data)) for f in files}
    # What must have been searched: logs, outbox, reports, exports, the store at rest.
    assert any(n.startswith("logs/") for n in names)
    assert "outbox/notices.jsonl" in names
    assert any(n.startswith("exports/") for n in names)
    assert any(n.startswith("reports/") for n in names)
    assert any(n.startswith("redis/") and "aof" in n for n in names), sorted(names)
    assert sum(f.stat().st_size for f in files if "aof" in f.name) > 10_000
    blobs = [(str(f.relative_to(data)), f.read_bytes()) for f in files]
    blobs.append(("demo output", output.read_bytes()))
    assert scan(blobs, people, keys) == []


def test_the_scan_finds_what_is_planted(demo_day: tuple[Path, Path, set[date]],
                                        tmp_path: Path) -> None:
    data, _, days = demo_day
    people, keys = _people(days), _key_needles(data)
    id_number, phone = sorted(p for p in people if len(p) == 18)[0], \
        sorted(p for p in people if len(p) == 11)[0]
    planted_log = data / "logs" / "planted.log"
    planted_report = data / "reports" / "planted.txt"
    server = EmbeddedRedis(data / "redis").start()
    try:
        # Personal data written to the store in clear lands in the append-only file.
        client = redis.Redis.from_url(server.url)
        client.hset("planted", "phone", b"tel:" + phone + b";")
        client.close()
        planted_log.write_bytes(b"refused check-in for " + id_number + b"\n")
        master = (data / "keys" / "master.key").read_bytes()
        planted_report.write_text(f"debug dump {master.hex()}\n")
        found = scan([(str(f.relative_to(data)), f.read_bytes()) for f in _files(data)],
                     people, keys)
    finally:
        server.stop()
        planted_log.unlink()
        planted_report.unlink()
    where = {(w.split("/")[0], what) for w, what in found}
    assert ("logs", "personal number") in where
    assert ("redis", "personal number") in where
    assert ("reports", "key") in where
    assert len(found) == 3, found


def test_the_store_keeps_personal_data_sealed_and_indexed(
        demo_day: tuple[Path, Path, set[date]]) -> None:
    """The registry as stored: no ID or phone field, a sealed box, a keyed-hash index."""
    data, _, days = demo_day
    master = (data / "keys" / "master.key").read_bytes()
    pii = PiiKeys.from_master(master)
    expert = _experts(min(days))[0]

    async def read() -> tuple[bytes | None, bytes | None]:
        import redis.asyncio as aioredis

        from coordinator.store.layout import EXPERT_IDS, EXPERTS
        from coordinator.store.registry import Registry

        server = EmbeddedRedis(data / "redis").start()
        client = aioredis.Redis.from_url(server.url)
        try:
            registry = Registry(client, pii)
            assert await registry.expert_by_id_number(expert.id_number) == expert.id
            assert await registry.expert_by_id_number(expert.id_number.lower()) == expert.id
            assert await registry.expert_by_id_number("110101190001010000") is None
            opened = await registry.personal_data(expert.id)
            assert opened is not None and (opened.id_number, opened.phone) == (
                expert.id_number, expert.phone)
            record = await client.hget(EXPERTS, expert.id)
            index = await client.hget(EXPERT_IDS, pii.id_lookup(expert.id_number))
            return record, index
        finally:
            await client.aclose()
            server.stop()

    record, index = asyncio.run(read())
    assert record is not None and index == expert.id.encode()
    assert b'"id_number"' not in record and b'"phone"' not in record and b'"pii"' in record
