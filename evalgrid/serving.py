"""One way to stand up a grpc.aio server: mutual TLS, identity interceptor, health, reflection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from evalgrid.authorization import denial
from evalgrid.limits import RateLimit, rate_limit_from_env
from evalgrid.tls import KEEPALIVE_OPTIONS, IdentityInterceptor


@dataclass
class Served:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer


async def start_server(
    *,
    bind: str,
    credentials: grpc.ServerCredentials,
    services: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]],
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    rate_limit: RateLimit | Literal["env"] | None = "env",
    options: Sequence[tuple[str, Any]] = (),
) -> Served:
    """Start a server on `bind` ("127.0.0.1:0" picks a port); `services` are
    (add_XServicer_to_server, servicer, full service name).

    Every call is checked at the door against `evalgrid.authorization` (deny by default) and
    the per-certificate `rate_limit` ("env": `EVALGRID_RATE_LIMIT` or the default; None: off);
    message sizes are capped both ways by `KEEPALIVE_OPTIONS` (`MAX_MESSAGE_BYTES`).
    """
    limit = rate_limit_from_env() if rate_limit == "env" else rate_limit
    server = grpc.aio.server(
        interceptors=[IdentityInterceptor(authorize=denial, rate_limit=limit),
                      *extra_interceptors],
        options=[*KEEPALIVE_OPTIONS, *options],
    )
    names = []
    for add, servicer, name in services:
        add(servicer, server)
        names.append(name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    try:
        port = server.add_secure_port(bind, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise RuntimeError(f"could not bind {bind}")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Served(server=server, port=port, health=health_servicer)
