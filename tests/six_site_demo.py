"""One `evalgrid demo` on the smallest province (6 sites: 3 cities of 2), run once per session
(the `six_site_demo` fixture, tests/conftest.py): tests/test_cli.py checks its summary and
tests/security/test_personal_data.py scans everything it left, so it logs at DEBUG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 4242
SITES, PROJECTS = 6, 3
DEBUG_ENV = {"EVALGRID_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}


def demo_day() -> date:
    """The day `evalgrid demo` plays: tomorrow in UTC+8 (as `run_demo` computes it)."""
    return (datetime.now(UTC) + timedelta(hours=8)).date() + timedelta(days=1)


@dataclass(frozen=True)
class SixSiteDemo:
    data: Path
    output: Path  # everything it printed, stdout and stderr
    summary: dict[str, Any]  # its --json summary (the last line of its stdout)
    days: frozenset[date]  # the day it played (two if it crossed midnight)


def run_six_site_demo(root: Path) -> SixSiteDemo:
    data, output = root / "data", root / "demo-output.log"
    first = demo_day()
    with output.open("wb") as err:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "demo", "--data-dir", str(data),
             "--sites", str(SITES), "--projects", str(PROJECTS), "--seed", str(SEED), "--json"],
            env={**os.environ, **DEBUG_ENV}, stdout=subprocess.PIPE, stderr=err, timeout=300,
            check=False)
    with output.open("ab") as out:
        out.write(done.stdout)
    assert done.returncode == 0, output.read_text(errors="replace")[-3000:]
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return SixSiteDemo(data, output, summary, frozenset({first, demo_day()}))
