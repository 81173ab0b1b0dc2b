"""One way to stand up a grpc.aio server: mutual TLS, identity interceptor, health, reflection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from evalgrid.authorization import denial
from evalgrid.limits import RateLimit, rate_limit_from_env
from evalgrid.tls import SERVER_OPTIONS, IdentityInterceptor

#: Reflection v1 speaks the very messages of v1alpha (same fields, same numbers; only the
#: package differs), so one servicer answers both, over the same descriptor pool.
REFLECTION_V1: Final = "grpc.reflection.v1.ServerReflection"


def serve_reflection(names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1alpha and v1 for `names` (and for reflection itself)."""
    servicer = reflection.aio.ReflectionServicer(
        [*names, reflection.SERVICE_NAME, REFLECTION_V1])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
    }),))


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
        options=[*SERVER_OPTIONS, *options],
    )
    names = []
    for add, servicer, name in services:
        add(servicer, server)
        names.append(name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    serve_reflection([*names, health.SERVICE_NAME], server)
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
