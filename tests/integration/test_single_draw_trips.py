"""A single draw through the coordinator against a real Redis: its round trips to the store
are counted (latency at national size is mostly trips), and the writes it folds into the
trips of its commitment and placement keep their meaning: the seed label is taken with the
commitment, the reply is kept with `draw.placed`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio.connection import AbstractConnection

from coordinator.domain.audit import generate_signing_key
from coordinator.domain.lifecycle import VALIDATE_ENV
from coordinator.province.generator import generate_province
from coordinator.workflow import Workflow
from tests.integration.plan_coordinator import plan_coordinator, private_redis

DAY = date(2026, 3, 2)
EVENING_BEFORE = datetime(2026, 3, 1, 10, tzinfo=UTC)
PROVINCE = generate_province(seed=23, day=DAY, cities=3, sites=6, workstations=120,
                             experts=1200, companies=200, projects=6)
#: Store round trips of a single draw once its day is under way: replay check, project and
#: state, seed label, conduct skim, commitment MULTI, placement, `draw.placed` MULTI.
TRIPS = 7


class Crash(RuntimeError):
    """Stands for the coordinator dying inside the draw."""


@pytest_asyncio.fixture
async def workflow(tmp_path: Path) -> AsyncIterator[Workflow]:
    async with private_redis(tmp_path) as redis:
        yield await plan_coordinator(redis, tmp_path, province=PROVINCE, now=EVENING_BEFORE,
                                     seed=hashlib.sha256(b"trips").digest(), key=b"t" * 32,
                                     signer=generate_signing_key(), fresh=True,
                                     fallback_at_once=True)


def _projects() -> list[str]:
    return sorted(p.id for p in PROVINCE.projects)


async def test_a_single_draw_takes_its_trips_and_no_more(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, *_ = _projects()
    await workflow.draw(first, "r-first")  # the day's seed round fixed, its snapshot stored
    sent: list[int] = []
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True
                       ) -> None:
        sent.append(1)
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    monkeypatch.setenv(VALIDATE_ENV, "0")  # the tests' lifecycle check reads, production not
    summary = await workflow.draw(second, "r-second")
    monkeypatch.undo()
    assert summary.seats > 0
    assert len(sent) <= TRIPS
    # The reply went with `draw.placed`: the same request is answered from it.
    assert await workflow.draw(second, "r-second") == summary


async def test_a_draw_cut_short_before_its_commitment_leaves_its_label_to_the_next(
        workflow: Workflow, monkeypatch: pytest.MonkeyPatch) -> None:
    project_id = _projects()[0]
    append = workflow.audit.append_batch_with

    async def dies_at_commitment(items: Any, **kw: Any) -> Any:
        if any(kind == "draw.committed" for kind, _, _ in items):
            raise Crash("killed before the commitment landed")
        return await append(items, **kw)

    monkeypatch.setattr(workflow.audit, "append_batch_with", dies_at_commitment)
    with pytest.raises(Crash):
        await workflow.draw(project_id, "r-1")
    monkeypatch.undo()
    assert await workflow.registry.project_state(project_id) == "registered"
    assert await workflow.replay("r-1") is None  # no reply kept: the request may come again
    summary = await workflow.draw(project_id, "r-2")
    (committed,) = [e for e in await workflow.audit.entries()
                    if e.kind == "draw.committed" and e.subject == project_id]
    # The label the cut draw used was not taken: the draw ran again under it (the same seed).
    assert committed.detail["seed_from"]["label"] == project_id
    assert committed.detail["seed_hash"] == summary.commitment
    assert await workflow.seed_shares.first_label(DAY, project_id) == f"{project_id}/r1"
