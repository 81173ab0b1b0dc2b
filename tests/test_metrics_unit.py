"""Unit tests of the coordinator's metrics that the grid test cannot reach cheaply: a store
outage counted by RPC, a sampler read that fails and the next that works."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from redis import exceptions as redis_errors

from coordinator.metrics import CoordinatorMetrics
from coordinator.service import answers_errors


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise Aborted(details)


class Servicer:
    def __init__(self, metrics: CoordinatorMetrics) -> None:
        self.metrics = metrics

    @answers_errors
    async def Draw(self, request: Any, context: Any) -> None:
        raise redis_errors.ConnectionError("socket closed")


def value(metrics: CoordinatorMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_a_store_outage_is_unavailable_and_counted_by_rpc() -> None:
    metrics = CoordinatorMetrics()
    context = Context()
    with pytest.raises(Aborted, match="retry"):
        await Servicer(metrics).Draw(None, context)
    assert context.code == grpc.StatusCode.UNAVAILABLE
    assert value(metrics, "evalgrid_redis_errors_total", where="Draw") == 1


async def test_the_sampler_counts_a_failed_read_and_keeps_going() -> None:
    metrics = CoordinatorMetrics()
    reads = 0

    async def read() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise redis_errors.TimeoutError("slow")
        return {"sites": {"connected": 3, "lost": 1}, "pending": 7, "notices_queued": 2}

    import coordinator.metrics as module

    module.SAMPLE_S, saved = 0.01, module.SAMPLE_S
    task = asyncio.create_task(metrics.sample(read))
    try:
        while reads < 3:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        module.SAMPLE_S = saved
    assert value(metrics, "evalgrid_redis_errors_total", where="sampler") == 1
    assert value(metrics, "evalgrid_sites", link="connected") == 3
    assert value(metrics, "evalgrid_sites", link="lost") == 1
    assert value(metrics, "evalgrid_site_commands_pending") == 7
    assert value(metrics, "evalgrid_notices_queued") == 2
