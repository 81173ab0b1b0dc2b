"""The supervisor's share of a day's seed over real gRPC (auditor certificate): the day plan
waits for it, uses both shares, and falls back (audited) when it does not come in time."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import AUDITOR, DAY, Grid

from coordinator.domain.day_plan import seed_hash
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.domain.seed_protocol import final_seed
from coordinator.store.layout import SEED_SHARE
from evalgrid.ids import request_id

SECRET = bytes(range(7, 39))


async def _plan(grid: Grid) -> list[operator_pb2.PlanProgress]:
    stream = grid.operator.PlanDay(operator_pb2.PlanDayRequest(
        request_id=request_id(), day=DAY.isoformat()), timeout=120)
    return [update async for update in stream]


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _plan_refused(grid: Grid) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _plan(grid)
    return caught.value


def _commit(commitment: str, source: str = "") -> operator_pb2.SeedShareCommit:
    return operator_pb2.SeedShareCommit(request_id=request_id(), day=DAY.isoformat(),
                                        commitment=commitment, public_source=source)


def _reveal(secret: str, value: str = "") -> operator_pb2.SeedShareReveal:
    return operator_pb2.SeedShareReveal(request_id=request_id(), day=DAY.isoformat(),
                                        secret=secret, public_value=value)


async def test_the_plan_waits_for_the_supervisor_and_uses_both_shares(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert workflow is not None
    workflow.seed_shares.wait = timedelta(minutes=30)
    await grid.register_all()
    supervisor = grid.operator_as("auditor", AUDITOR)

    # Operators may not contribute; bad input is named.
    denied = await _refused(grid.operator.CommitSeedShare(
        _commit(hashlib.sha256(SECRET).hexdigest())))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = await _refused(supervisor.CommitSeedShare(_commit("xyz")))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith(
        "commitment")

    # No share yet: the plan waits, saying until when; nothing is drawn.
    waiting = await _plan_refused(grid)
    assert waiting.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "waiting for the supervisor's seed share" in waiting.details()
    assert set((await workflow.registry.project_states()).values()) == {"registered"}

    state = await supervisor.CommitSeedShare(_commit(hashlib.sha256(SECRET).hexdigest(),
                                                     "lottery draw 2026-041"))
    assert state.state == "committed" and len(state.coordinator_commitment) == 64
    assert "waiting" in (await _plan_refused(grid)).details()  # committed, not revealed
    wrong = await _refused(supervisor.RevealSeedShare(_reveal(bytes(32).hex(), "1 2 3")))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not hash to the commitment" in wrong.details()
    unnamed = await _refused(supervisor.RevealSeedShare(_reveal(SECRET.hex())))
    assert unnamed.details().startswith("public_value")
    state = await supervisor.RevealSeedShare(_reveal(SECRET.hex(), "04 11 23 35"))
    assert state.state == "revealed"

    updates = await _plan(grid)
    summary = updates[-1].summary
    assert summary.drawn == len(grid.province.projects)
    # The plan seed is the combination of the coordinator's committed share and the
    # supervisor's, and the audit shows the order: supervisor commits, coordinator commits,
    # supervisor reveals, plan.
    fields = await workflow.redis.hgetall(SEED_SHARE.format(DAY.isoformat()))
    coordinator = bytes.fromhex(unseal_json(
        workflow.master_key, SealedBox.from_json(fields[b"coordinator_sealed"].decode()),
        project_id=SEED_SHARE.format(DAY.isoformat()), purpose="seed-share")["secret"])
    assert hashlib.sha256(coordinator).hexdigest() == state.coordinator_commitment
    assert summary.seed_hash == seed_hash(final_seed(coordinator, SECRET, "04 11 23 35"))
    kinds = [e.kind for e in await workflow.audit.entries() if e.kind.startswith(
        ("seed.", "plan.committed"))]
    assert kinds == ["seed.coordinator_committed", "seed.supervisor_committed",
                     "seed.supervisor_revealed", "plan.committed"]
    # A second share for the same day is refused.
    again = await _refused(supervisor.CommitSeedShare(_commit("ab" * 32)))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_without_a_reveal_the_plan_falls_back_audited(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert workflow is not None
    workflow.seed_shares.wait = timedelta(minutes=30)
    await grid.register_all()
    supervisor = grid.operator_as("auditor", AUDITOR)
    await supervisor.CommitSeedShare(_commit(hashlib.sha256(SECRET).hexdigest()))
    assert (await _plan_refused(grid)).code() == grpc.StatusCode.FAILED_PRECONDITION
    await grid.advance_to(workflow.now() + timedelta(minutes=31))
    summary = (await _plan(grid))[-1].summary
    assert summary.drawn == len(grid.province.projects)
    (fallback,) = [e for e in await workflow.audit.entries() if e.kind == "seed.fallback"]
    assert fallback.detail["waited_s"] >= 31 * 60
    late = await _refused(supervisor.RevealSeedShare(_reveal(SECRET.hex())))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
