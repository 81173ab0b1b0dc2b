"""One interface for batch work, run in-process, on local processes, or on a Ray cluster.

A job is a pure function `fn(shared, chunk) -> result`, importable without Ray, so it is tested
without Ray too. `shared` is the large input every chunk reads (a pool, an index): the Ray
executor puts it in the object store once; the process pool hands it to each worker once.
Ray is imported and initialised only when a Ray executor is first used, never at import.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

S = TypeVar("S")
C = TypeVar("C")
R = TypeVar("R")


class Executor(Protocol):
    name: str

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        """fn(shared, chunk) for every chunk; results in chunk order."""
        ...

    def close(self) -> None: ...


class InProcessExecutor:
    name = "in-process"

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        return [fn(shared, chunk) for chunk in chunks]

    def close(self) -> None:
        pass


_WORKER_SHARED: Any = None


def _set_shared(shared: Any) -> None:
    global _WORKER_SHARED
    _WORKER_SHARED = shared


def _call(fn: Callable[[Any, Any], Any], chunk: Any) -> Any:
    return fn(_WORKER_SHARED, chunk)


class ProcessExecutor:
    """Local worker processes; each receives the shared input once, at start.

    `start_method`: None for the platform's default; "forkserver" or "spawn" in a process that
    runs threads of its own (a gRPC server must not be forked).
    """

    def __init__(self, workers: int, start_method: str | None = None) -> None:
        self.workers = workers
        self.start_method = start_method
        self.name = f"{workers} local processes"

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        context = multiprocessing.get_context(self.start_method) if self.start_method else None
        with ProcessPoolExecutor(max_workers=self.workers, initializer=_set_shared,
                                 initargs=(shared,), mp_context=context) as pool:
            return list(pool.map(_call, [fn] * len(chunks), chunks))

    def close(self) -> None:
        pass


class RayExecutor:
    """Ray tasks over chunks, at most `in_flight` at a time, drained with `ray.wait`."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 in_flight: int = 64) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.in_flight = in_flight
        cpus = num_cpus or "all"
        self.name = f"ray ({address})" if address else f"ray (local, {cpus} cpus)"
        self._started = False

    def _ray(self) -> Any:
        import ray

        if not self._started:
            if not ray.is_initialized():
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False,
                             log_to_driver=False)
            self._started = True
        return ray

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        ray = self._ray()
        remote = ray.remote(_ray_task)
        shared_ref = ray.put(shared)
        results: list[Any] = [None] * len(chunks)
        pending: dict[Any, int] = {}
        next_chunk = 0
        while next_chunk < len(chunks) or pending:
            while next_chunk < len(chunks) and len(pending) < self.in_flight:
                pending[remote.remote(fn, shared_ref, chunks[next_chunk])] = next_chunk
                next_chunk += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
        return results

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _ray_task(fn: Callable[[Any, Any], Any], shared: Any, chunk: Any) -> Any:
    return fn(shared, chunk)


def make_executor(spec: str) -> Executor:
    """`local` (in-process), `local:N` (N processes), `ray` / `ray:N` (a local Ray with N CPUs),
    `ray:auto` or `ray://host:port` (a cluster)."""
    if spec == "local":
        return InProcessExecutor()
    if spec.startswith("local:"):
        return ProcessExecutor(_positive(spec[6:], spec))
    if spec == "ray":
        return RayExecutor()
    if spec == "ray:auto" or spec.startswith("ray://"):
        return RayExecutor(address="auto" if spec == "ray:auto" else spec)
    if spec.startswith("ray:"):
        return RayExecutor(num_cpus=_positive(spec[4:], spec))
    raise ValueError(f"executor: unknown {spec!r} (local, local:N, ray, ray:N, ray:auto, "
                     "ray://host:port)")


def _positive(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"executor: {spec!r} needs a positive worker count")
    return int(text)
