"""Shared fixtures: a real redis-server on a temporary unix socket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from coordinator.domain.lifecycle import VALIDATE_ENV
from coordinator.store.embedded_redis import EmbeddedRedis
from evalgrid.forking import keep_grpc_out_of_forks
from tests.six_site_demo import SixSiteDemo, run_six_site_demo

# validate_state after every lifecycle event, in this process and the grids it starts.
os.environ[VALIDATE_ENV] = "1"
# As the `evalgrid` command does, before any test loads grpc: plans fork their drawing process.
keep_grpc_out_of_forks()


@pytest.fixture(scope="session")
def six_site_demo(tmp_path_factory: pytest.TempPathFactory) -> SixSiteDemo:
    """The session's one demo on 6 sites (tests/six_site_demo.py)."""
    return run_six_site_demo(tmp_path_factory.mktemp("demo6"))


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    """A private redis-server for one test (short path: unix sockets have a length limit)."""
    with tempfile.TemporaryDirectory(prefix="eg-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests read English unless they ask for Chinese (`evalgrid.i18n.using("zh_CN")`),
    whatever the machine's locale: here and in the programs they start (EVALGRID_LANG)."""
    from evalgrid import i18n

    monkeypatch.setenv("EVALGRID_LANG", "en")
    before = i18n._current
    i18n.set_language("en")

    try:
        yield
    finally:
        i18n._current = before
