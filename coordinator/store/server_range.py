"""The Redis-compatible servers the store runs on, and whether one can read a given data dir.

One supported range: Redis 6.2 to 7.x and Valkey 7.2 to 9.x. Servers do not always fail on
persistence files they cannot read: Redis 6.2 on a data dir written by Redis 7 (whose
append-only file moved into `appendonlydir/`) starts empty without a word. So before a server
starts on a data dir, the store compares that server with the one recorded as the dir's last
writer and with the format of the files it finds, and refuses, naming why, instead of starting
empty.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# (lowest, highest) major.minor of each family; a data dir written by a newer one is refused.
SUPPORTED: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "redis": ((6, 2), (7, 99)),
    "valkey": ((7, 2), (9, 99)),
}
SUPPORTED_TEXT = "Redis 6.2 to 7.x, Valkey 7.2 to 9.x"
# Valkey forked from Redis 7.2.4: it reads what Redis up to 7.2 wrote, not the reverse.
VALKEY_READS_REDIS_UP_TO = (7, 2)
MARKER = "server.json"  # in the Redis directory: the last server that wrote it
MULTIPART_AOF_DIR = "appendonlydir"  # Redis 7 and later keep the append-only file here
_BANNER = re.compile(r"^(Redis|Valkey) server v=(\d+)\.(\d+)\.(\d+)")
_RDB_MAGIC = re.compile(rb"^(REDIS|VALKEY)(\d{3,4})")


class ServerRangeError(RuntimeError):
    """A server outside the supported range, or a data dir it cannot read."""


@dataclass(frozen=True)
class ServerVersion:
    family: str  # "redis" or "valkey"
    version: tuple[int, int, int]

    def __str__(self) -> str:
        return f"{self.family.capitalize()} {'.'.join(map(str, self.version))}"

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[0], self.version[1]

    def check_supported(self) -> None:
        low, high = SUPPORTED[self.family]
        if not low <= self.minor <= high:
            raise ServerRangeError(f"{self} is outside the supported range ({SUPPORTED_TEXT})")

    def reads_multipart_aof(self) -> bool:
        return self.family == "valkey" or self.minor >= (7, 0)

    def reads_rdb(self, magic: str, version: int) -> bool:
        """Whether this server loads an RDB (or an AOF's RDB base) of this header."""
        if magic == "VALKEY":
            return self.family == "valkey" and self.version[0] >= 9 and version <= 80
        if self.family == "valkey":
            return version <= 11
        return version <= {(6, 2): 9, (7, 0): 10, (7, 2): 11}.get(self.minor, 12)

    def reads_data_of(self, writer: ServerVersion) -> bool:
        """Whether a data dir written by `writer` is safe for this server (no downgrade)."""
        if writer.family == self.family:
            return writer.minor <= self.minor
        if writer.family == "redis":  # Redis to Valkey: only from what Valkey forked
            return writer.minor <= VALKEY_READS_REDIS_UP_TO
        return False  # Valkey to Redis: Redis does not promise to read Valkey's files


def parse_banner(text: str) -> ServerVersion:
    """The server named by `redis-server --version` (or `valkey-server --version`)."""
    found = _BANNER.match(text.strip())
    if found is None:
        raise ServerRangeError(
            f"not a Redis or Valkey server (its --version says {text.strip()[:80]!r}); "
            f"supported: {SUPPORTED_TEXT}")
    family, major, minor, patch = found.groups()
    return ServerVersion(family.lower(), (int(major), int(minor), int(patch)))


def from_info(info: Mapping[str, object]) -> ServerVersion:
    """The server behind a connection, from INFO server (Valkey also reports redis_version)."""
    family = str(info.get("server_name") or "redis").lower()
    raw = (info.get("valkey_version") if family == "valkey" else None) or \
        info.get("redis_version")  # early Valkey 7.2 reports only redis_version
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", str(raw))
    if family not in SUPPORTED or found is None:
        raise ServerRangeError(
            f"server reports name {family!r}, version {raw!r}: not a Redis or Valkey server "
            f"this store knows; supported: {SUPPORTED_TEXT}")
    major, minor, patch = (int(part) for part in found.groups())
    return ServerVersion(family, (major, minor, patch))


@dataclass(frozen=True)
class DataDirFormat:
    """What a Redis directory holds, read from its files without starting a server."""

    directory: Path
    writer: ServerVersion | None  # from the marker; None for a new dir or one from before it
    multipart_aof: bool
    rdb_headers: tuple[tuple[Path, str, int], ...]  # (file, magic, version)

    @classmethod
    def read(cls, directory: Path, aof_name: str, rdb_name: str) -> DataDirFormat:
        writer = read_writer(directory)
        multipart = (directory / MULTIPART_AOF_DIR).is_dir()
        candidates = [directory / aof_name, directory / rdb_name]
        if multipart:
            candidates += sorted((directory / MULTIPART_AOF_DIR).glob(f"{aof_name}.*.base.*"))
        headers = []
        for path in candidates:
            header = _rdb_header(path)
            if header is not None:
                headers.append((path, *header))
        return cls(directory, writer, multipart, tuple(headers))

    def refusal(self, reader: ServerVersion) -> str | None:
        """Why `reader` must not start on this directory, or None when it reads it fully."""
        where = self.directory
        if self.writer is not None and not reader.reads_data_of(self.writer):
            return (f"{where} was last written by {self.writer}; {reader} may not read it "
                    f"back (a downgrade): run {self.writer} or newer (--redis-server)")
        if self.multipart_aof and not reader.reads_multipart_aof():
            return (f"{where} keeps its append-only file in {MULTIPART_AOF_DIR}/ (written by "
                    f"Redis 7 or later, or Valkey); {reader} would start empty on it")
        for path, magic, version in self.rdb_headers:
            if not reader.reads_rdb(magic, version):
                return (f"{path} is in format {magic} {version}, which {reader} cannot "
                        "read")
        return None


def _rdb_header(path: Path) -> tuple[str, int] | None:
    """The RDB magic and version at the start of a file (an AOF without a preamble: None)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(10)
    except (FileNotFoundError, IsADirectoryError):
        return None
    found = _RDB_MAGIC.match(head)
    if found is None:
        return None
    return found.group(1).decode(), int(found.group(2))


def read_writer(directory: Path) -> ServerVersion | None:
    path = directory / MARKER
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServerRangeError(f"{path}: not JSON ({exc}); it records which server wrote "
                               "this dir: restore it, or delete it if you know") from exc
    try:
        family = raw["server"]
        parts = tuple(int(part) for part in raw["version"].split("."))
        if family not in SUPPORTED or len(parts) != 3:
            raise ValueError
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ServerRangeError(
            f"{path}: field 'server' or 'version' missing or not like "
            "{'server': 'redis', 'version': '7.0.15'}") from exc
    return ServerVersion(family, (parts[0], parts[1], parts[2]))


def record_writer(directory: Path, server: ServerVersion, binary: str) -> None:
    """Write down (atomically) the server now writing this dir, and the binary it ran."""
    path = directory / MARKER
    body = {"server": server.family, "version": ".".join(map(str, server.version)),
            "binary": binary}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def recorded_binary(directory: Path) -> str | None:
    """The binary that last served this dir, if the marker names one that is still there."""
    try:
        binary = json.loads((directory / MARKER).read_text(encoding="utf-8")).get("binary")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(binary, str) or not os.access(binary, os.X_OK):
        return None
    # A file in the data dir must not make the store run a binary others could have swapped.
    stat = os.stat(binary)
    if stat.st_uid not in (0, os.getuid()) or stat.st_mode & 0o022:
        return None
    return binary
