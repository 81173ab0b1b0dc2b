"""A state-changing call resent with its request id gets the first answer again and has no
second effect: a draw, a notice reply, a signed sheet."""

from __future__ import annotations

from evalgrid_wire.v1 import booth_pb2, operator_pb2
from fault_kit import entries
from grid_fixture import Grid, fair_scores, focus_projects

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_resent_request_ids_answer_the_same_once(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    rid = request_id()
    draws = [await grid.operator.Draw(operator_pb2.DrawRequest(request_id=rid,
                                                               project_id=project.id),
                                      timeout=60) for _ in range(2)]
    assert draws[0] == draws[1] and draws[0].seats > 0
    assert len(await entries(grid, "draw.placed", project.id)) == 1
    assert len(await entries(grid, "draw.committed", project.id)) == 1

    notices = grid.notices()
    assert len(notices) == draws[0].seats  # notified once, not twice
    rid = request_id()
    replies = [await grid.operator.ReplyToNotice(operator_pb2.NoticeReplyRequest(
        request_id=rid, notice_id=notices[0]["notice_id"], accept=True), timeout=60)
        for _ in range(2)]
    assert replies[0] == replies[1] and replies[0].outcome == "accepted"
    assert len(await entries(grid, "notice.accepted", project.id)) == 1

    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    notice = notices[0]
    site_id = grid.site_of_venue(notice["venue_id"])
    expert = grid.experts[notice["expert_id"]]
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    signed_in = await booth.sign_in(expert.id_number, notice["code"])
    scores = fair_scores(await booth.form())
    rid = request_id()
    sent = [await booth.submit(scores, signed=True, request=rid) for _ in range(2)]
    assert sent[0] == sent[1]
    assert sent[0].accepted and not sent[0].duplicate and sent[0].digest
    signed = [e for e in await entries(grid, "sheet.signed", project.id)
              if e.detail["expert_ref"] == signed_in.expert_ref]
    assert len(signed) == 1
