"""One interface for batch work, run in-process, on local processes, or on a Ray cluster.

A job is a pure function `fn(shared, chunk) -> result`, importable without Ray, so it is tested
without Ray too. `shared` is the large input every chunk reads (a pool, an index): the Ray
executor puts it in the object store once and hands it to long-lived actors, one per worker,
each of which deserialises it once for the whole call (never once per task: a national conflict
index is Python objects, seconds to unpickle); the process pool hands it to each worker once.
Ray is imported and initialised only when a Ray executor is first used, never at import.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
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


def _threaded() -> bool:
    """Does this process run threads a fork would copy without their owners (and their locks
    as held)? Python's own, and Ray's once it was imported: 9 of its 23 threads outlive
    `ray.shutdown()`. Ray is not imported for the question. NumPy's BLAS threads are left out:
    they mend themselves in a fork child."""
    return threading.active_count() > 1 or "ray" in sys.modules


class ProcessExecutor:
    """Local worker processes; each receives the shared input once, at start, and they are
    kept for the next call with the same `shared` object (a day's screen: sent once per day).

    `start_method`: None to fork a process without threads and use "forkserver" in one that
    runs them: a worker forked from Ray's threads died about one time in two
    (BrokenProcessPool), even after `ray.shutdown()`.
    """

    def __init__(self, workers: int, start_method: str | None = None) -> None:
        self.workers = workers
        self.start_method = start_method
        self.name = f"{workers} local processes"
        self._pool: ProcessPoolExecutor | None = None
        self._shared: Any = None

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        if self._pool is None or self._shared is not shared:
            self.close()
            method = self.start_method or ("forkserver" if _threaded() else "fork")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_set_shared,
                                             initargs=(shared,),
                                             mp_context=multiprocessing.get_context(method))
            self._shared = shared
        return list(self._pool.map(_call, [fn] * len(chunks), chunks))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self._pool, self._shared = None, None


class RayExecutor:
    """Ray actors over chunks: `shared` goes once to each of up to `in_flight` actors (one per
    CPU), which then take the chunks as they come free (`ray.wait`), each with `QUEUED` chunks
    in hand so that it never waits for the driver between two. The actors are kept for the
    next call with the same `shared` object (a day's screen: sent once per day)."""

    #: Chunks handed to an actor at once: the next is in its queue when it finishes one (with
    #: one, an actor sat idle for the driver's notice, result fetch and next hand-over).
    QUEUED = 2

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 in_flight: int = 64) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.in_flight = in_flight
        cpus = num_cpus or "all"
        self.name = f"ray ({address})" if address else f"ray (local, {cpus} cpus)"
        self._started = False
        self._actors: list[Any] = []
        self._shared: Any = None

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

    def workers(self) -> int:
        """How many actors a call starts: the cluster's CPUs, at most `in_flight`."""
        ray = self._ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, min(self.in_flight, cpus))

    def map_chunks(self, fn: Callable[[S, C], R], shared: S, chunks: Sequence[C]) -> list[R]:
        if not chunks:
            return []
        ray = self._ray()
        if not self._actors or self._shared is not shared:
            self._release()
            holder = ray.remote(num_cpus=1)(_Holder)
            shared_ref = ray.put(shared)
            self._actors = [holder.remote(shared_ref) for _ in range(self.workers())]
            self._shared = shared
        actors = self._actors
        try:
            results: list[Any] = [None] * len(chunks)
            pending: dict[Any, tuple[int, Any]] = {}
            next_chunk = 0
            free = [actor for _ in range(self.QUEUED) for actor in actors]  # one per place
            while next_chunk < len(chunks) or pending:
                while next_chunk < len(chunks) and free:
                    actor = free.pop()
                    pending[actor.run.remote(fn, chunks[next_chunk])] = (next_chunk, actor)
                    next_chunk += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index, actor = pending.pop(ref)
                    results[index] = ray.get(ref)
                    free.append(actor)
            return results
        except BaseException:
            self._release()  # an actor may be dead or busy: start afresh next time
            raise

    def _release(self) -> None:
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
        self._actors, self._shared = [], None

    def close(self) -> None:
        self._release()
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class _Holder:
    """A Ray actor holding the call's shared input (deserialised once, at start)."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared

    def run(self, fn: Callable[[Any, Any], Any], chunk: Any) -> Any:
        return fn(self.shared, chunk)


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
