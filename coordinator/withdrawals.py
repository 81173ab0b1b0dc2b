"""A redrawn member is told their notice no longer holds: once, through outages and retries.

The replacement gets a notice with the draw; the member it replaces would otherwise hold a
notice and a code that the booth now refuses, and come for nothing. A departure the member made
themself (a decline, a recusal: `SELF_DEPARTURES`) was answered on the spot and gets none.

Once: a departure interrupted by an outage is resumed (the retry, or the schedule's pass), and
passes here again. The withdrawal is sent, audited (`notice.withdrawn`), then marked in the
store (`WithdrawnNotices`); a resumed departure finds the mark and sends nothing. Only a cut
between the send and the mark sends it twice, with the same id (derived from the notice's): a
gateway drops the copy by its idempotency key. Sending before marking loses nothing; the other
order could lose the notice to a cut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Any

import redis.asyncio as aioredis

from coordinator.allocation import SeatRecord
from coordinator.domain.lifecycle import SELF_DEPARTURES
from coordinator.domain.model import Project
from coordinator.notifier import Notice
from coordinator.store.withdrawn import WithdrawnNotices


class Withdrawals:
    def __init__(self, redis: aioredis.Redis, send: Callable[[Notice], None],
                 record: Callable[[str, str, dict[str, Any]], Awaitable[Any]],
                 venue_label: Callable[[str], str], local_tz: tzinfo) -> None:
        self.withdrawn = WithdrawnNotices(redis)
        self.send = send
        self.record = record
        self.venue_label = venue_label
        self.local_tz = local_tz

    async def tell(self, project: Project, seat: SeatRecord, reason: str) -> bool:
        """Withdraw the departed member's notice (unless they left themself, or were told
        already); True when a withdrawal went out now."""
        if reason in SELF_DEPARTURES:
            return False
        if await self.withdrawn.told(seat.notice_id):
            return False
        withdrawal = Notice.withdrawal(Notice(
            notice_id=seat.notice_id, expert_id=seat.expert_id, venue_id=seat.venue_id,
            venue=self.venue_label(seat.venue_id),
            start=project.window.start.astimezone(self.local_tz),
            end=project.window.end.astimezone(self.local_tz), code=""))
        self.send(withdrawal)
        await self.record("notice.withdrawn", project.id, {
            "notice": seat.notice_id, "withdrawal": withdrawal.notice_id,
            "session": seat.session_id, "reason": reason})
        await self.withdrawn.mark(seat.notice_id)
        return True
