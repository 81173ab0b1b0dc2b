"""Operator.PlanDay on the in-process grid: progress then a summary, the agents get their
reservations, a retry is harmless, bad requests are refused naming the field, operators only."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import AUDITOR, DAY, Grid

from coordinator.checker import check_grid
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.offline import OfflineError, reveal_plan_seeds
from coordinator.store.layout import PLAN_SEED
from coordinator.workflow import WorkflowError
from evalgrid.ids import request_id


async def _plan(grid: Grid, rid: str, day: str = DAY.isoformat(), executor: str = "",
                role: str = "operator", subject: str = "") -> list[operator_pb2.PlanProgress]:
    stub = grid.operator if role == "operator" else grid.operator_as(role, subject)
    stream = stub.PlanDay(operator_pb2.PlanDayRequest(request_id=rid, day=day,
                                                      executor=executor), timeout=120)
    return [update async for update in stream]


class _Broken:
    """An executor whose cluster is gone."""

    name = "broken"

    def map_chunks(self, fn: object, shared: object, chunks: object) -> list[object]:
        raise ConnectionError("no cluster at the address")

    def close(self) -> None:
        pass


async def _refusal(grid: Grid, **kw: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _plan(grid, request_id(), **kw)
    return caught.value


async def test_a_day_planned_over_grpc(grid: Grid) -> None:
    await grid.register_all()
    for kw, code, field in [({"day": "02/03/2026"}, grpc.StatusCode.INVALID_ARGUMENT, "day"),
                            ({"executor": "ray://elsewhere:10001"},
                             grpc.StatusCode.INVALID_ARGUMENT, "executor"),
                            ({"executor": "local:2"}, grpc.StatusCode.INVALID_ARGUMENT,
                             "executor")]:
        refused = await _refusal(grid, **kw)
        assert refused.code() == code and refused.details().startswith(field), refused.details()
    denied = await _refusal(grid, role="auditor", subject=AUDITOR)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    workflow = grid.coordinator.workflow
    assert workflow is not None
    with pytest.raises(WorkflowError, match="no cluster") as failed:
        await workflow.plan_day(DAY, request_id(), _Broken())
    assert failed.value.field == "plan"
    assert (await workflow.audit.entries())[-1].kind == "plan.failed"
    assert set((await workflow.registry.project_states()).values()) == {"registered"}
    audit_before = (await workflow.audit.head()).seq
    assert audit_before >= len(grid.province.projects)  # registrations only: nothing planned

    rid = request_id()
    updates = await _plan(grid, rid, executor="local")
    phases = [u.phase for u in updates]
    assert phases[0] == "screening" and phases[-1] == "done" and "drawing" in phases
    summary = updates[-1].summary
    projects = len(grid.province.projects)
    assert (summary.projects, summary.drawn) == (projects, projects)
    assert [u.done for u in updates if u.phase == "drawing"] == list(range(1, projects + 1))
    assert {o.project_id for o in summary.outcomes} == {p.id for p in grid.province.projects}
    assert len(summary.seed_hash) == 64

    seats = sum(o.seats for o in summary.outcomes)
    assert len(grid.notices()) == seats
    expected: Counter[tuple[str, object]] = Counter()
    for notice in grid.notices():
        project = next(p for p in grid.province.projects
                       if p.window.start == datetime.fromisoformat(notice["start"]))
        expected[(grid.site_of_venue(notice["venue_id"]), project.window.start)] += 1
    await grid.wait_held(expected)  # type: ignore[arg-type]

    head = (await workflow.audit.head()).seq
    again = await _plan(grid, rid)  # the same request: the same summary, nothing redone
    assert again[-1].summary == summary and len(again) == 1
    assert (await workflow.audit.head()).seq == head
    fresh = await _plan(grid, request_id())  # a new request: nothing left to draw
    assert fresh[-1].summary.projects == 0

    kinds = Counter(e.kind for e in await workflow.audit.entries(after_seq=audit_before))
    assert kinds["plan.committed"] == kinds["plan.completed"] == 2
    assert kinds["draw.committed"] == kinds["draw.placed"] == projects
    check = await check_grid(grid.data.root, grid.redis_url)
    assert (check.double_bookings, check.rule_violations, check.audit_intact) == (0, 0, True)

    # The plan seed is kept sealed (it hashes to the committed one) and is not revealed before
    # the awards: each project's seed derives from it.
    plan_id = [e.detail["plan_id"] for e in await workflow.audit.entries()
               if e.kind == "plan.committed" and e.detail["projects"]][-1]  # the one that drew
    kept = await workflow.redis.hgetall(PLAN_SEED.format(plan_id))
    assert set(kept) == {b"day", b"sealed"}
    seed = unseal_json(workflow.master_key, SealedBox.from_json(kept[b"sealed"].decode()),
                       project_id=plan_id, purpose="plan-seed")["seed"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == summary.seed_hash
    assert seed not in kept[b"sealed"].decode()
    with pytest.raises(OfflineError, match="not reported yet"):
        await reveal_plan_seeds(str(DAY), grid.data.root, grid.redis_url)
    assert not any(e.kind == "plan.seed_revealed" for e in await workflow.audit.entries())
