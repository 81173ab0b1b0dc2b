"""Notices to drawn experts: venue and time only (SMS or a voice call in real deployments).

`Notifier` is the interface; `FileOutbox` appends each notice to a JSON Lines outbox that a
gateway (or the demo's simulated experts) reads. A notice never names the project, the
tenderer, the bidders or the other members.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Notice:
    notice_id: str
    expert_id: str
    venue_id: str
    venue: str  # name and address as the expert reads it
    start: datetime
    end: datetime
    code: str  # one-time sign-in code

    def to_dict(self) -> dict[str, str]:
        return {"notice_id": self.notice_id, "expert_id": self.expert_id,
                "venue_id": self.venue_id, "venue": self.venue,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "code": self.code}


class Notifier(Protocol):
    def send(self, notice: Notice) -> None: ...


class FileOutbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, notice: Notice) -> None:
        line = json.dumps(notice.to_dict(), sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class MemoryOutbox:
    """For unit tests of the workflow."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)


def read_outbox(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
