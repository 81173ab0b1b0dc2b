"""The agent's local persistence: an append-only journal, one fsynced JSON line per record.

What the agent must not forget across a crash or a coordinator outage goes here before it is
acted on or answered: commands applied (so a restarted agent holds its reservations and seat
passes without the coordinator), workstations marked faulty, sign-ins and score sheets taken
at the booths. Sign-ins and sheets carry a request id and are forwarded to the coordinator
until a `done` record closes them; the coordinator answers a repeated request id without a
second effect, so at-least-once forwarding gives exactly-once outcomes.

A crash can tear only the last line (one `write` of a whole line, then fsync); a torn tail is
dropped on open. A bad line anywhere else is corruption: refused, naming file and line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("evalgrid.agent")

FORWARDED = ("signin", "sheet")  # record kinds sent to the coordinator until done


class JournalError(RuntimeError):
    """The journal cannot be read or written; the message names the file and why."""


class OfflineJournal:
    def __init__(self, path: Path | None) -> None:
        """`path` None keeps the journal in memory (an agent without a data directory)."""
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._done: dict[str, dict[str, Any]] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if path.exists():
                self._load(path)

    def _load(self, path: Path) -> None:
        raw = path.read_bytes()
        *complete, tail = raw.split(b"\n")  # the newline commits a record
        for number, line in enumerate(complete, start=1):
            if not line:
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "kind" not in record:
                    raise ValueError("not a journal record")
            except ValueError as exc:
                raise JournalError(f"{path}:{number}: unreadable record ({exc})") from exc
            self._add(record)
        if tail:  # a write torn by a crash: it was never acknowledged to anyone
            log.warning("%s: dropping a torn last record (%d bytes)", path, len(tail))
            with path.open("r+b") as f:
                f.truncate(len(raw) - len(tail))
                os.fsync(f.fileno())

    def _add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if record["kind"] == "done":
            self._done[str(record["rid"])] = record

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one record durably (fsync) before the caller acts on it or answers."""
        record = {"kind": kind, **fields}
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        if self.path is not None:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise JournalError(f"{self.path}: cannot append ({exc.strerror})") from exc
        self._add(record)
        return record

    def done(self, rid: str, outcome: str, **fields: Any) -> None:
        if rid not in self._done:
            self.append("done", rid=rid, outcome=outcome, **fields)

    def outcome(self, rid: str) -> dict[str, Any] | None:
        return self._done.get(rid)

    def pending(self) -> list[dict[str, Any]]:
        """Sign-ins and sheets not yet answered by the coordinator, in the order taken."""
        return [r for r in self.records
                if r["kind"] in FORWARDED and not r.get("forwarded")
                and str(r["rid"]) not in self._done]

    def of_kind(self, *kinds: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.records if r["kind"] in kinds)
