"""How a grid process lives: start, run until SIGTERM or SIGINT, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable


async def run_until_signalled(stop: Callable[[], Awaitable[None]]) -> None:
    """Wait for SIGTERM/SIGINT, then await `stop()` (also if the wait is cancelled)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await stop()


def announce(line: str) -> None:
    """Print a lifecycle line in one write, so processes sharing a pipe never splice lines.

    `print` writes the text and the newline separately; unbuffered (as supervisors run us)
    two agents stopping together could then interleave as "agent A stoppedagent B stopped".
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
