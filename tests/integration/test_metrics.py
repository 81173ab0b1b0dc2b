"""The coordinator's Prometheus endpoint, scraped over HTTP from a real grid.

RPC latency by method and code (a refusal counted under its code), the draw latency, sites by
liveness, queued commands, and the figures each agent pushes up its status stream.
"""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import Grid, focus_projects, wait_until
from prometheus_client.parser import text_string_to_metric_families

from evalgrid.ids import request_id


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_the_endpoint_reports_rpcs_draws_sites_and_agents(grid: Grid) -> None:
    metrics = grid.coordinator.metrics
    port = metrics.serve("127.0.0.1", 0)
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    await grid.draw(project.id)
    with pytest.raises(grpc.aio.AioRpcError):
        await grid.operator.StartEvaluation(operator_pb2.ProjectRequest(
            request_id=request_id(), project_id="NO-SUCH"), timeout=10)

    sites = len(grid.province.sites)

    async def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = await asyncio.to_thread(scrape, port)
        connected = found.get(("evalgrid_sites", (("link", "connected"),)))
        agents = {labels for (name, labels) in found if name == "evalgrid_agent_figure"}
        sites_with_figures = {dict(labels)["site"] for labels in agents}
        return found if connected == sites and len(sites_with_figures) == sites else None

    found = await wait_until(settled, "sites and agent figures on the endpoint", timeout=20)
    assert found[("evalgrid_rpc_seconds_count",
                  (("code", "OK"), ("method", "Operator.Draw")))] == 1
    assert found[("evalgrid_rpc_seconds_count",
                  (("code", "NOT_FOUND"), ("method", "Operator.StartEvaluation")))] == 1
    assert found[("evalgrid_draw_seconds_count", ())] == 1
    assert found[("evalgrid_sites", (("link", "lost"),))] == 0
    assert ("evalgrid_site_commands_pending", ()) in found
    assert found[("evalgrid_audit_retries_total", ())] == 0
    site = grid.province.sites[0]
    workstations = sum(len(v.workstations) for v in site.venues)
    booths = sum(value for (name, labels), value in found.items()
                 if name == "evalgrid_agent_figure" and dict(labels)["site"] == site.id
                 and dict(labels)["figure"].startswith("booths_"))
    assert booths == workstations
    metrics.stop()
