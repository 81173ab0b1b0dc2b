"""The coordinator's Redis client: one place for how it connects to the store.

A day plan places its draws in chunks, each one MULTI of several megabytes (64 sealed archives
of 70 KB at national size). Through a unix socket with the default send buffer (208 KB),
Python 3.11's asyncio transport sends such a write a buffer at a time and moves the rest of
its own buffer down after each send, a copy that grows with the square of the write: half of
the client's CPU for it (measured: 150 writes of 4.5 MB, 1.48 s of CPU against 0.72 s with an
8 MB buffer). A unix socket asks for `SEND_BUFFER` (the kernel caps it at
`net.core.wmem_max`: where that is left at its default, nothing changes); TCP keeps the
kernel's own tuning.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.connection import UnixDomainSocketConnection

SEND_BUFFER: Final = 8 << 20  # bytes asked for a unix socket's send buffer


class _UnixConnection(UnixDomainSocketConnection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        sock = self._writer.transport.get_extra_info("socket") if self._writer else None
        if sock is not None:
            with contextlib.suppress(OSError):  # speed only
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


def store_client(url: str, **options: Any) -> aioredis.Redis:
    """`redis.asyncio.Redis.from_url(url, **options)`, with the store's socket settings."""
    if url.startswith("unix://"):
        options.setdefault("connection_class", _UnixConnection)
    return aioredis.Redis.from_url(url, **options)
