"""The supervisor's share of a day's seed over real gRPC (auditor certificate): the day plan
and a single draw wait for it, use both shares, and fall back (audited) when it does not come
in time; after the award `draw verify` recombines the shares."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from evalgrid_wire.v1 import operator_pb2
from grid_fixture import AUDITOR, DAY, Grid, focus_projects

from coordinator.domain.day_plan import project_seed, seed_hash
from coordinator.domain.model import Project
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.domain.seed_protocol import final_seed
from coordinator.offline import OfflineError, export_draws, reveal_seeds, verify_draw_file
from coordinator.store.layout import SEED_SHARE
from coordinator.workflow import Workflow
from evalgrid.ids import request_id
from evalgrid.trust import PinnedTrust

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
                     "seed.supervisor_revealed", "seed.fixed", "plan.committed"]
    # The plan took each project's first label: a new committee that day would take id/r1.
    first = grid.province.projects[0].id
    assert await workflow.seed_shares.first_label(DAY, first) == f"{first}/r1"
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


async def _snapshot(grid: Grid) -> operator_pb2.GridSnapshot:
    call = grid.operator.WatchGrid(operator_pb2.WatchGridRequest())
    snapshot: operator_pb2.GridSnapshot = await call.read()
    call.cancel()
    return snapshot


async def _waiting_day(grid: Grid) -> tuple[Workflow, Project, Any]:
    """A grid whose day waits 30 min for the supervisor: its workflow, a project of the day,
    the supervisor's stub."""
    workflow = grid.coordinator.workflow
    assert workflow is not None
    workflow.seed_shares.wait = timedelta(minutes=30)
    await grid.register_all()
    return workflow, focus_projects(grid.province)[0], grid.operator_as("auditor", AUDITOR)


def _draw(project_id: str) -> operator_pb2.DrawRequest:
    return operator_pb2.DrawRequest(request_id=request_id(), project_id=project_id)


async def test_a_single_draw_waits_for_the_share_then_verifies(grid: Grid) -> None:
    """A single draw's seed is HMAC(day seed, project id): it waits for the supervisor like a
    plan, the console shows the wait, and after the award `draw verify` recombines both
    shares from the signed chain."""
    workflow, project, supervisor = await _waiting_day(grid)

    waiting = await _refused(grid.operator.Draw(_draw(project.id), timeout=60))
    assert waiting.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert waiting.details().startswith(
        f"day: waiting for the supervisor's seed share for {DAY} (state awaiting)")
    assert waiting.details().endswith("+08:00")  # the fallback time, as the province reads it
    assert (await workflow.registry.project_states())[project.id] == "registered"
    # The operator's console sees the day waiting on the supervisor, and until when.
    (wait,) = (await _snapshot(grid)).seed_waits
    assert (wait.day, wait.state, wait.fixed) == (DAY.isoformat(), "awaiting", False)
    assert wait.fallback_at.ToDatetime(tzinfo=UTC) == workflow.now() + timedelta(minutes=30)

    await supervisor.CommitSeedShare(_commit(hashlib.sha256(SECRET).hexdigest()))
    assert "(state committed)" in (await _refused(
        grid.operator.Draw(_draw(project.id), timeout=60))).details()
    await supervisor.RevealSeedShare(_reveal(SECRET.hex()))
    reply, notices = await grid.draw(project.id)
    assert reply.seats == len(notices) > 0
    assert not (await _snapshot(grid)).seed_waits  # fixed: nothing waits any more

    # The draw's seed derives from both shares, and the audit shows who committed when.
    fields = await workflow.redis.hgetall(SEED_SHARE.format(DAY.isoformat()))
    coordinator = bytes.fromhex(unseal_json(
        workflow.master_key, SealedBox.from_json(fields[b"coordinator_sealed"].decode()),
        project_id=SEED_SHARE.format(DAY.isoformat()), purpose="seed-share")["secret"])
    day_seed = final_seed(coordinator, SECRET)
    archive = await workflow.sealed_archive(reply.draw_id)
    assert archive["seed"] == project_seed(day_seed, project.id).hex()
    entries = await workflow.audit.entries()
    kinds = [e.kind for e in entries if e.kind.startswith(("seed.", "draw.committed"))]
    assert kinds == ["seed.coordinator_committed", "seed.supervisor_committed",
                     "seed.supervisor_revealed", "seed.fixed", "draw.committed"]
    (committed,) = [e for e in entries if e.kind == "draw.committed"]
    assert committed.detail["seed_from"] == {"day": DAY.isoformat(), "label": project.id}
    (fixed,) = [e for e in entries if e.kind == "seed.fixed"]
    assert fixed.detail["seed_hash"] == seed_hash(day_seed)
    # Once fixed, the supervisor's share cannot be replaced.
    late = await _refused(supervisor.CommitSeedShare(_commit("ab" * 32)))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Not before the award; then the day's seed is revealed and the draw verifies.
    with pytest.raises(OfflineError, match="not reported yet"):
        await reveal_seeds(DAY.isoformat(), grid.data.root, grid.redis_url)
    await grid.advance_to(project.window.start)
    assert await grid.start(project.id) == "evaluating"
    for notice in notices:
        await grid.evaluate_seat(notice)
    assert (await grid.close(project.id)).state == "reported"
    plans, revealed = await reveal_seeds(DAY.isoformat(), grid.data.root, grid.redis_url)
    assert (plans, revealed) == ([], day_seed.hex())
    exported = await export_draws(project.id, grid.data.root, grid.redis_url)
    path = grid.root / "draws.json"
    path.write_text(json.dumps(exported))
    trust = PinnedTrust.from_data_dir(grid.data.root)
    assert verify_draw_file(path, trust) == ([], 1)
    # An edited share in the export is caught (its signed entry no longer verifies).
    row = next(r for r in exported["audit"] if r["kind"] == "seed.revealed")
    row["detail"]["coordinator_secret"] = bytes(32).hex()
    path.write_text(json.dumps(exported))
    assert verify_draw_file(path, trust)[0]


async def test_without_a_share_a_single_draw_falls_back_audited(
        grid: Grid, monkeypatch: pytest.MonkeyPatch) -> None:
    workflow, project, supervisor = await _waiting_day(grid)
    await supervisor.CommitSeedShare(_commit(hashlib.sha256(SECRET).hexdigest()))
    assert (await _refused(grid.operator.Draw(_draw(project.id), timeout=60))).code() == \
        grpc.StatusCode.FAILED_PRECONDITION
    await grid.advance_to(workflow.now() + timedelta(minutes=31))
    reply, _ = await grid.draw(project.id)
    assert reply.seats > 0
    entries = await workflow.audit.entries()
    (fallback,) = [e for e in entries if e.kind == "seed.fallback"]
    (fixed,) = [e for e in entries if e.kind == "seed.fixed"]
    assert fallback.detail["waited_s"] >= 31 * 60 and fixed.detail["fallback"] is True
    assert fallback.seq < fixed.seq
    late = await _refused(supervisor.RevealSeedShare(_reveal(SECRET.hex())))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Labels are never reused on a round: the committee's redraw is P/1; a new committee of the
    # project on the same day (after an incident) would take P/r1, and its redraws P/r1/n.
    shares = workflow.seed_shares
    assert await shares.redraw_label(DAY, project.id, 1) == f"{project.id}/1"
    assert await shares.first_label(DAY, project.id) == f"{project.id}/r1"
    await shares.take_first_labels(DAY, [project.id])
    assert await shares.redraw_label(DAY, project.id, 2) == f"{project.id}/r1/2"
    assert await shares.first_label(DAY, project.id) == f"{project.id}/r2"
    # A used round is fixed for good: the next draws of the day take its seed without reading
    # the round again, and what they are given is theirs to change.
    seed, detail = await shares.day_seed(DAY)
    assert seed_hash(seed) == fixed.detail["seed_hash"]

    async def unread(day: str) -> dict[str, str]:
        raise AssertionError(f"round {day} read again")

    monkeypatch.setattr(shares.rounds, "fields", unread)
    detail["fallback"] = False
    again, detail_again = await shares.day_seed(DAY)
    assert again == seed and detail_again["fallback"] is True


async def test_a_resent_commitment_gets_the_coordinator_s_after_a_crash_cut_it_short(
        grid: Grid) -> None:
    """A coordinator killed after the supervisor's commitment was stored, before its own
    (chaos seed 1604 caught it): the supervisor's resend to the next coordinator is answered
    with the coordinator's commitment, made then, sealed share and audit entry with it."""
    workflow = grid.coordinator.workflow
    assert workflow is not None
    supervisor = grid.operator_as("auditor", AUDITOR)
    commitment = hashlib.sha256(SECRET).hexdigest()
    key = SEED_SHARE.format(DAY.isoformat())
    await workflow.redis.hset(key, mapping={  # what the first call stored before it died
        "supervisor_commitment": commitment, "public_source": "", "supervisor_by": AUDITOR,
        "state": "committed"})
    state = await supervisor.CommitSeedShare(_commit(commitment))
    assert state.state == "committed" and len(state.coordinator_commitment) == 64
    fields = await workflow.redis.hgetall(key)
    coordinator = unseal_json(
        workflow.master_key, SealedBox.from_json(fields[b"coordinator_sealed"].decode()),
        project_id=key, purpose="seed-share")["secret"]
    assert hashlib.sha256(bytes.fromhex(coordinator)).hexdigest() == \
        state.coordinator_commitment
    assert [e.detail["commitment"] for e in await workflow.audit.entries()
            if e.kind == "seed.coordinator_committed"] == [state.coordinator_commitment]
    again = await supervisor.CommitSeedShare(_commit(commitment))  # resent once more
    assert again.coordinator_commitment == state.coordinator_commitment
    revealed = await supervisor.RevealSeedShare(_reveal(SECRET.hex(), "04 11 23 35"))
    assert revealed.state == "revealed"
