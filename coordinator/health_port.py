"""The coordinator's plain gRPC health port (`--health-bind`): what a load balancer or a
process supervisor probes to find the leader.

It carries nothing but `grpc.health.v1.Health`, without TLS (a probe holds no certificate and
learns only a status): NOT_SERVING while a coordinator stands by (or is still starting),
SERVING while it leads. It is bound before the lease is sought, so a standby answers too.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

# The overall status ("") and the operator's service: a probe may ask for either.
SERVICES = ("", "evalgrid.v1.Operator")


class HealthPort:
    def __init__(self, bind: str) -> None:
        self.bind = bind
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._servicer = health.aio.HealthServicer()

    async def start(self) -> int:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        try:
            port = server.add_insecure_port(self.bind)
        except RuntimeError:
            port = 0
        if port == 0:
            raise RuntimeError(f"--health-bind: could not bind {self.bind}")
        await server.start()
        self._server, self.port = server, int(port)
        await self.leading(False)
        return self.port

    async def leading(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in SERVICES:
            await self._servicer.set(name, status)

    async def stop(self) -> None:
        if self._server is not None:
            await self._servicer.enter_graceful_shutdown()
            await self._server.stop(grace=0.5)
