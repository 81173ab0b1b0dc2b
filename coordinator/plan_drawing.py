"""A day plan's draws in a process of their own, beside the coordinator that places them.

A national plan is 20,000 draws in a row (each books into the plan's copy of the day screen
before the next is drawn) and, as they come, 20,000 placements in Redis. In one process both
share one interpreter lock, so the draws, the critical path, wait for the placements' sealing
and JSON. Here the draws run in a child forked at the start of phase 2: it inherits the plan's
desk, its day screen and the batch phase's results without copying them (copy-on-write), draws
in plan order and sends each `PlannedDraw` back through a pipe, while the coordinator places
the previous ones on its own core. The results are the very objects an in-process plan makes
(a test compares the two plans draw by draw).

Safety of the fork. The coordinator runs threads (gRPC, the event loop), which a child must
never use: the child runs only the pure draw (numpy, hashlib, json, pickle), touches no socket,
lock, event loop or Redis connection of the coordinator's, drops the inherited signal handling
(SIGTERM and SIGINT end it) and leaves with `os._exit`, running no exit handler of the parent's.
gRPC's own fork handlers would break such a child (evalgrid/forking.py): a plan forks only where
they are off (`may_fork`), and otherwise draws in-process. The child dies when the pipe's reader
is gone (a coordinator killed, even with SIGKILL: its next write fails), and the coordinator
ends it when the plan stops early or when it sends nothing for `STALL_S`.

Wire: a pipe of frames (a tag byte, a 4-byte big-endian length, the body). One frame per draw,
in plan order: b"D" and the pickled `PlannedDraw` with the day's snapshot and the plan's
projects sent by reference (the child's and the coordinator's are one object before the fork;
pickling the snapshot would be 300,000 candidates a draw, a project a hundred objects), then
b"F" and the child's figures (CPU, peak memory); b"E" and the error's text if a draw raised
(the error's line first, then its traceback). The coordinator reads whatever the pipe holds
in one system call (the pipe widened from 64 KB, less than one draw, to `PIPE_BYTES` or the
system's cap, 1 MiB on Linux by default): its reading thread waits for the interpreter lock
behind the placements once per read, so a read per frame throttled the child (it stood still
a sixth of the time).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import multiprocessing
import os
import pickle
import resource
import select
import signal
import struct
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.domain.draw.inputs import DrawSnapshot
from coordinator.domain.model import Project

if TYPE_CHECKING:
    from coordinator.day_plan import PlannedDraw

STALL_S = 120.0  # a draw takes milliseconds: a child silent this long is stuck, and is ended
_SNAPSHOT = "day-snapshot"
_HEADER = struct.Struct(">cI")  # tag, body length
PIPE_BYTES = 4 << 20  # asked for; Linux grants up to /proc/sys/fs/pipe-max-size (1 MiB)


class DrawingFailed(RuntimeError):
    """The drawing process raised, died or stalled; what was received stays received.
    `where`: the child's traceback, when a draw raised."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


@dataclass
class DrawingFigures:
    """What the child reports at its end (for the bench and the operator's log)."""

    cpu_s: float = 0.0
    peak_rss: int = 0  # bytes; most of it shared with the coordinator (copy-on-write)


class _Out(pickle.Pickler):
    def __init__(self, file: io.BytesIO, snapshot: DrawSnapshot, at: dict[int, int]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._snapshot, self._at = snapshot, at

    def persistent_id(self, obj: Any) -> str | int | None:
        if obj is self._snapshot:
            return _SNAPSHOT
        return self._at.get(id(obj)) if type(obj) is Project else None


class _In(pickle.Unpickler):
    def __init__(self, data: bytes, snapshot: DrawSnapshot, projects: Sequence[Project]
                 ) -> None:
        super().__init__(io.BytesIO(data))
        self._snapshot, self._projects = snapshot, projects

    def persistent_load(self, pid: Any) -> DrawSnapshot | Project:
        if pid == _SNAPSHOT:
            return self._snapshot
        if type(pid) is int and 0 <= pid < len(self._projects):
            return self._projects[pid]
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


class DrawingProcess:
    """`draw(project)` for each of `projects`, in order, in a forked child; iterate for the
    results. Use as a context manager: leaving it ends the child, however the plan stopped."""

    def __init__(self, draw: Callable[[Project], PlannedDraw], projects: Sequence[Project],
                 snapshot: DrawSnapshot) -> None:
        self._draw, self._projects, self._snapshot = draw, projects, snapshot
        # The plan's projects cross as their place in `projects` (both sides hold them).
        self._at = {id(p): n for n, p in enumerate(projects)}
        self.figures = DrawingFigures()
        self._frames: deque[tuple[bytes, bytes]] = deque()
        self._buffer = bytearray()
        self._fd, writer = os.pipe()
        _widen(writer)
        context = multiprocessing.get_context("fork")
        self._child = context.Process(target=self._run, args=(writer,), daemon=True,
                                      name="evalgrid-plan-drawing")
        try:
            self._child.start()
        finally:
            os.close(writer)  # the child's end: EOF here once the child is gone

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def __enter__(self) -> DrawingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._child.is_alive():
            self._child.kill()
        self._child.join()

    def __iter__(self) -> Iterator[PlannedDraw]:
        for n in range(len(self._projects)):
            tag, body = self._receive(n)
            if tag != b"D":
                error, _, where = body.decode(errors="replace").partition("\n")
                raise DrawingFailed(f"the drawing process failed at draw {n + 1} of "
                                    f"{len(self._projects)}: {error}", where)
            yield _In(body, self._snapshot, self._projects).load()
        tag, body = self._receive(len(self._projects))
        if tag == b"F":
            self.figures = pickle.loads(body)

    def _receive(self, n: int) -> tuple[bytes, bytes]:
        while not self._frames:
            ready, _, _ = select.select([self._fd], [], [], STALL_S)
            if not ready:
                raise DrawingFailed(f"the drawing process sent nothing for {STALL_S:.0f} s at "
                                    f"draw {n + 1} of {len(self._projects)}; it was ended")
            data = os.read(self._fd, PIPE_BYTES)
            if not data:
                self._child.join(5)
                raise DrawingFailed(f"the drawing process ended at draw {n + 1} of "
                                    f"{len(self._projects)} (exit code {self._child.exitcode})")
            self._buffer += data
            self._split()
        return self._frames.popleft()

    def _split(self) -> None:
        """Move the buffer's whole frames to `_frames`."""
        buffer, at = self._buffer, 0
        while len(buffer) - at >= _HEADER.size:
            tag, size = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + size
            if end > len(buffer):
                break
            with memoryview(buffer) as view:  # one copy of the body, not two
                self._frames.append((tag, bytes(view[at + _HEADER.size:end])))
            at = end
        del buffer[:at]

    # --- in the child ------------------------------------------------------------------------

    def _run(self, writer: int) -> None:
        os.close(self._fd)
        signal.set_wakeup_fd(-1)  # the parent's event loop's, inherited
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        started = time.process_time()
        try:
            for project in self._projects:
                buffer = io.BytesIO()
                _Out(buffer, self._snapshot, self._at).dump(self._draw(project))
                _send(writer, b"D", buffer.getbuffer())
        except BrokenPipeError:
            os._exit(1)  # the coordinator is gone or gave up: nobody to draw for
        except BaseException as exc:  # reported to the coordinator, which raises it
            text = f"{type(exc).__name__}: {exc}"[:1000] + "\n" + traceback.format_exc(limit=8)
            with contextlib.suppress(OSError):
                _send(writer, b"E", text.encode()[:8000])
            os._exit(1)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        with contextlib.suppress(OSError):
            _send(writer, b"F", pickle.dumps(DrawingFigures(
                cpu_s=time.process_time() - started, peak_rss=peak)))
        os._exit(0)


def _send(fd: int, tag: bytes, body: bytes | memoryview) -> None:
    """One frame, written whole: header and body in one call, not joined into a copy of a
    50 KB draw first (a blocking pipe may still take them in parts)."""
    head = _HEADER.pack(tag, len(body))
    done = os.writev(fd, (head, body))
    if done < len(head) + len(body):
        view = memoryview(head + bytes(body))[done:]
        while view:
            view = view[os.write(fd, view):]


def _widen(fd: int) -> None:
    """Ask for a pipe of PIPE_BYTES, else the largest the system allows (speed only)."""
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        limit = 1 << 20
    for size in (PIPE_BYTES, min(PIPE_BYTES, limit)):
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
            return
