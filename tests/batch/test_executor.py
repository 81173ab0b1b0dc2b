"""The same batch gives the same answer in-process, on local processes and on Ray."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from coordinator.batch.executor import make_executor
from coordinator.domain.fairness import Tally, fairness_pool, tally


def _run(spec: str) -> list[Tally]:
    pool = fairness_pool([5, 8, 13], seats=2)
    seeds = [hashlib.sha256(f"exec:{i}".encode()).digest() for i in range(300)]
    chunks = [seeds[i:i + 40] for i in range(0, len(seeds), 40)]
    executor = make_executor(spec)
    try:
        return executor.map_chunks(tally, pool, chunks)
    finally:
        executor.close()


def test_in_process_processes_and_ray_agree() -> None:
    """Chunk by chunk, in chunk order: 8 chunks on 2 Ray actors holding two each at once."""
    reference = _run("local")
    assert sum(part.draws for part in reference) == 300 and len(reference) == 8
    for spec in ("local:2", "ray:2"):
        other = _run(spec)
        assert [(p.draws, p.venues, p.experts, p.workstations) for p in other] == [
            (p.draws, p.venues, p.experts, p.workstations) for p in reference], spec


@pytest.mark.parametrize("spec", ["local:2", "ray:2"])
def test_the_shared_input_goes_once_per_object_not_per_call(spec: str) -> None:
    """Workers are kept for the next call with the same shared object (a day's screen) and
    replaced for another one; the answers stay those of in-process."""
    pool = fairness_pool([5, 8, 13], seats=2)
    other = fairness_pool([3, 4], seats=1)
    seeds = [hashlib.sha256(f"keep:{i}".encode()).digest() for i in range(60)]
    chunks = [seeds[i:i + 20] for i in range(0, len(seeds), 20)]
    executor = make_executor(spec)
    try:
        first = executor.map_chunks(tally, pool, chunks)
        workers = getattr(executor, "_pool", None) or list(getattr(executor, "_actors", []))
        again = executor.map_chunks(tally, pool, chunks)
        assert (getattr(executor, "_pool", None) or list(getattr(executor, "_actors", []))) \
            == workers  # the same workers: nothing sent again
        changed = executor.map_chunks(tally, other, chunks)
        assert (getattr(executor, "_pool", None) or list(getattr(executor, "_actors", []))) \
            != workers
    finally:
        executor.close()
    local = make_executor("local")
    assert [p.experts for p in first] == [p.experts for p in again] == [
        p.experts for p in local.map_chunks(tally, pool, chunks)]
    assert [p.experts for p in changed] == [p.experts for p in local.map_chunks(tally, other,
                                                                                 chunks)]


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


@pytest.mark.parametrize(("threaded", "method"), [(True, "forkserver"), (False, "fork")])
def test_a_process_running_threads_never_forks_its_workers(
        monkeypatch: pytest.MonkeyPatch, threaded: bool, method: str) -> None:
    """A worker forked from Ray's threads died about one time in two (BrokenProcessPool)."""
    from coordinator.batch import executor as module

    monkeypatch.setattr(module, "_threaded", lambda: threaded)
    executor = module.ProcessExecutor(1)
    try:
        seeds = [hashlib.sha256(b"x").digest()]
        assert executor.map_chunks(tally, fairness_pool([3, 4], seats=1), [seeds])
        assert executor._pool is not None
        assert executor._pool._mp_context.get_start_method() == method  # type: ignore[attr-defined]
    finally:
        executor.close()


def test_ray_shut_down_still_counts_as_threads() -> None:
    """Ray's threads outlive `ray.shutdown()` (the CI run that forked after it lost a worker):
    a fresh interpreter forks before Ray and not after it, and the answers stay the same."""
    code = """
import hashlib
from coordinator.batch.executor import make_executor
from coordinator.domain.fairness import fairness_pool, tally
pool = fairness_pool([3, 4], seats=1)
chunks = [[hashlib.sha256(f"t:{i}".encode()).digest()] for i in range(4)]
def run():
    executor = make_executor("local:2")
    try:
        answer = [p.experts for p in executor.map_chunks(tally, pool, chunks)]
        return executor._pool._mp_context.get_start_method(), answer
    finally:
        executor.close()
before = run()
ray = make_executor("ray:1")
ray.map_chunks(tally, pool, chunks[:1])
ray.close()
after = run()
print(before[0], after[0], before[1] == after[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split()[-3:] == ["fork", "forkserver", "True"]
