"""The same batch gives the same answer in-process, on local processes and on Ray."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from coordinator.batch.executor import make_executor
from coordinator.domain.fairness import Tally, fairness_pool, tally


def _run(spec: str) -> Tally:
    pool = fairness_pool([5, 8, 13], seats=2)
    seeds = [hashlib.sha256(f"exec:{i}".encode()).digest() for i in range(300)]
    chunks = [seeds[i:i + 40] for i in range(0, len(seeds), 40)]
    executor = make_executor(spec)
    try:
        parts = executor.map_chunks(tally, pool, chunks)
    finally:
        executor.close()
    total = Tally()
    for part in parts:
        total.add(part)
    return total


def test_in_process_processes_and_ray_agree() -> None:
    reference = _run("local")
    assert reference.draws == 300
    for spec in ("local:2", "ray:2"):
        other = _run(spec)
        assert (other.draws, other.venues, other.experts, other.workstations) == (
            reference.draws, reference.venues, reference.experts, reference.workstations), spec


def test_ray_is_not_imported_until_used() -> None:
    """Building a Ray executor (in a fresh interpreter) neither starts nor imports Ray."""
    code = ("import sys; from coordinator.batch.executor import make_executor; "
            "make_executor('ray:2'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("spec", ["", "threads", "local:0", "ray:x", "local:-1"])
def test_a_bad_executor_is_named(spec: str) -> None:
    with pytest.raises(ValueError, match="executor"):
        make_executor(spec)
