"""What a benchmark ran on, printed with every table: figures mean nothing without it."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def box_speed(repeat: int = 3) -> float:
    """Seconds, best of `repeat`, for a fixed mix of the work a plan does on one core (Python
    objects, numpy passes and a sort, hashing, JSON). A shared box has slow spells (the same
    code's day plan moved by 45% within half an hour): the figure printed beside a run's
    results tells a slow spell from a slower program. The collector is held off meanwhile: the
    mix's objects would set off collections over the caller's heap, which measure the heap,
    not the box (13% more in a heap of 6 million objects)."""
    best = float("inf")
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            table = {f"e{i}": (i, i * 2) for i in range(200_000)}
            rows = np.random.default_rng(0).integers(0, 1 << 30, 1_000_000)
            np.sort(rows)
            np.flatnonzero(rows & 1)
            hashlib.sha256(bytes(20_000_000)).digest()
            json.dumps([{"id": k, "v": v} for k, v in list(table.items())[:50_000]])
            best = min(best, time.perf_counter() - t0)
    finally:
        if collecting:
            gc.enable()
    return best


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def ms_row(name: str, seconds: Sequence[float]) -> list[str]:
    ms = [s * 1000 for s in seconds]
    return [name, str(len(ms)), f"{statistics.median(ms):.2f}", f"{pct(ms, 99):.2f}",
            f"{max(ms):.2f}"]


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, caption=f"machine: {machine()}")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
