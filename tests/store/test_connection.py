"""The coordinator's store client (store/connection.py) on a real redis-server: a unix socket
asks for a large send buffer, and a MULTI of many megabytes goes through it whole."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from coordinator.store.connection import SEND_BUFFER, store_client
from coordinator.store.embedded_redis import EmbeddedRedis


async def test_a_unix_socket_gets_the_large_send_buffer(redis_server: EmbeddedRedis) -> None:
    client = store_client(redis_server.url)
    try:
        assert await client.ping()
        conn = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            sock = conn._writer.transport.get_extra_info("socket")  # type: ignore[union-attr]
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        finally:
            await client.connection_pool.release(conn)
        cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
        assert got >= 2 * min(SEND_BUFFER, cap)  # Linux doubles what it grants
        values = [os.urandom(1 << 20) for _ in range(8)]
        pipe = client.pipeline(transaction=True)
        for n, value in enumerate(values):
            pipe.hset(f"big:{n}", "sealed", value)
        await pipe.execute()
        assert [await client.hget(f"big:{n}", "sealed") for n in range(8)] == values
    finally:
        await client.aclose()
