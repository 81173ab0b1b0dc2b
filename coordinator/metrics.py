"""What an operations team scrapes: a Prometheus endpoint on the coordinator.

`evalgrid coordinator --metrics-port PORT` serves `/metrics` (plain HTTP, on the coordinator's
bind host; port 0 picks one, written to DATA_DIR/metrics.port). Figures:

- `evalgrid_rpc_seconds{method,code}`: latency of every unary RPC, by outcome;
- `evalgrid_draw_seconds`: a draw from request to booked reservations (Operator.Draw);
- `evalgrid_sites{link}`: sites by liveness (connected, disconnected, lost);
- `evalgrid_site_commands_pending`: commands queued for agents and not yet acknowledged;
- `evalgrid_notices_queued`, `evalgrid_notices_failed_total`: the webhook notifier's queue
  and the notices it could not deliver;
- `evalgrid_redis_errors_total{where}`: the store unreachable (an RPC answered UNAVAILABLE, or
  the sampler's read);
- `evalgrid_audit_retries_total`: audit appends that lost a race and were rebuilt;
- `evalgrid_agent_figure{site,figure}`: the figures each agent pushes up its status stream.

Each coordinator has its own registry (several may run in one test process). Gauges that need
the store are sampled every `SAMPLE_S` seconds by one task, not at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from coordinator.store.errors import STORE_UNAVAILABLE
from evalgrid.authorization import rpc_name

log = logging.getLogger("evalgrid.metrics")

SAMPLE_S = 2.0
#: Seconds: RPCs are mostly milliseconds; a draw at scale is tens to hundreds of ms.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CoordinatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpc_seconds = Histogram("evalgrid_rpc_seconds", "unary RPC latency",
                                     ["method", "code"], buckets=BUCKETS, registry=r)
        self.draw_seconds = Histogram("evalgrid_draw_seconds",
                                      "a draw, request to booked reservations",
                                      buckets=BUCKETS, registry=r)
        self.sites = Gauge("evalgrid_sites", "sites by liveness state", ["link"], registry=r)
        self.pending = Gauge("evalgrid_site_commands_pending",
                             "commands queued for agents, not yet acknowledged", registry=r)
        self.notices_queued = Gauge("evalgrid_notices_queued",
                                    "notices waiting for the webhook", registry=r)
        self.notices_failed = Counter("evalgrid_notices_failed",
                                      "notices the webhook could not deliver", registry=r)
        self.redis_errors = Counter("evalgrid_redis_errors", "the store was unreachable",
                                    ["where"], registry=r)
        self.audit_retries = Counter("evalgrid_audit_retries",
                                     "audit appends rebuilt after a lost race", registry=r)
        self.agent_figure = Gauge("evalgrid_agent_figure", "figures agents push up their stream",
                                  ["site", "figure"], registry=r)
        self._http: Any = None
        self.port = 0

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (a thread); the port it took."""
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._http.server_address[1])
        return self.port

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    async def sample(self, read: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Every SAMPLE_S, set the sampled gauges from `read()`; a store error is counted."""
        while True:
            try:
                figures = await read()
            except STORE_UNAVAILABLE as exc:
                self.redis_errors.labels("sampler").inc()
                log.debug("metrics sample: store unavailable: %s", exc)
            else:
                for link, count in figures["sites"].items():
                    self.sites.labels(link).set(count)
                self.pending.set(figures["pending"])
                self.notices_queued.set(figures["notices_queued"])
            await asyncio.sleep(SAMPLE_S)


class RpcTimer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Times every unary-unary call by method and status code."""

    def __init__(self, metrics: CoordinatorMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = rpc_name(handler_call_details.method)  # "Operator.Draw"
        inner = handler.unary_unary
        metrics = self.metrics

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            began = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except BaseException:
                found = context.code()
                code = found.name if isinstance(found, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                elapsed = time.perf_counter() - began
                metrics.rpc_seconds.labels(method, code).observe(elapsed)
                if method == "Operator.Draw" and code == "OK":
                    metrics.draw_seconds.observe(elapsed)

        return grpc.unary_unary_rpc_method_handler(
            timed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
