"""Refresh README.md's copy of the lifecycle table (the domain module itself does no I/O):
`python -m coordinator.lifecycle_table README.md`."""

from __future__ import annotations

import sys
from pathlib import Path

from coordinator.domain.lifecycle import with_current_table


def main(argv: list[str]) -> None:
    target = Path(argv[0] if argv else "README.md")
    target.write_text(with_current_table(target.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
