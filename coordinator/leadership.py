"""Failover: several coordinator processes against one Redis; one leads, the others stand by.

The leader holds a lease, a Redis key with an expiry that it renews; taking the lease also
takes a token from the fencing counter `fence:coordinator`, which only grows, and every booking
the leader makes carries it (`Bookings.default_fence`): a leader that was frozen past its
lease and wakes up is refused by Redis itself (a newer token exists), whatever it believes.

A standby binds no port and opens no stream: clients given every coordinator's address
(`evalgrid.coordinator_channel`) reach whichever one listens, the leader. The leader steps
down (stops serving and stands by again) as soon as it cannot renew, so it stops before its
lease can have passed to another; a standby takes over within a lease plus a poll
(`LEASE_MS` + `POLL_S`) of the leader's death, then loads the state like any restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Final

import redis.asyncio as aioredis

from coordinator.store.bookings import Fence
from coordinator.store.errors import STORE_OR_SOCKET_UNAVAILABLE
from coordinator.store.lease import LeaseStore

log = logging.getLogger("evalgrid.coordinator")

LEASE_MS: Final = 5_000
RENEW_S: Final = 1.0
POLL_S: Final = 0.5

STORE_ERRORS = STORE_OR_SOCKET_UNAVAILABLE


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(self, redis: aioredis.Redis, node: str | None = None,
                 lease_ms: int = LEASE_MS) -> None:
        self.redis = redis
        self.node = node or node_id()
        self.lease_ms = lease_ms
        self.lease = LeaseStore(redis)
        self.holder = ""  # "node|token" while leading

    async def acquire(self) -> Fence:
        """Stand by until the lease is ours; returns the fencing token that comes with it."""
        announced = False
        while True:
            try:
                token = await self.lease.acquire(self.node, self.lease_ms)
            except STORE_ERRORS as exc:
                log.warning("standby %s: store unavailable (%s)", self.node, exc)
                token = 0
            if token:
                self.holder = f"{self.node}|{token}"
                log.warning("coordinator %s leads (fencing token %d)", self.node, token)
                return self.lease.fence(token)
            if not announced:
                log.warning("coordinator %s stands by: another leads", self.node)
                announced = True
            await asyncio.sleep(POLL_S)

    async def hold(self) -> None:
        """Renew the lease until it cannot be: returns when this node must step down (the
        lease is another's, or unrenewed for longer than a safe part of it)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                renewed = await self.lease.renew(self.holder, self.lease_ms)
            except STORE_ERRORS as exc:
                log.warning("coordinator %s: cannot renew its lease (%s)", self.node, exc)
                renewed = -1
            if renewed == 1:
                last = time.monotonic()
            elif renewed == 0:
                log.warning("coordinator %s: the lease is another's: stepping down", self.node)
                return
            # Unrenewed: step down well before the lease can have lapsed and passed on.
            if time.monotonic() - last > self.lease_ms / 1000 - 2 * RENEW_S:
                log.warning("coordinator %s: lease unrenewed: stepping down", self.node)
                return

    async def resign(self) -> None:
        with contextlib.suppress(*STORE_ERRORS):
            await self.lease.resign(self.holder)
        self.holder = ""
