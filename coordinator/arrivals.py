"""Members arriving: checked in at the site's desk, signed in at the booth.

Carved out of the workflow: a member proves who they are with the ID number (looked up through
its keyed hash, never stored in clear) and the notice's one-time code; wrong codes run out per
seat, workstation and desk (`SignInGuard`), a member at the wrong window or of a redrawn seat is
told so without counting as a guess. A sign-in moves the seat (`SignedIn`) through the
workflow's `seat_event`, saved with its story entry in one MULTI (`Workflow.save_allocation`).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from coordinator import seat_passes
from coordinator.allocation import SeatRecord
from coordinator.domain.lifecycle import Instruction, ProjectState, SeatState, SignedIn
from coordinator.errors import WorkflowError
from evalgrid.lockout import desk_scope, session_scope, workstation_scope

if TYPE_CHECKING:
    from coordinator.workflow import Workflow


class ArrivalDesk:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    async def check_in(self, site_id: str, id_number: str, code: str) -> SeatRecord:
        # The ID number is looked up through its keyed hash: it is never stored in clear.
        expert_id = await self.wf.registry.expert_by_id_number(id_number)
        here = [(project_id, seat) for project_id, alloc in self.wf.allocations.items()
                for seat in alloc.active_seats()
                if expert_id is not None and seat.expert_id == expert_id
                and seat.site_id == site_id]
        # Wrong codes count against the expert's seats here, unknown IDs against the desk.
        seat_scopes = [session_scope(seat.session_id) for _, seat in here]
        locked = await self.wf.sign_ins.refuse_if_locked(
            "checkin", site_id, [desk_scope(site_id), *seat_scopes], {})
        if locked:
            raise WorkflowError("code", locked, code="precondition")
        for project_id, seat in here:
            if hmac.compare_digest(seat.code.encode(), code.encode()):
                states = await self.wf.registry.project_states()
                if states.get(project_id) != ProjectState.EVALUATING:
                    await self.wf.record("checkin.refused", site_id,
                                         {"reason": "evaluation has not started"})
                    raise WorkflowError("code", "evaluation has not started yet",
                                        code="precondition")
                await self.wf.sign_ins.succeeded(seat_scopes)
                await self.wf.record("expert.checked_in", site_id,
                                     {"session": seat.session_id})
                return seat
        # A member whose seat was redrawn (a no-show filed while an outage kept them away)
        # comes with a true code: told so, and not counted toward the desk's lockout.
        for _, alloc in self.wf.allocations.items():
            for seat in alloc.seats:
                if not seat.active and seat.status != SeatState.DECLINED \
                        and expert_id is not None and seat.expert_id == expert_id \
                        and seat.site_id == site_id \
                        and hmac.compare_digest(seat.code.encode(), code.encode()):
                    why = seat.status.replace("_", " ")
                    await self.wf.record("checkin.refused", site_id, {
                        "session": seat.session_id, "reason": f"seat redrawn ({why})"})
                    raise WorkflowError("code", f"this seat was redrawn ({why}): another "
                                        "member holds it now; ask the operator",
                                        code="precondition")
        await self.wf.sign_ins.failed("checkin", site_id, seat_scopes or [desk_scope(site_id)], {})
        raise WorkflowError("code", "no reserved seat at this site matches this identity "
                            "and code", code="denied")

    async def sign_in(self, site_id: str, session_id: str, workstation_id: str,
                      id_number: str, code: str, request_id: str, *,
                      signed_in_at: datetime | None = None,
                      offline_proof: str = "") -> tuple[SeatRecord, str]:
        """A sign-in relayed by the guest agent; or one the agent took itself while the
        coordinator was unreachable (`offline_proof` from the seat pass, `signed_in_at`)."""
        project, alloc, seat = await self.wf.open_seat(site_id, session_id, workstation_id)
        scopes = [session_scope(session_id), workstation_scope(site_id, workstation_id)]
        attempt = {"session": session_id, "workstation": workstation_id}
        locked = await self.wf.sign_ins.refuse_if_locked("signin", site_id, scopes, attempt)
        if locked:
            raise WorkflowError("code", locked, code="precondition")
        if offline_proof:
            matches = seat_passes.proof_matches(self.wf.master_key, session_id, offline_proof)
            expert_id = seat.expert_id if matches else None
            code = seat.code if matches else ""
        else:
            expert_id = await self.wf.registry.expert_by_id_number(id_number)
        if expert_id != seat.expert_id or \
                not hmac.compare_digest(code.encode(), seat.code.encode()):
            other = await self._other_window(site_id, workstation_id, session_id,
                                             expert_id, code)
            if other is not None:  # the right member at the wrong time: not a guess
                await self.wf.record("signin.wrong_window", site_id,
                                     {"session": session_id, "workstation": workstation_id})
                raise WorkflowError("session_id", f"this member's session on this "
                                    f"workstation is another window ({other}); not now",
                                    code="precondition")
            await self.wf.sign_ins.failed("signin", site_id, scopes, attempt)
            raise WorkflowError("code", "identity or code does not match this session",
                                code="denied")
        await self.wf.sign_ins.succeeded(scopes)
        async with self.wf.project_lock(project.id):
            # Redrawn while this sign-in waited for the lock (a no-show filed as the agent
            # forwarded it): the seat is another member's now, and stays departed.
            alloc = await self.wf.allocation(project.id, "sign-in")
            seat = alloc.by_session(session_id) or seat
            if not seat.active:
                raise WorkflowError("session_id", f"this seat was redrawn ({seat.status}); "
                                    "the session is no longer held", code="precondition")
            entry = self.wf.seat_event(seat, SignedIn(self.wf.stimulus(request_id, "signin")))
            if entry is not None:
                now = self.wf.clock.now()
                # An offline sign-in keeps the agent's time, within the window and not later
                # than now; the audit says it was taken offline and when it arrived.
                at = min(max(signed_in_at, project.window.start), now) \
                    if signed_in_at is not None else now
                seat.signed_in_at = at.isoformat()
                if not alloc.leader_ref:
                    alloc.leader_ref = seat.expert_ref
                await self.wf.save_allocation(alloc, entry)
                detail: dict[str, Any] = {"session": session_id,
                                          "expert_ref": seat.expert_ref}
                if offline_proof:
                    detail |= {"offline": True, "at": at.isoformat()}
                await self.wf.carry_out([Instruction(i) for i in entry.instructions], {
                    Instruction.AUDIT: lambda: self.wf.record("expert.signed_in", project.id,
                                                              detail)})
            else:  # a repeated sign-in (a booth restarted): audited too, every attempt is
                await self.wf.record("signin.repeated", site_id,
                                     {"session": session_id, "workstation": workstation_id})
        return seat, self.wf.desk.expert_name(seat.expert_id)

    async def _other_window(self, site_id: str, workstation_id: str, session_id: str,
                            expert_id: str | None, code: str) -> str | None:
        """The window of another seat of this member on this workstation whose code this
        is: an attempt at the wrong time, which must not count toward the lockout."""
        if expert_id is None or not code:
            return None
        for project_id, alloc in self.wf.allocations.items():
            for other in alloc.active_seats():
                if other.session_id != session_id and other.site_id == site_id and \
                        other.workstation_id == workstation_id and \
                        other.expert_id == expert_id and \
                        hmac.compare_digest(code.encode(), other.code.encode()):
                    window = (await self.wf.project(project_id)).window
                    local = timezone(timedelta(minutes=self.wf.rules.local_utc_offset_minutes))
                    return (f"{window.start.astimezone(local):%Y-%m-%d %H:%M}-"
                            f"{window.end.astimezone(local):%H:%M} local time")
        return None

    async def forwarded_refused(self, site_id: str, kind: str, session_id: str,
                                reason: str) -> None:
        """A record an agent took offline and forwarded late, refused: the operator sees it
        in the audit feed (not only the agent's log)."""
        await self.wf.record("forwarded.refused", site_id,
                             {"kind": kind, "session": session_id, "reason": reason[:200]})
