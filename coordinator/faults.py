"""The shell of the fault rules: site liveness, incidents, the decisions left to people.

- Liveness transitions (coordinator/domain/liveness.py) are audited (`site.connected`,
  `site.disconnected`, `site.lost`, `site.reconnected`).
- A site declared lost before a project's window: its members are redrawn elsewhere
  (supplementary draws with the reason, as for a failed workstation without a spare).
- A site lost, or a workstation failed without a spare, at or during the window: an incident
  with the rules' deadline (coordinator/domain/fault_rules.py), stored in Redis, audited at
  every step; a repair in time resumes; past the deadline the operator records the decision
  (the tenderer's wait / postpone, or the re-evaluation): materials sealed, the committee
  dissolved (its members barred from the new one by the cool-off rule), a new committee drawn
  for the new window. Nothing scored or signed is deleted: sheets stay, and a sealed copy of
  them goes with the materials.
- Seat passes are sent to the guest agents at evaluation start (coordinator/seat_passes.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from coordinator import seat_passes
from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain import fault_rules
from coordinator.domain.fault_rules import FaultRuleError, Incident, IncidentState
from coordinator.domain.lifecycle import (
    SAT,
    WITH_COMMITTEE,
    LifecycleRefused,
    MaterialsSealed,
    ProjectState,
    SeatState,
    handle_project,
)
from coordinator.domain.liveness import Link, Transition
from coordinator.domain.model import Project, Sitting, Window
from coordinator.domain.seal import seal_json
from coordinator.errors import WorkflowError
from coordinator.store.bookings import BookingItem, expert_resource, ws_resource
from coordinator.store.incidents import Incidents
from evalgrid.ids import opaque_id

if TYPE_CHECKING:
    from coordinator.workflow import Workflow  # the workflow builds this desk

log = logging.getLogger("evalgrid.coordinator")

RECENT = timedelta(days=1)  # closed incidents shown to operators this long
OVERDUE = "evaluation window ended"  # the cause of an overdue evaluation's incident


class FaultDesk:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow
        self.store = Incidents(workflow.redis)
        self._tasks: set[asyncio.Task[None]] = set()
        self._incident_lock = asyncio.Lock()

    # --- liveness ----------------------------------------------------------------------------

    async def stream_opened(self, site_id: str) -> asyncio.Event:
        transition, stop = self.wf.links.stream_opened(site_id)
        try:
            await self.apply([transition] if transition else [])
        except BaseException:  # the stream will not run: do not count it as open
            self.wf.links.stream_closed(site_id, stop)
            raise
        return stop

    def heard(self, site_id: str) -> None:
        """Any message renews the lease; a site heard again after a lapse is handled aside."""
        transition = self.wf.links.heard(site_id)
        if transition is not None:
            self._spawn(self.apply([transition]))

    async def stream_closed(self, site_id: str, stop: asyncio.Event) -> None:
        transition = self.wf.links.stream_closed(site_id, stop)
        await self.apply([transition] if transition else [])

    async def check_liveness(self) -> list[Transition]:
        """Lapse leases, declare lost sites and act on them, review incident deadlines."""
        transitions = self.wf.links.tick()
        await self.apply(transitions)
        await self.review()
        return transitions

    async def run(self, period_s: float) -> None:
        """The lease checker on the system clock (a simulated lease clock is ticked by hand)."""
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.check_liveness()
            except Exception:  # the checker must outlive a Redis hiccup
                log.exception("liveness check")

    async def apply(self, transitions: list[Transition]) -> None:
        for t in transitions:
            await self.wf.record(t.audit_kind, t.site_id, t.detail())
            if t.after is Link.LOST:
                await self.site_lost(t.site_id, t.silent_for)
            elif t.after is Link.CONNECTED:
                await self.site_back(t.site_id)
        if transitions:
            self.wf.grid_changed()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Any) -> None:
        try:
            await work
        except Exception:  # never take a stream down
            log.exception("handling a site transition")

    # --- what a failure touches -------------------------------------------------------------

    async def _seats_at(self, site_id: str, workstation_id: str | None = None
                        ) -> dict[str, list[str]]:
        """Project -> sessions held at the site (on that workstation, if given)."""
        found: dict[str, list[str]] = defaultdict(list)
        for held in await self.wf.sessions.held_at(site_id, workstation_id or None):
            found[held.project_id].append(held.session_id)
        return found

    @staticmethod
    def _begun(alloc: Allocation) -> bool:
        return any(s.status in SAT for s in alloc.active_seats())

    async def site_lost(self, site_id: str, silent_for: timedelta) -> None:
        now = self.wf.clock.now()
        failed_at = now - silent_for
        states = await self.wf.registry.project_states()
        for project_id, sessions in sorted((await self._seats_at(site_id)).items()):
            if states.get(project_id) not in WITH_COMMITTEE:
                continue
            project = await self.wf.project(project_id)
            if project.window.end <= now:
                continue
            async with self.wf.project_lock(project_id):
                alloc = await self.wf.allocation(project_id, "guest site lost")
                seats = [s for s in (alloc.by_session(x) for x in sessions)
                         if s is not None and s.active and s.status != SeatState.SIGNED]
                phase = fault_rules.phase_of(project.window.start, now, self._begun(alloc))
                if fault_rules.response_to(phase) is fault_rules.Response.REDRAW:
                    short = 0
                    for seat in seats:
                        outcome = await self.wf.replace_seat(
                            project_id, alloc, seat, "fault", f"guest site {site_id} lost",
                            stimulus_id=f"site-lost-{site_id}-{now.isoformat()}")
                        short += outcome.endswith("no-replacement")
                    if not short:
                        continue
                    cause = f"guest site lost; {short} seat(s) could not be redrawn"
                else:
                    cause = "guest site lost"
            if seats:  # members who have all signed lose nothing and wait for nothing
                await self._open(project, site_id, cause, failed_at, self._begun(alloc))

    async def workstation_down(self, project: Project, alloc: Allocation,
                               seat: SeatRecord) -> str:
        """At or during the window with no spare: the rules' clock runs (caller holds the
        project lock)."""
        await self._open(project, seat.site_id, f"workstation {seat.workstation_id} failed "
                         "and the venue has no spare", self.wf.clock.now(), self._begun(alloc),
                         workstation_id=seat.workstation_id)
        return "awaiting-repair"

    async def _open(self, project: Project, site_id: str, cause: str, failed_at: datetime,
                    begun: bool, workstation_id: str = "", sites: tuple[str, ...] = ()) -> None:
        async with self._incident_lock:
            for existing in await self.incidents():
                if (existing.project_id, existing.site_id, existing.workstation_id) == (
                        project.id, site_id, workstation_id):
                    return  # already open: the clock does not restart
            incident = fault_rules.open_incident(
                opaque_id("inc"), project.id, site_id, cause,
                window_start=project.window.start, failed_at=failed_at,
                evaluation_begun=begun, now=self.wf.clock.now(), workstation_id=workstation_id,
                limits=self.wf.rules.faults, sites=sites)
            await self._save(incident)
        await self.wf.record("fault.incident_opened", project.id, {
            "incident": incident.incident_id, "site": site_id, "workstation": workstation_id,
            "sites": list(incident.sites),
            "phase": incident.phase.value, "cause": cause,
            "failed_at": failed_at.isoformat(), "deadline": incident.deadline.isoformat(),
            "rule": incident.limit})

    async def site_back(self, site_id: str) -> None:
        await self._repaired(lambda i: i.site_id == site_id and not i.workstation_id,
                             f"guest site {site_id} back")

    def workstation_may_be_back(self, site_id: str, workstation_id: str) -> None:
        """A workstation reported in a working state: repairs any incident it had."""
        self._spawn(self.workstation_back(site_id, workstation_id))

    async def workstation_back(self, site_id: str, workstation_id: str) -> None:
        await self._repaired(lambda i: (i.site_id, i.workstation_id) == (site_id,
                                                                         workstation_id),
                             f"workstation {workstation_id} back in service")

    async def _repaired(self, which: Any, why: str) -> None:
        now = self.wf.clock.now()
        changed = []
        async with self._incident_lock:
            for incident in await self.incidents():
                if which(incident):
                    after = fault_rules.repaired(incident, now)
                    await self._save(after)
                    changed.append(after)
        for after in changed:
            kind = "fault.resumed" if after.state is IncidentState.RESUMED \
                else "fault.repaired_late"
            await self.wf.record(kind, after.project_id, {
                "incident": after.incident_id, "why": why, "at": now.isoformat(),
                "deadline": after.deadline.isoformat(), "state": after.state.value})

    # --- incidents ---------------------------------------------------------------------------

    async def incidents(self, *, include_closed: bool = False) -> list[Incident]:
        found = [Incident.from_dict(v) for v in await self.store.all()]
        now = self.wf.clock.now()
        found = [fault_rules.review(i, now) for i in found]
        if not include_closed:
            found = [i for i in found if i.open]
        return sorted(found, key=lambda i: (i.failed_at, i.incident_id))

    def recent(self, incidents: list[Incident]) -> list[Incident]:
        now = self.wf.clock.now()
        return [i for i in incidents if i.open or (i.decisions and now - i.decisions[-1].at
                                                    < RECENT)
                or (i.repaired_at and now - i.repaired_at < RECENT)]

    async def _save(self, incident: Incident) -> None:
        await self.store.save(incident.incident_id, incident.to_dict())

    async def review(self) -> None:
        """Audit each incident the moment its deadline passes (once)."""
        now = self.wf.clock.now()
        for value in await self.store.all():
            stored = Incident.from_dict(value)
            current = fault_rules.review(stored, now)
            if current.state is not stored.state:
                await self._save(current)
                await self.wf.record("fault.decision_due", current.project_id, {
                    "incident": current.incident_id, "deadline": current.deadline.isoformat(),
                    "allowed": [d.value for d in fault_rules.allowed(current, now)],
                    "rule": current.limit})

    async def decide(self, incident_id: str, decision: str, note: str,
                     new_window: tuple[datetime, datetime] | None, request_id: str, *,
                     by: str) -> tuple[Incident, str]:
        replay = await self.wf.replay(request_id)
        if replay is not None:
            return Incident.from_dict(replay["incident"]), str(replay["outcome"])
        now = self.wf.clock.now()
        async with self._incident_lock:
            raw = await self.store.get(incident_id)
            if raw is None:
                raise WorkflowError("incident_id", f"no incident {incident_id!r}",
                                    code="not_found")
            incident = Incident.from_dict(raw)
            state = (await self.wf.registry.project_states()).get(incident.project_id)
            if state not in WITH_COMMITTEE and incident.open:
                raise WorkflowError("incident_id", f"project {incident.project_id} is {state}: "
                                    "no committee to wait for or replace",
                                    code="precondition")
            try:
                decided = fault_rules.decide(incident, decision, now=now, by=by, note=note)
            except FaultRuleError as exc:
                code = "invalid" if "unknown" in exc.reason else "precondition"
                raise WorkflowError(exc.field, exc.reason, code=code) from exc
            window = None
            if decided.state is not IncidentState.WAITING:
                window = self._new_window(new_window, now)
            await self._save(decided)
        await self.wf.record("fault.decided", decided.project_id, {
            "incident": incident_id, "decision": decided.decisions[-1].decision.value,
            "by": by, "note": note.strip(),
            "new_window": [w.isoformat() for w in window] if window else []})
        outcome = decided.state.value
        if window is not None:
            outcome = await self._new_committee(decided, window, request_id)
        await self.wf.remember(request_id, {"incident": decided.to_dict(),
                                            "outcome": outcome})
        return decided, outcome

    @staticmethod
    def _new_window(window: tuple[datetime, datetime] | None,
                    now: datetime) -> tuple[datetime, datetime]:
        if window is None:
            raise WorkflowError("new_window_start", "a new committee needs the new window "
                                "(start and end) it will sit in")
        start, end = window
        if start <= now:
            raise WorkflowError("new_window_start", f"must be after now ({now.isoformat()})")
        if end <= start:
            raise WorkflowError("new_window_end", "must be after new_window_start")
        return start, end

    async def _new_committee(self, incident: Incident, window: tuple[datetime, datetime],
                             request_id: str) -> str:
        """Seal the materials, dissolve the committee, draw a new one for the new window."""
        wf = self.wf
        project = await wf.project(incident.project_id)
        async with wf.project_lock(project.id):
            stored = await wf.registry.project_state(project.id)
            event = MaterialsSealed(incident.incident_id)
            try:
                after, todo = handle_project(stored, event)
            except LifecycleRefused as exc:
                raise WorkflowError("incident_id", str(exc), code="precondition") from exc
            alloc = await wf.allocation(project.id, f"materials sealed ({incident.state})")
            sheets = {}
            for seat in alloc.seats:
                sheet = await wf.sheets.store.sheet(seat.session_id)
                if sheet:
                    sheets[seat.session_id] = sheet
            questions = await wf.sheets.store.questions_as_stored(project.id)
            materials = {"project_id": project.id, "incident": incident.incident_id,
                         "window": [project.window.start.isoformat(),
                                    project.window.end.isoformat()],
                         "allocation": alloc.to_dict(), "sheets": sheets,
                         "clarifications": questions}
            box = seal_json(wf.master_key, project.id, f"materials:{incident.incident_id}",
                            materials).to_json()
            start, end = project.window.start_ts, project.window.end_ts
            for seat in alloc.active_seats():
                await wf.bookings.release([
                    BookingItem(ws_resource(seat.workstation_id), start, end, seat.session_id),
                    BookingItem(expert_resource(seat.expert_id), start, end, seat.expert_hold)])
                wf.desk.unbook(project, seat.expert_id, seat.workstation_id)
                # The member stays on record as having sat for this tenderer: the cool-off
                # rule keeps them off the new committee.
                wf.desk.add_sitting(
                    Sitting(seat.expert_id, project.id, project.tenderer_id, project.window))
                await wf.release_on_site(seat, str(incident.state))
            moved = dataclasses.replace(project, window=Window(*window))
            pipe = wf.redis.pipeline(transaction=True)
            self.store.stage_sealed_away(pipe, project.id, incident.incident_id,
                                         materials=box, allocation=wf.allocations.seal(alloc))
            wf.allocations.stage_drop(pipe, project.id)
            wf.registry.stage_replaced_project(pipe, moved)
            wf.stage_project_event(pipe, project.id, ProjectState(stored or ""), after, event, todo)
            await pipe.execute()
            wf.allocations.forget(project.id)
            await wf.validate_lifecycle(project.id)
            wf.desk.add_project(moved)
            await wf.record("materials.sealed", project.id, {
                "incident": incident.incident_id, "sheets": len(sheets),
                "signed": sum(1 for s in sheets.values() if s.get("signed") == "1"),
                "digest": hashlib.sha256(box.encode()).hexdigest(),
                "committee_dissolved": len(alloc.active_seats())})
        await self._close_siblings(incident)
        try:
            summary = await wf.draw(project.id, f"{request_id}:new-committee"
                                    if request_id else "")
        except WorkflowError as exc:
            return f"{incident.state.value}; new committee not drawn: {exc}"
        return f"{incident.state.value}; new committee drawn ({summary.seats} seats)"

    async def _close_siblings(self, incident: Incident) -> None:
        """Other open incidents of the project end with it: that committee is gone."""
        async with self._incident_lock:
            for other in await self.incidents():
                if other.project_id == incident.project_id and \
                        other.incident_id != incident.incident_id:
                    await self._save(dataclasses.replace(other, state=incident.state))
                    await self.wf.record("fault.closed", other.project_id, {
                        "incident": other.incident_id, "with": incident.incident_id})

    # --- an evaluation past its window --------------------------------------------------------

    async def overdue_evaluations(self, states: dict[str, str]) -> None:
        """A window that ended with sheets unsigned opens an incident (site "": the project,
        not a site, is overdue), audited once: the project awaits an operator (late members
        come back and sign, then the close repairs it; or the rules' re-evaluation) instead of
        staying `evaluating` with nobody told. Its sites are the guest sites of the members
        who have not signed: where the operator calls, and where the sheets are (the host
        holds nothing until the records are handed over)."""
        now = self.wf.clock.now()
        held = {i.project_id for i in await self.incidents()
                if i.state in fault_rules.OPEN_STATES}  # a site's incident already decides it
        for project in self.wf.desk.projects():
            if states.get(project.id) != "evaluating" or project.window.end > now \
                    or project.id in held:
                continue
            async with self.wf.project_lock(project.id):  # not while a close reports it
                state = (await self.wf.registry.project_states()).get(project.id)
                alloc = await self.wf.allocation(project.id, "window ended")
                signed = {s.expert_ref for s in await self.wf.sheets.signed_sheets(alloc)}
                unsigned = [s for s in alloc.active_seats() if s.expert_ref not in signed]
                if state == "evaluating" and unsigned:
                    await self._open(project, "", f"{OVERDUE}: {len(unsigned)} sheet(s) "
                                     "unsigned", project.window.end, True,
                                     sites=tuple(sorted({s.site_id for s in unsigned})))

    async def evaluation_reported(self, project_id: str) -> None:
        """The close after late sheets ends the project's overdue incident (resumed, even
        past its deadline: the report is written, nothing is left to decide)."""
        now = self.wf.clock.now()
        closed = []
        async with self._incident_lock:
            for incident in await self.incidents():
                if incident.project_id == project_id and not incident.site_id:
                    closed.append(dataclasses.replace(incident, state=IncidentState.RESUMED,
                                                      repaired_at=now))
                    await self._save(closed[-1])
        for after in closed:
            await self.wf.record("fault.resumed", project_id, {
                "incident": after.incident_id, "why": "every sheet signed; report written",
                "at": now.isoformat(), "deadline": after.deadline.isoformat(),
                "state": after.state.value})

    # --- seat passes -------------------------------------------------------------------------

    async def resume(self) -> None:
        """At start: passes a crash kept from going out (evaluation started, none sent)."""
        for project_id, state in (await self.wf.registry.project_states()).items():
            if state == ProjectState.EVALUATING:
                await self.admit_seats(project_id)

    async def admit_seats(self, project_id: str) -> int:
        """Queue a seat pass for every active seat of an evaluating project not sent one."""
        wf = self.wf
        if (await wf.registry.project_states()).get(project_id) != ProjectState.EVALUATING:
            return 0
        project = await wf.project(project_id)
        alloc = await wf.allocation(project_id, "seat passes")
        sent = await self.store.admitted(project_id)
        codes, names = wf.sheets.bid_codes(project), wf.company_names()
        count = 0
        for seat in alloc.active_seats():
            if seat.session_id in sent:
                continue
            personal = await wf.registry.personal_data(seat.expert_id)
            if personal is None or not personal.id_number:
                log.warning("no ID number to seal the pass of %s", seat.session_id)
                continue
            form = seat_passes.sheet_form(project, codes, names, session_id=seat.session_id)
            command = await seat_passes.admit_command(
                wf.master_key, seat, id_number=personal.id_number,
                expert_name=wf.desk.expert_name(seat.expert_id), form=form)
            await wf.links.enqueue(seat.site_id, command)
            await self.store.add_admitted(project_id, seat.session_id)
            count += 1
        if count:
            await wf.record("seat_pass.sent", project_id, {
                "seats": count, "purpose": "offline sign-in at the guest sites"})
        return count
