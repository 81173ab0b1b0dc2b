"""A silent partition between a guest agent and the coordinator (a TCP relay that stops
forwarding without closing anything): the agent's stream stays "connected", yet the booth's
sign-in and sheet are answered in time by offline mode, because the agent's deadline on the
coordinator is shorter than the booth's; once the relay forwards again, each lands once."""

from __future__ import annotations

from fault_kit import entries, seat_behind_partition
from grid_fixture import Grid, fair_scores, wait_until

from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.offline_mode import COORDINATOR_DEADLINE_S


async def test_offline_mode_starts_in_a_silent_partition(grid: Grid) -> None:
    assert COORDINATOR_DEADLINE_S < UNARY_DEADLINE_S / 2  # two calls fit in a booth's wait
    seat = await seat_behind_partition(grid)
    project, notice, expert = seat.project, seat.notice, seat.expert
    agent, partition, held, booth = seat.agent, seat.partition, seat.held, seat.booth
    try:

        partition.hold()  # silent: nothing closes, nothing passes
        assert agent.connected.is_set()
        signed_in = await booth.sign_in(expert.id_number, notice["code"])  # booth deadline
        assert signed_in.offline and signed_in.expert_ref
        form = await booth.form()
        queued = await booth.submit(fair_scores(form), signed=True)
        assert queued.accepted and queued.queued
        assert [r["kind"] for r in agent.offline.journal.pending()] == ["signin", "sheet"]

        partition.release()

        async def forwarded() -> bool:
            return not agent.offline.journal.pending()

        await wait_until(forwarded, "the journal forwarded once the relay passes again",
                         timeout=40.0)
        signins = [e for e in await entries(grid, "expert.signed_in", project.id)
                   if e.detail["session"] == held.session_id]
        assert len(signins) == 1
        sheets = [e for e in await entries(grid, "sheet.signed", project.id)
                  if e.detail["expert_ref"] == signed_in.expert_ref]
        assert len(sheets) == 1
    finally:
        await partition.stop()
