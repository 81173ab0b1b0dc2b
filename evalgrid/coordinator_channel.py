"""How clients reach the coordinator: one address or several (failover), and idempotent calls
retried on UNAVAILABLE.

- Several addresses ("h1:p1,h2:p2"): one gRPC channel over all of them (pick_first): only the
  leading coordinator listens (a standby binds nothing until it takes the lease, see
  `coordinator.leadership`), so the channel ends up on the leader and moves with it. The TLS
  name checked is the first address's host: every coordinator shares one certificate.
- Retries: a unary call is retried on UNAVAILABLE (a coordinator restarting or failing over,
  its Redis restarting) only when repeating it is harmless: it carries a request id (the
  coordinator answers a repeat with the first answer) or it only reads. Backoff is capped and
  jittered, within `RETRY_BUDGET_S`; each attempt keeps the caller's deadline. A streamed
  `PlanDay` (which carries a request id) gets gRPC's own retry policy (before any answer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import grpc

RETRY_BUDGET_S: Final = 45.0  # longer than a failover (10 s) plus a coordinator's start
RETRY_FIRST_S: Final = 0.2
RETRY_LONGEST_S: Final = 3.0

#: Methods that change nothing, retried even without a request id.
READS: Final = frozenset({
    "/evalgrid.v1.Operator/Status", "/evalgrid.v1.Operator/ListProjects",
    "/evalgrid.v1.Operator/ProjectSeats", "/evalgrid.v1.Operator/ListIncidents",
    # Moves the simulated clock to an absolute time that never goes back: a repeat is a no-op.
    "/evalgrid.v1.Operator/AdvanceClock",
})

SERVICE_CONFIG: Final = json.dumps({
    "methodConfig": [{
        "name": [{"service": "evalgrid.v1.Operator", "method": "PlanDay"}],
        "retryPolicy": {
            "maxAttempts": 5, "initialBackoff": "0.5s", "maxBackoff": "5s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


class AddressError(ValueError):
    """A coordinator address list that cannot be used; the message names the address."""


def channel_target(addresses: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and options for one address, or a comma-separated list of them."""
    parts = [a.strip() for a in addresses.split(",") if a.strip()]
    if len(parts) <= 1:
        return (parts[0] if parts else addresses), []
    literals = []
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            raise AddressError(f"coordinator: {part!r} is not HOST:PORT")
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            try:
                ip = ipaddress.ip_address(socket.getaddrinfo(
                    host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
            except (OSError, IndexError) as exc:
                raise AddressError(f"coordinator: cannot resolve {host!r}: {exc}") from None
        if ip.version != 4:
            raise AddressError(f"coordinator: {part!r}: several addresses must be IPv4")
        literals.append(f"{ip}:{port}")
    first_host = parts[0].rpartition(":")[0].strip("[]")
    return "ipv4:" + ",".join(literals), [("grpc.default_authority", first_host),
                                         ("grpc.lb_policy_name", "pick_first")]


def _idempotent(method: str, request: Any) -> bool:
    if method in READS:
        return True
    try:
        return bool(request.request_id)
    except AttributeError:
        return False


class RetryIdempotent(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Retries a harmless-to-repeat unary call on UNAVAILABLE (see the module docstring)."""

    def __init__(self, budget_s: float = RETRY_BUDGET_S,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.budget_s = budget_s
        self._sleep = sleep

    async def intercept_unary_unary(self, continuation: Any, details: Any,
                                    request: Any) -> Any:
        method = details.method
        if isinstance(method, bytes):
            method = method.decode("ascii", "replace")
        if not _idempotent(str(method), request):
            return await continuation(details, request)
        give_up = time.monotonic() + max(self.budget_s, details.timeout or 0.0)
        delay = RETRY_FIRST_S
        while True:
            call = await continuation(details, request)
            try:
                await call
                return call
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNAVAILABLE or \
                        time.monotonic() + delay >= give_up:
                    raise
            await self._sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RETRY_LONGEST_S)
