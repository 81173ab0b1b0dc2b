"""A departure stored just before the store went away, and never retried, is redrawn by the
schedule's next pass: the committee is whole again without anyone asking twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from grid_fixture import Grid, focus_projects, wait_until

from coordinator.notifier import WITHDRAWAL, read_outbox
from coordinator.store.layout import REDRAW_PENDING
from coordinator.workflow import Workflow, WorkflowError
from evalgrid.ids import request_id


def _cut_once(owner: Any, name: str) -> None:
    """The store goes away under `owner.name`'s first call, and is back for the next."""
    real = getattr(owner, name)
    cut: list[int] = []

    async def outage(*args: Any, **kwargs: Any) -> Any:
        if not cut:
            cut.append(1)
            raise ConnectionError("Redis went away")
        return await real(*args, **kwargs)

    setattr(owner, name, outage)


async def test_a_decline_cut_off_by_an_outage_is_redrawn_at_the_next_pass(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    _cut_once(workflow.bookings, "release")  # the decline is stored; then the store goes away
    with pytest.raises(grpc.aio.AioRpcError):
        await grid.reply(notices[0]["notice_id"], False, "ill")
    assert await workflow.redis.scard(REDRAW_PENDING) == 1  # the outage left it pending

    before = len(grid.notices())
    workflow.wake_schedule()  # the next pass: no retry of the decline comes

    async def whole() -> bool:
        seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
            project_id=focus.id), timeout=30)
        active = [s for s in seats.seats if s.status not in ("declined",)]
        return len(active) == len(notices) and len(grid.notices()) == before + 1 \
            and await workflow.redis.scard(REDRAW_PENDING) == 0

    await wait_until(whole, "the replacement drawn at the schedule's pass")
    assert grid.notices()[-1]["expert_id"] != notices[0]["expert_id"]


async def test_a_replacement_committed_before_an_outage_is_taken_forward_not_drawn_again(
        grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    # The replacement is committed with its intent; then the store goes.
    _cut_once(workflow.bookings, "reserve_all")
    with pytest.raises(grpc.aio.AioRpcError):
        await grid.reply(notices[0]["notice_id"], False, "ill")
    before = len(grid.notices())
    workflow.wake_schedule()  # the next pass

    async def whole() -> bool:
        return len(grid.notices()) == before + 1 \
            and await workflow.redis.scard(REDRAW_PENDING) == 0

    await wait_until(whole, "the committed replacement placed at the schedule's pass")
    entries = [e for e in await workflow.audit.entries() if e.subject == focus.id]
    labels = [e.detail["seed_from"]["label"] for e in entries if e.kind == "draw.committed"]
    assert labels == [focus.id, f"{focus.id}/1"]  # one draw per label: never rolled again
    recovered = [e for e in entries if e.kind == "draw.recovered"]
    assert [e.detail["from"] for e in recovered] == ["booking"]
    assert grid.notices()[-1]["expert_id"] != notices[0]["expert_id"]


async def test_a_seed_reveal_cut_off_before_its_audit_is_audited_on_retry(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    await grid.draw(focus.id)
    draw_id = (await workflow.allocation(focus.id, "test")).draw_ids[0]
    real = workflow.record
    cut: list[int] = []

    async def outage(kind: str, subject: str, detail: dict[str, Any]) -> Any:
        if kind == "draw.seed_revealed" and not cut:  # the seed is stored, then Redis goes
            cut.append(1)
            raise ConnectionError("Redis went away")
        return await real(kind, subject, detail)

    workflow.record = outage  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await workflow.evaluation.reveal_seed(draw_id)
    first = await workflow.evaluation.reveal_seed(draw_id)  # the close's retry
    assert await workflow.evaluation.reveal_seed(draw_id) == first  # and once more: nothing new

    reveals = [e for e in await workflow.audit.entries()
               if e.kind == "draw.seed_revealed" and e.subject == draw_id]
    assert [e.detail["seed"] for e in reveals] == [first.hex()]


async def _evaluating(grid: Grid) -> tuple[Workflow, Any, list[dict[str, Any]]]:
    """A focus project drawn, every notice accepted, its window open and evaluating."""
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(focus.window.start)
    await grid.start(focus.id)
    return workflow, focus, notices


async def test_a_sign_in_racing_a_redraw_does_not_revive_the_seat(grid: Grid) -> None:
    workflow, focus, notices = await _evaluating(grid)
    notice = notices[0]
    seat = (await workflow.allocation(focus.id, "test")).by_notice(notice["notice_id"])
    assert seat is not None
    real = workflow.open_seat

    async def racing(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)  # the seat is held as the sign-in arrives ...
        assert seat is not None
        await workflow.replace_member(focus.id, seat.session_id, "no_show", "not here",
                                      request_id(), by="operator")  # ... then redrawn
        return found

    workflow.open_seat = racing  # type: ignore[method-assign]
    with pytest.raises(WorkflowError, match="redrawn"):
        await workflow.arrivals.sign_in(seat.site_id, seat.session_id, seat.workstation_id,
                               grid.experts[notice["expert_id"]].id_number, notice["code"],
                               request_id())
    after = (await workflow.allocation(focus.id, "test")).by_session(seat.session_id)
    assert after is not None and after.status == "no_show"


async def test_a_placement_left_unannounced_by_an_outage_is_announced_at_the_next_pass(
        grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    real = workflow.send_notices
    cut: list[int] = []

    def outage(*args: Any, **kwargs: Any) -> Any:
        if not cut:  # the placement is stored; the store goes before the announcement
            cut.append(1)
            raise ConnectionError("Redis went away")
        return real(*args, **kwargs)

    workflow.send_notices = outage  # type: ignore[method-assign]
    with pytest.raises(grpc.aio.AioRpcError):
        await grid.draw(focus.id)
    assert grid.notices() == []  # nobody told yet
    workflow.wake_schedule()  # the next pass, with no retry of the draw

    seats = sum(q.count for q in focus.quotas)

    async def announced() -> bool:
        placed = [e for e in await workflow.audit.entries()
                  if e.kind == "draw.placed" and e.subject == focus.id]
        return len(grid.notices()) == seats and len(placed) == 1

    await wait_until(announced, "the notices and draw.placed at the schedule's pass")


async def test_a_redrawn_member_at_the_desk_is_told_and_not_locked_out(grid: Grid) -> None:
    workflow, focus, notices = await _evaluating(grid)
    late = notices[0]
    seat = (await workflow.allocation(focus.id, "test")).by_notice(late["notice_id"])
    assert seat is not None
    await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
        request_id=request_id(), project_id=focus.id, session_id=seat.session_id,
        reason="no_show", note="not here at the start"), timeout=30)
    desk = grid.desk(seat.site_id)
    # The member comes late, again and again, with the code the notice gave: each time told
    # the seat was redrawn, never the lockout of the desk (for everyone else) or the seat.
    for _ in range(workflow.sign_ins.policy.desk_max_failures + 2):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await desk.CheckIn(booth_pb2.DeskCheckInRequest(
                request_id=request_id(), id_number=grid.experts[late["expert_id"]].id_number,
                code=late["code"]), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "redrawn (no show)" in str(refused.value.details())


# --- the redrawn member is told: a withdrawal in the outbox, once ---


def _withdrawals(grid: Grid) -> list[dict[str, str]]:
    return read_outbox(grid.outbox, kind=WITHDRAWAL)


async def _withdrawn_entries(workflow: Workflow, project_id: str) -> list[dict[str, Any]]:
    return [e.detail for e in await workflow.audit.entries()
            if e.kind == "notice.withdrawn" and e.subject == project_id]


async def _no_show(grid: Grid, project_id: str, session_id: str) -> str:
    reply = await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
        request_id=request_id(), project_id=project_id, session_id=session_id,
        reason="no_show", note="not here at the start"), timeout=30)
    return str(reply.outcome)


async def test_a_no_show_redrawn_is_sent_a_withdrawal_of_the_notice(grid: Grid) -> None:
    workflow, focus, notices = await _evaluating(grid)
    absent = notices[0]
    seat = (await workflow.allocation(focus.id, "test")).by_notice(absent["notice_id"])
    assert seat is not None and _withdrawals(grid) == []
    before = len(grid.notices())

    assert await _no_show(grid, focus.id, seat.session_id) == "no_show-redrawn"

    (withdrawal,) = _withdrawals(grid)
    # No more than the notice said (venue and time), less its code.
    assert set(withdrawal) == set(absent) | {"withdraws"}
    assert withdrawal["expert_id"] == absent["expert_id"]
    assert withdrawal["withdraws"] == absent["notice_id"]
    assert withdrawal["notice_id"] != absent["notice_id"] and withdrawal["code"] == ""
    assert (withdrawal["venue"], withdrawal["start"], withdrawal["end"]) == \
        (absent["venue"], absent["start"], absent["end"])
    assert withdrawal["text"].startswith("Evaluation notice withdrawn")
    assert absent["code"] not in withdrawal["text"]
    # The replacement's notice is an evaluation notice; readers of those never see this one.
    assert len(grid.notices()) == before + 1
    assert grid.notices()[-1]["expert_id"] != absent["expert_id"]
    assert await _withdrawn_entries(workflow, focus.id) == [{
        "notice": absent["notice_id"], "withdrawal": withdrawal["notice_id"],
        "session": seat.session_id, "reason": "no_show"}]


async def test_a_member_who_declined_is_sent_no_withdrawal(grid: Grid) -> None:
    workflow = grid.coordinator.workflow
    assert isinstance(workflow, Workflow)
    focus = focus_projects(grid.province)[0]
    await grid.register(focus)
    _, notices = await grid.draw(focus.id)
    assert await grid.reply(notices[0]["notice_id"], False, "ill") == "declined-redrawn"
    assert _withdrawals(grid) == []  # the reply was the answer
    assert await _withdrawn_entries(workflow, focus.id) == []


async def test_a_no_show_retried_after_an_outage_is_withdrawn_once(grid: Grid) -> None:
    workflow, focus, notices = await _evaluating(grid)
    seat = (await workflow.allocation(focus.id, "test")).by_notice(notices[0]["notice_id"])
    assert seat is not None
    # The departure is stored and the member told; then the store goes.
    _cut_once(workflow.bookings, "release")
    with pytest.raises(grpc.aio.AioRpcError):
        await _no_show(grid, focus.id, seat.session_id)
    assert len(_withdrawals(grid)) == 1
    assert await _no_show(grid, focus.id, seat.session_id) == "no_show-redrawn"  # the retry
    assert len(_withdrawals(grid)) == 1
    assert len(await _withdrawn_entries(workflow, focus.id)) == 1


class _GoneOnce:
    """The store as the withdrawal meets it: away at the first look, back after."""

    def __init__(self, redis: Any) -> None:
        self.redis, self.gone = redis, True

    async def sismember(self, *args: Any) -> Any:
        if self.gone:
            self.gone = False
            raise ConnectionError("Redis went away")
        return await self.redis.sismember(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


async def test_a_withdrawal_cut_off_by_an_outage_goes_out_at_the_next_pass(
        grid: Grid) -> None:
    workflow, focus, notices = await _evaluating(grid)
    seat = (await workflow.allocation(focus.id, "test")).by_notice(notices[0]["notice_id"])
    assert seat is not None
    workflow.withdrawals.withdrawn.redis = _GoneOnce(workflow.redis)  # type: ignore[assignment]
    with pytest.raises(grpc.aio.AioRpcError):
        await _no_show(grid, focus.id, seat.session_id)
    assert _withdrawals(grid) == [] and await workflow.redis.scard(REDRAW_PENDING) == 1
    workflow.wake_schedule()  # the next pass resumes the departure; nobody retries

    async def told() -> bool:
        return len(_withdrawals(grid)) == 1 and await workflow.redis.scard(REDRAW_PENDING) == 0

    await wait_until(told, "the withdrawal and the replacement at the schedule's pass")
    assert _withdrawals(grid)[0]["withdraws"] == notices[0]["notice_id"]
    workflow.wake_schedule()  # another pass: nothing more
    await grid.advance_to(focus.window.start + timedelta(minutes=1))
    assert len(_withdrawals(grid)) == 1
    assert len(await _withdrawn_entries(workflow, focus.id)) == 1
