"""A sign-in taken offline in a silent partition, while the operator (who could not know)
redrew the member as a no-show: forwarded late, it is refused, and the refusal reaches the
operator's audit feed (`forwarded.refused`), not only the agent's log."""

from __future__ import annotations

from evalgrid_wire.v1 import operator_pb2
from fault_kit import entries, seat_behind_partition
from grid_fixture import Grid, wait_until

from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S


async def test_a_late_refusal_is_audited_for_the_operator(grid: Grid) -> None:
    seat = await seat_behind_partition(grid)
    project, notice, site_id, expert = seat.project, seat.notice, seat.site_id, seat.expert
    agent, partition, held, booth = seat.agent, seat.partition, seat.held, seat.booth
    try:
        partition.hold()
        signed_in = await booth.sign_in(expert.id_number, notice["code"])
        assert signed_in.offline
        # The operator sees a member not signed in and files the no-show.
        reply = await grid.operator.ReplaceMember(operator_pb2.ReplaceMemberRequest(
            request_id=request_id(), project_id=project.id, session_id=held.session_id,
            reason="no_show"), timeout=UNARY_DEADLINE_S)
        assert reply.outcome.startswith("no_show")
        partition.release()

        async def reported() -> list[object]:
            return [e for e in await entries(grid, "forwarded.refused", site_id)
                    if e.detail["session"] == held.session_id]

        (refusal,) = await wait_until(reported, "the late sign-in's refusal in the audit",
                                      timeout=40.0)
        assert refusal.detail["kind"] == "sign-in"  # type: ignore[attr-defined]
        assert not agent.offline.journal.pending()
        assert not [e for e in await entries(grid, "expert.signed_in", project.id)
                    if e.detail["session"] == held.session_id]
    finally:
        await partition.stop()
