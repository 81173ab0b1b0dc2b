from __future__ import annotations

from pathlib import Path

import redis

from coordinator.store.embedded_redis import EmbeddedRedis


def test_embedded_redis_persists_acknowledged_writes_across_a_kill(tmp_path: Path) -> None:
    directory = Path(tmp_path) / "r"
    server = EmbeddedRedis(directory).start()
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    server.kill()  # no clean shutdown: only the fsynced append-only file survives
    again = EmbeddedRedis(directory).start()
    try:
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()


def test_second_instance_attaches_to_running_server(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "r").start()
    try:
        second = EmbeddedRedis(tmp_path / "r").start()
        assert second.process is None  # attached, did not start another server
        assert redis.Redis.from_url(second.url).ping()
    finally:
        first.stop()
