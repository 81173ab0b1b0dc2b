"""Where a grid keeps its state: one directory, so `--data-dir DIR` says it all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def province(self) -> Path:
        return self.root / "province"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    def ensure(self) -> DataDir:
        for path in (self.root, self.keys, self.outbox, self.reports, self.logs, self.agents):
            path.mkdir(parents=True, exist_ok=True)
        self.keys.chmod(0o700)
        return self
