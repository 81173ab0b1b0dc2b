"""The project workflow of the coordinator: register, draw, notify, sign in, score, report.

This is the shell around the pure domain: it loads state from Redis, calls the rules, the draw
and scoring, and writes the results back (sealed where the compartments demand), appending
every state change to the signed audit chain. gRPC servicers call it; it holds no wire types
beyond the agent commands it queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evalgrid_wire.v1 import site_link_pb2

from coordinator.allocation import DEPARTURES, Allocation, SeatRecord
from coordinator.batch.executor import Executor
from coordinator.conduct_records import ConductFeed, ConductFollower
from coordinator.day_plan import Progress as PlanProgress
from coordinator.day_plan import run_plan
from coordinator.domain.audit import AuditEntry
from coordinator.domain.day_plan import local_day, project_seed
from coordinator.domain.draw.canonical import inputs_from_json
from coordinator.domain.draw.inputs import DrawInputs, DrawSnapshot
from coordinator.domain.draw.outcome import Seat
from coordinator.domain.fault_rules import Phase, phase_of
from coordinator.domain.lifecycle import (
    SAT,
    VALIDATE_ENV,
    WITH_COMMITTEE,
    WITH_SEATS,
    Departed,
    DrawPlaced,
    Event,
    Instruction,
    LifecycleRefused,
    NoticeAccepted,
    ProjectState,
    SeatState,
    StoryEntry,
    handle_project,
    handle_seat,
    story_entry,
    validate_state,
)
from coordinator.domain.liveness import Link, LivenessPolicy
from coordinator.domain.model import Project
from coordinator.domain.pii import PiiKeys
from coordinator.domain.randomness import spare_workstation
from coordinator.domain.registry_snapshot import pseudonym_key
from coordinator.domain.rules import Rules
from coordinator.draw_intents import (
    AnnouncedIntents,
    DrawIntent,
    booking_items,
    drop_intent,
    fault_point,
    finish_placed,
    make_intent,
    recover_project,
    stage_intent,
)
from coordinator.draw_intents import recover as recover_intents
from coordinator.drawing import DrawDesk, DrawRefused, PlacedDraw
from coordinator.errors import WorkflowError as WorkflowError  # raised by every shell
from coordinator.notifier import Notice, Notifier
from coordinator.plan_chunks import commit_and_place
from coordinator.province.codec.fields import RecordError
from coordinator.province.codec.projects import project_from_dict
from coordinator.seed_shares import SeedShares
from coordinator.sign_in_guard import SignInGuard
from coordinator.site_links import SiteLinks
from coordinator.store import sim_clock
from coordinator.store.allocations import Allocations
from coordinator.store.audit_log import AuditLog, ChainedEntries
from coordinator.store.bookings import BookingItem, Bookings, expert_resource, ws_resource
from coordinator.store.draws import DrawArchives, PendingRedraws
from coordinator.store.log_compaction import LogCompaction
from coordinator.store.placements import Placements
from coordinator.store.registry import STORY_KEPT, Registry
from coordinator.store.requests import Requests
from coordinator.store.sessions import Sessions
from coordinator.store.sheets import Sheets
from coordinator.store.snapshots import DrawSnapshots
from coordinator.withdrawals import Withdrawals
from evalgrid.clock import Clock, SimClock
from evalgrid.ids import one_time_code, opaque_id
from evalgrid.lockout import LockoutPolicy
from evalgrid.tls import call_scope
from evalgrid.wire import to_window

log = logging.getLogger("evalgrid.coordinator")

SCHEDULE_RETRY_S = 1.0  # a schedule pass that failed (Redis away) is tried again this soon


@dataclass(frozen=True)
class DrawSummary:
    project_id: str
    draw_id: str
    commitment: str
    input_digest: str
    seats: int
    venues: int


class Workflow:
    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        clock: Clock,
        rules: Rules,
        master_key: bytes,
        signing_key: Ed25519PrivateKey,
        notifier: Notifier,
        reports_dir: Path,
        lockout: LockoutPolicy | None = None,
        liveness: LivenessPolicy | None = None,
        lease_clock: Clock | None = None,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.rules = rules
        self.master_key = master_key
        self.signing_key = signing_key
        # The CA's `signer` certificate for that key (PEM), put into reports and exports so an
        # auditor with ca.pem alone can check them; "" where the data dir has no CA.
        self.signer_certificate = ""
        # The two shares of each day's seed (coordinator and supervisor): seed_shares.py.
        self.seed_shares = SeedShares(self)
        self.notifier = notifier
        self.reports_dir = reports_dir
        self.registry = Registry(redis, PiiKeys.from_master(master_key))
        self.audit = AuditLog(redis, signing_key=signing_key, clock=clock)
        self.bookings = Bookings(redis)
        self.placements = Placements(redis, self.bookings)  # a day plan's chunks
        self.allocations = Allocations(redis, master_key)  # sealed, and the clear copies
        self.requests = Requests(redis)
        self.sessions = Sessions(redis, master_key)
        self.draws = DrawArchives(redis, master_key)
        self.redraws = PendingRedraws(redis)
        self.snapshots = DrawSnapshots(redis, master_key)
        self.links = SiteLinks(redis, clock, liveness=liveness, lease_clock=lease_clock)
        self.desk = DrawDesk(rules)
        self.desk.pseudonym_key = pseudonym_key(master_key)  # draws record the registry digest
        self.conduct = ConductFeed(redis, master_key)  # conduct bars, applied by screening
        # ... kept in step with the trail by the coordinator itself before each draw (the
        # only reader of the bars), not only by `conduct update`: nothing runs behind a call.
        self.conduct_follower = ConductFollower(
            redis, master_key, self.audit, rules, reports_dir,
            windows=lambda: {p.id: p.window for p in self.desk.projects()},
            allocation=self.allocations.read, record=self.record)
        # Wrong one-time codes run out per seat, workstation and desk (then locked, audited).
        # What people read (notices, refusals) is in the province's local time.
        self.local_tz = timezone(timedelta(minutes=rules.local_utc_offset_minutes))
        self.sign_ins = SignInGuard(redis, clock, lockout or LockoutPolicy(), self.record,
                                    local_tz=self.local_tz)
        # A member redrawn without asking is told the notice no longer holds (once).
        self.withdrawals = Withdrawals(
            redis, lambda notice: self.notifier.send(notice),
            lambda kind, subject, detail: self.record(kind, subject, detail),
            self.desk.venue_label, self.local_tz)
        self.draw_lock = asyncio.Lock()
        self._plan_lock = asyncio.Lock()
        self._project_locks: dict[str, asyncio.Lock] = {}
        self._watchers: set[asyncio.Queue[AuditEntry]] = set()
        self._schedule_wake = asyncio.Event()
        self._placing: set[str] = set()  # projects whose draw `place` is placing now
        self.announced = AnnouncedIntents(redis)  # first draws' intents, dropped off the path
        self._fault_tasks: set[asyncio.Task[None]] = set()
        # Operator consoles wait on the current event; any change sets it and replaces it.
        self._grid_event = asyncio.Event()
        from coordinator.arrivals import ArrivalDesk  # the members' check-in and sign-in
        from coordinator.evaluation import EvaluationDesk  # the window's start and close
        from coordinator.faults import FaultDesk  # the fault shell builds on this module
        from coordinator.sheets import SheetDesk  # the committee's paper, likewise

        self.sheets = SheetDesk(self, Sheets(redis))
        self.arrivals = ArrivalDesk(self)
        self.evaluation = EvaluationDesk(self)

        self.faults = FaultDesk(self)

    # --- start-up --------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the registry and rebuild the booking picture from the sealed allocations."""
        province = await self.registry.load_province()
        allocations = []
        for project in province.projects:
            alloc = await self.allocations.read(project.id)
            if alloc is not None:
                allocations.append((project, alloc))
        self.desk.load(province, [(p, [self._seat_tuple(s) for s in a.active_seats()])
                                  for p, a in allocations])
        await asyncio.to_thread(self.desk.registry_digest)  # not on the first draw's path
        # Nor the day's screen (seconds at national size; a plan would build it first), on
        # the conduct bars now in force (else the first plan or draw drops it and rebuilds).
        await self._refresh_conduct()
        await asyncio.to_thread(self.desk.day_screen, self.rules.local_date(self.clock.now()))
        self.links.liveness.expect(s.id for s in province.sites)  # lost only after failover
        # The registry and its indexes live as long as the process: move them out of the
        # collector's reach, or every full collection rescans millions of objects (seconds).
        gc.collect()
        gc.freeze()
        if allocations:
            await self.record("coordinator.recovered", "coordinator",
                              {"allocations_opened": len(allocations),
                               "purpose": "rebuild bookings after start"})
        # Draws a crash interrupted half-placed: forward with the same seed, or back.
        await recover_intents(self)
        await LogCompaction(self.redis).recover()  # a plan killed mid-way held it off
        await self.faults.resume()  # seat passes a crash kept from going out
        # Catch the conduct bars up with the trail now (from the stored cursor; the whole trail
        # the first time), not in the first draw or day plan.
        await self.conduct_follower.follow()

    async def plan_day(self, day: date, request_id: str, executor: Executor,
                       progress: PlanProgress | None = None) -> dict[str, Any]:
        """Draw every project of `day` still awaiting its draw (coordinator/day_plan.py);
        idempotent by request id, one plan at a time."""
        replay = await self.replay(request_id)
        if replay is not None:
            return replay
        async with self._plan_lock:
            replay = await self.replay(request_id)
            if replay is not None:
                return replay
            await self._refresh_conduct()
            summary = await run_plan(self, day, executor, progress)
            # The plan's own entries (two a project) followed now, not by the next single
            # draw: after a national plan that draw would read 40,000 entries (~1 s).
            await self._refresh_conduct()
        await self.remember(request_id, summary)
        return summary

    @staticmethod
    def _seat_tuple(seat: SeatRecord) -> tuple[str, str]:
        return seat.expert_id, seat.workstation_id

    # --- audit and events ------------------------------------------------------------------

    async def record(self, kind: str, subject: str, detail: dict[str, Any]) -> AuditEntry:
        entry = await self.audit.append(kind, subject, detail)
        self._published([entry])
        return entry

    async def record_batch(self, items: list[tuple[str, str, dict[str, Any]]], *,
                           before: Callable[[Any], None] | None = None,
                           after: Callable[[Any], None] | None = None) -> list[Any]:
        """`record` for several entries in one round trip (a day plan's chunk), in one MULTI
        with the writes `before` and `after` stage (`AuditLog.append_batch_with`); returns
        the replies of `before`'s writes."""
        if not items and before is None and after is None:
            return []
        entries, replies = await self.audit.append_batch_with(items, before=before,
                                                              after=after)
        self._published(entries)
        return replies

    @contextlib.asynccontextmanager
    async def chained(self, items: list[tuple[str, str, dict[str, Any]]]
                      ) -> AsyncIterator[ChainedEntries]:
        """`AuditLog.chained` (entries for a script to append: place.lua), those that landed
        told to the watchers as `record`'s are."""
        async with self.audit.chained(items) as chained:
            yield chained
        landed = zip(chained.entries, chained.landed, strict=False)  # none if it never ran
        self._published([entry for entry, appended in landed if appended])

    def _published(self, entries: list[AuditEntry]) -> None:
        for entry in entries:
            for queue in list(self._watchers):
                queue.put_nowait(entry)
        if entries:
            self.grid_changed()

    def grid_changed(self) -> None:
        """Wake the operator consoles' grid watchers (every state change passes here)."""
        self._grid_event.set()
        self._grid_event = asyncio.Event()

    async def grid_changes(self, *, refresh_s: float = 5.0,
                           settle_s: float = 0.2) -> AsyncIterator[None]:
        """Yield at once, then after each change (a burst yields once, `settle_s` later).

        Also every `refresh_s` without a change: whether a seat is a no-show depends on the
        clock, which moves without telling anyone on the system clock.
        """
        while True:
            event = self._grid_event  # taken before the caller reads: no change is missed
            yield
            try:
                await asyncio.wait_for(event.wait(), timeout=refresh_s)
            except TimeoutError:
                continue
            await asyncio.sleep(settle_s)

    async def watch(self, after_seq: int = 0, *, tail: int = 0) -> AsyncIterator[AuditEntry]:
        """Audit entries after `after_seq` (or the last `tail` ones), then new ones live."""
        queue: asyncio.Queue[AuditEntry] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            if tail:
                after_seq = max(0, (await self.audit.head()).seq - tail)
            last = after_seq
            if after_seq or tail:
                for entry in await self.audit.entries(after_seq=after_seq):
                    last = entry.seq
                    yield entry
            while True:
                entry = await queue.get()
                if entry.seq > last:
                    last = entry.seq
                    yield entry
        finally:
            self._watchers.discard(queue)

    # --- idempotency -----------------------------------------------------------------------

    async def replay(self, request_id: str) -> dict[str, Any] | None:
        """The reply already given to `request_id` (scoped to the RPC and caller), or None."""
        return await self.requests.replay(call_scope(), request_id)

    async def remember(self, request_id: str, reply: dict[str, Any]) -> None:
        await self.requests.remember(call_scope(), request_id, reply)

    def project_lock(self, project_id: str) -> asyncio.Lock:
        return self._project_locks.setdefault(project_id, asyncio.Lock())

    def wake_schedule(self) -> None:
        """Run the schedule's next pass now (a draw or a clock change moved its deadlines)."""
        self._schedule_wake.set()

    def placing(self, project_ids: set[str], *, done: bool = False) -> None:
        """Mark draws as being placed by their caller (or, `done`, no longer): the schedule's
        `finish_placed` finishes only placements that nobody is placing."""
        if done:
            self._placing -= project_ids
        else:
            self._placing |= project_ids

    def in_flight(self) -> set[str]:
        """Projects whose intent is someone's: being placed, or announced and being dropped."""
        return self._placing | self.announced.pending

    # --- the lifecycle (coordinator/domain/lifecycle.py decides; this carries it out) ------

    @staticmethod
    def stimulus(request_id: str, kind: str) -> str:
        """What caused an event: the request's id, else a fresh id naming the cause."""
        return request_id or opaque_id(kind)

    def stage_project_event(self, pipe: Any, project_id: str, before: ProjectState,
                       after: ProjectState, event: Event, todo: list[Instruction]) -> None:
        """The project's new state and its story entry, in the caller's MULTI."""
        self.registry.stage_transition(pipe, project_id, story_entry(
            self.clock.now().isoformat(), before, after, event, todo))

    @staticmethod
    async def carry_out(todo: Sequence[Instruction],
                        steps: Mapping[Instruction, Callable[[], Awaitable[object]]]) -> None:
        """Carry out a transition's instructions (`handle`'s list), one step each, in the
        table's order. A path with a step for an instruction it was not given, or none for
        one it was, is refused before anything is done: the table and the shell cannot
        drift apart unnoticed."""
        if sorted(steps) != sorted(todo):
            raise AssertionError(f"steps {sorted(steps)} for the instructions {list(todo)}")
        for instruction in todo:
            await steps[instruction]()

    async def commit_project(self, project_id: str, before: ProjectState,
                             after: ProjectState, event: Event,
                             todo: list[Instruction]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        self.stage_project_event(pipe, project_id, before, after, event, todo)
        await pipe.execute()
        await self.validate_lifecycle(project_id)

    def seat_event(self, seat: SeatRecord, event: Event) -> StoryEntry | None:
        """Move a seat by `event` (in memory: the caller saves the allocation with the
        returned story entry); None for a repeat. A refusal is a precondition error."""
        try:
            after, todo = handle_seat(seat.status, event)
        except LifecycleRefused as exc:
            raise WorkflowError("session_id", str(exc), code="precondition") from exc
        if not todo:
            return None
        entry = story_entry(self.clock.now().isoformat(), SeatState(seat.status), after,
                            event, todo, seat=seat.session_id)
        seat.status = after.value
        return entry

    async def validate_lifecycle(self, project_id: str) -> None:
        """validate_state after every event, where EVALGRID_VALIDATE_LIFECYCLE=1 (tests)."""
        if os.environ.get(VALIDATE_ENV) != "1":
            return
        state = ProjectState(await self.registry.project_state(project_id) or "")
        alloc = self.allocations.opened(project_id)
        project = await self.registry.project(project_id)
        validate_state(state, [SeatState(s.status) for s in alloc.seats] if alloc else [],
                       committee=project.drawn_seats if project else None)

    # --- sites -----------------------------------------------------------------------------

    async def register_site(self, site_id: str, workstation_ids: set[str]) -> int:
        known = self.desk.site_workstations(site_id)
        if known is None:
            raise WorkflowError("site", f"{site_id!r} is not in the site registry",
                                code="denied")
        unknown = workstation_ids - known
        if unknown:
            raise WorkflowError("inventory", f"workstations not in the registry for {site_id}: "
                                f"{sorted(unknown)[:5]}")
        resent = await self._resend_reservations(site_id)
        await self.record("site.registered", site_id,
                          {"workstations": len(workstation_ids), "reservations_resent": resent})
        return await self.links.current_fence()

    async def _resend_reservations(self, site_id: str) -> int:
        """An agent that restarted has forgotten its reservations: queue them again (an agent
        that still holds one answers the repeat as a no-op)."""
        sessions = await self.sessions.site_session_ids(site_id)
        for session_id in sessions:
            held = await self.sessions.held(session_id)
            if held is None:
                continue
            await self.links.enqueue(site_id, site_link_pb2.CoordinatorCommand(
                reserve=site_link_pb2.Reserve(session_id=session_id,
                                              workstation_id=held.workstation_id,
                                              window=to_window(held.start, held.end))))
        return len(sessions)

    async def release_on_site(self, seat: SeatRecord, reason: str) -> None:
        """The site holds the seat's session no longer: dropped from its set, then told."""
        await self.sessions.leave_site(seat.site_id, seat.session_id)
        await self.send_release(seat, reason)

    async def send_release(self, seat: SeatRecord, reason: str) -> None:
        await self.links.enqueue(seat.site_id, site_link_pb2.CoordinatorCommand(
            release=site_link_pb2.Release(session_id=seat.session_id,
                                          workstation_id=seat.workstation_id, reason=reason)))

    # --- projects --------------------------------------------------------------------------

    async def register_project(self, host_site_id: str, project_json: str,
                               request_id: str) -> tuple[str, bool]:
        try:
            data = json.loads(project_json)
        except json.JSONDecodeError as exc:
            raise WorkflowError("project_json", f"not valid JSON: {exc.msg}") from exc
        try:
            project = project_from_dict(data)
        except RecordError as exc:
            first = exc.errors[0]  # a record that is no object at all has no field name
            raise WorkflowError(first.field or "project_json", first.reason) from exc
        if project.host_site_id != host_site_id:
            raise WorkflowError("host_site_id", f"a site may register only its own projects "
                                f"(certificate says {host_site_id!r})", code="denied")
        project = self.desk.with_registry_city(project)
        problems = self.desk.registration_problems(project, self.clock.now())
        if problems:
            raise WorkflowError(problems[0][0], problems[0][1])
        added = await self.registry.add_project(project)
        if added:
            self.desk.add_project(project)
            await self.record("project.registered", project.id,
                              {"host": host_site_id, "window_start": project.window.start
                               .isoformat(), "committee": project.committee_size})
        return project.id, not added

    async def project(self, project_id: str) -> Project:
        return self._known(project_id, await self.registry.project(project_id))

    @staticmethod
    def _known(project_id: str, project: Project | None) -> Project:
        if project is None:
            raise WorkflowError("project_id", f"no project {project_id!r}", code="not_found")
        return project

    # --- the draw --------------------------------------------------------------------------

    async def draw(self, project_id: str, request_id: str) -> DrawSummary:
        lock = self.project_lock(project_id)
        if lock.locked() or self.draw_lock.locked():
            # Busy (a day plan holds the draw lock for minutes): a resent request that was
            # answered is answered now, not after the plan.
            replay = await self.replay(request_id)
            if replay is not None:
                return DrawSummary(**replay)
        async with lock, self.draw_lock:
            found, state, replay, label, bars = await self._draw_reads(project_id, request_id)
            if replay is not None:
                return DrawSummary(**replay)
            project = self._known(project_id, found)
            if state != ProjectState.REGISTERED:
                raise WorkflowError("project_id", f"{project_id} is {state}, "
                                    "not awaiting a draw", code="precondition")
            now = self.clock.now()
            # From the day's seed round (both shares; refused while the supervisor's is due).
            day = local_day(project.window.start, self.rules.local_utc_offset_minutes)
            day_seed, _ = await self.seed_shares.day_seed(day)
            if label is None or label[0] != day:  # the stored window is not the desk's
                label = day, await self.seed_shares.first_label(day, project_id)
            seed_from = {"day": day.isoformat(), "label": label[1]}
            await self._refresh_conduct(bars)  # going on: now the trail may be followed
            try:
                prepared = self.desk.prepare(project, now, self.down_workstations(),
                                             seed=project_seed(day_seed, seed_from["label"]))
            except DrawRefused as exc:
                await self.record("draw.refused", project_id, {"reason": str(exc)})
                raise WorkflowError("project_id", str(exc), code="precondition") from exc
            # The seed is fixed by `prepare`. The commitment (seed hash, input digest) is
            # audited, with the archive stored and the label taken, in the step that books
            # and stores the draw, ahead of its placement (place.lua): a crash before it
            # finds the label free (the same seed and draw again), never a fresh seed after
            # a commitment. The reply is kept with `draw.placed`.
            result = self.desk.run(prepared)
            if isinstance(result, str):
                await self.seed_shares.take_first_labels(day, [project_id])
                await self.record("draw.committed", project_id, {
                    **prepared.commitment_record(), "seed_from": seed_from})
                await self.record("draw.starved", project_id, {"reason": result})
                raise WorkflowError("project_id", result, code="precondition")
            summary = DrawSummary(
                project_id=project_id, draw_id=result.draw_id,
                commitment=result.commitment.seed_hash, input_digest=result.commitment
                .input_digest, seats=len(result.seats), venues=len({s.venue_id for s in
                                                                    result.seats}),
            )
            scope = call_scope()
            await commit_and_place(
                self, project, prepared, result, seed_from=seed_from,
                with_commit=lambda pipe: self.seed_shares.stage_take_first_labels(
                    pipe, day, [project_id]),
                with_placed=lambda pipe: self.requests.stage_remember(
                    pipe, scope, request_id, summary.__dict__))
            self.wake_schedule()
        return summary

    async def _draw_reads(self, project_id: str, request_id: str
                          ) -> tuple[Project | None, str | None, dict[str, Any] | None,
                                     tuple[date, str] | None, int | None]:
        """A single draw's first reads, sent in its conduct skim's round trip (one trip, not
        four; under the draw's locks): the stored project and its state, the reply kept for
        the request, the project's seed label under the day of the window the desk holds
        ((day, label); None when the desk does not know the project), and the conduct bars'
        version when the trail holds nothing to follow (`ConductFollower.skim`)."""
        scope = call_scope()
        known = self.desk.project(project_id)
        day = None if known is None else local_day(known.window.start,
                                                   self.rules.local_utc_offset_minutes)

        def stage(pipe: Any) -> None:
            self.registry.stage_project_and_state(pipe, project_id)
            self.requests.stage_replay(pipe, scope, request_id)
            if day is not None:
                self.seed_shares.stage_first_label(pipe, day, project_id)

        bars = await self.conduct_follower.skim(stage)
        replies = self.conduct_follower.also_replies
        if replies is None:  # no skim ran (the follower's first follow): a trip of their own
            pipe = self.redis.pipeline(transaction=False)
            stage(pipe)
            replies = await pipe.execute()
        found, state = self.registry.read_project_and_state(replies[0], replies[1])
        label = (None if day is None else
                 (day, self.seed_shares.read_first_label(project_id, replies[3])))
        return found, state, self.requests.read_replay(request_id, replies[2]), label, bars

    async def place(self, project: Project, alloc: Allocation, result: PlacedDraw, *,
                    state_after: str = "", archive_stored: bool = False,
                    committed: dict[str, Any] | None = None) -> None:
        """`_place_draw`, known to be in flight (the schedule finishes only placements
        nobody is placing: `finish_placed`)."""
        self.placing({project.id})
        try:
            await self._place_draw(project, alloc, result, state_after=state_after,
                                   archive_stored=archive_stored,
                                   committed=committed)
        finally:
            self.placing({project.id}, done=True)

    async def _place_draw(self, project: Project, alloc: Allocation, result: PlacedDraw, *,
                          state_after: str = "", archive_stored: bool = False,
                          committed: dict[str, Any] | None = None) -> None:
        """Book every seat atomically, store the sealed allocation, queue reserves, notify.

        Recoverable (coordinator/draw_intents.py): an intent with the seats, sessions and
        commands is written before anything is booked and moves to `placed` in the MULTI
        that stores the allocation (and `state_after`, the project's new state, if any).
        `committed`: the draw's `draw.committed` record, audited in the intent's MULTI.
        """
        await self.announced.settle({project.id})  # its first draw's intent dropped first
        new_seats, commands = self.seats_and_commands(project, result)
        intent = make_intent(
            project.id, result.draw_id, "booking", await self.audit.known_seq(),
            seats=new_seats, commands=commands, state_after=state_after,
            parent=result.commitment.parent or "", outcome_digest=result.outcome_digest,
            alloc_before=alloc.to_dict() if alloc.draw_ids else None)
        await self.store_snapshot(result)

        def stage(pipe: Any) -> None:
            if not archive_stored:
                self.draws.stage_archive(pipe, result.draw_id,
                                         result.archive_fields(self.master_key))
            stage_intent(pipe, self.master_key, intent)

        if committed is None:
            pipe = self.redis.pipeline(transaction=True)
            stage(pipe)
            await pipe.execute()
        else:
            await self.record_batch([("draw.committed", project.id, committed)], before=stage)
        fault_point("after_intent")
        booked = await self.bookings.reserve_all(booking_items(project, new_seats))
        if not booked.ok:
            # The in-memory picture disagreed with Redis: nothing was booked; say so loudly.
            await drop_intent(self.redis, project.id)
            await self.record("draw.booking_conflict", project.id,
                              {"draw_id": result.draw_id, "detail": booked.reason})
            raise WorkflowError("project_id", f"booking conflict: {booked.reason}",
                                code="precondition")
        fault_point("after_reserve")
        alloc.draw_ids.append(result.draw_id)
        alloc.seats.extend(new_seats)
        self.allocations.keep(alloc)
        self.desk.book(project, [(s.expert_id, s.workstation_id) for s in new_seats])
        await self.store_placement(project, alloc, new_seats, commands, intent)
        fault_point("after_pipeline")
        await self.announce_placement(project, intent, new_seats, commands)

    @staticmethod
    def seats_and_commands(project: Project, result: PlacedDraw
                           ) -> tuple[list[SeatRecord],
                                      list[tuple[str, site_link_pb2.CoordinatorCommand]]]:
        """A draw's seat records (fresh sessions, holders, codes) and reserve commands (their
        fences taken as they are queued)."""
        new_seats = [
            SeatRecord(
                session_id=opaque_id("ses"), expert_hold=opaque_id("hold"),
                expert_id=seat.expert_id, expert_ref=opaque_id("exp"), site_id=seat.site_id,
                venue_id=seat.venue_id, workstation_id=seat.workstation_id,
                room_id=seat.room_id, quota_index=seat.quota_index, draw_id=result.draw_id,
                code=one_time_code(), notice_id=opaque_id("ntc"),
            )
            for seat in result.seats
        ]
        commands = []
        window = to_window(project.window.start, project.window.end)  # copied into each
        for seat in new_seats:
            command = site_link_pb2.CoordinatorCommand(
                command_id=opaque_id("cmd"),
                reserve=site_link_pb2.Reserve(
                    session_id=seat.session_id, workstation_id=seat.workstation_id,
                    window=window,
                ),
            )
            commands.append((seat.site_id, command))
        return new_seats, commands

    async def store_placement(self, project: Project, alloc: Allocation,
                              new_seats: list[SeatRecord],
                              commands: list[tuple[str, site_link_pb2.CoordinatorCommand]],
                              intent: DrawIntent) -> None:
        """One MULTI: allocation, sessions, queued reserves, project state, intent `placed`."""
        pipe = self.redis.pipeline(transaction=True)
        self.stage_placement(pipe, project, alloc, new_seats, commands, intent)
        await pipe.execute()
        if intent.state_after:
            await self.validate_lifecycle(project.id)

    def stage_placement(self, pipe: Any, project: Project, alloc: Allocation,
                        new_seats: list[SeatRecord],
                        commands: list[tuple[str, site_link_pb2.CoordinatorCommand]],
                        intent: DrawIntent) -> None:
        """`store_placement`'s writes, in the caller's MULTI (a plan chunk stages many)."""
        self.allocations.stage_save(pipe, alloc)
        for seat in new_seats:
            self.sessions.stage_open(
                pipe, session_id=seat.session_id, site_id=seat.site_id,
                workstation_id=seat.workstation_id, start_ts=project.window.start_ts,
                end_ts=project.window.end_ts, project_id=project.id)
        for site_id, command in commands:
            self.links.enqueue_in(pipe, site_id, command)
        if intent.state_after:  # a first draw: the project was awaiting it
            placed = DrawPlaced(f"draw-{intent.draw_id}")
            after, todo = handle_project(ProjectState.REGISTERED, placed)
            assert after == intent.state_after, (after, intent.state_after)
            self.stage_project_event(pipe, project.id, ProjectState.REGISTERED, after, placed, todo)
        intent.phase = "placed"
        stage_intent(pipe, self.master_key, intent)

    async def announce_placement(self, project: Project, intent: DrawIntent,
                                 new_seats: list[SeatRecord],
                                 commands: list[tuple[str, site_link_pb2.CoordinatorCommand]]
                                 ) -> None:
        """Wake the agents, send the notices, audit `draw.placed`, drop the intent."""
        self.send_notices(project, new_seats, commands)
        await self.record("draw.placed", project.id, self.placed_record(intent, new_seats))
        await drop_intent(self.redis, project.id)

    @staticmethod
    def placed_record(intent: DrawIntent, new_seats: list[SeatRecord]) -> dict[str, Any]:
        return {"draw_id": intent.draw_id, "seats": len(new_seats),
                "outcome_digest": intent.outcome_digest, "parent": intent.parent}

    def send_notices(self, project: Project, new_seats: list[SeatRecord],
                     commands: list[tuple[str, site_link_pb2.CoordinatorCommand]]) -> None:
        """Wake the agents of the queued commands; notify each new member."""
        for site_id, _ in commands:
            self.links.ring(site_id)
        for seat in new_seats:
            venue = self.desk.venue_label(seat.venue_id)
            self.notifier.send(Notice(notice_id=seat.notice_id, expert_id=seat.expert_id,
                                      venue_id=seat.venue_id, venue=venue,
                                      start=project.window.start.astimezone(self.local_tz),
                                      end=project.window.end.astimezone(self.local_tz),
                                      code=seat.code))

    async def allocation(self, project_id: str, purpose: str) -> Allocation:
        """The clear allocation; reading it from the sealed store is an audited unseal."""
        alloc = self.allocations.opened(project_id)
        if alloc is None:
            alloc = await self.allocations.read(project_id)
            if alloc is None:
                raise WorkflowError("project_id", f"{project_id} has no draw yet",
                                    code="precondition")
            self.allocations.keep(alloc)
            await self.record("allocation.unsealed", project_id, {"purpose": purpose})
        return alloc

    async def save_allocation(self, alloc: Allocation, story: StoryEntry | None = None
                              ) -> None:
        """Store the sealed allocation; with a seat's transition, its story entry in the same
        MULTI."""
        if story is None:
            await self.allocations.save(alloc)
            return
        pipe = self.redis.pipeline(transaction=True)
        self.allocations.stage_save(pipe, alloc)
        self.registry.stage_story(pipe, alloc.project_id, story)
        await pipe.execute()
        await self.validate_lifecycle(alloc.project_id)

    # --- notices ---------------------------------------------------------------------------

    async def reply_to_notice(self, notice_id: str, accept: bool, reason: str,
                              request_id: str) -> str:
        replay = await self.replay(request_id)
        if replay is not None:
            return str(replay["outcome"])
        project_id = await self._project_of_notice(notice_id)
        async with self.project_lock(project_id):
            alloc = await self.allocation(project_id, "notice reply")
            seat = alloc.by_notice(notice_id)
            if seat is None:
                raise WorkflowError("notice_id", "unknown notice", code="not_found")
            project = await self.project(project_id)
            if not accept and seat.status == DEPARTURES["declined"] and \
                    len(alloc.active_seats()) < project.drawn_seats:
                # The decline was stored, then the store went away before the replacement
                # was drawn: the retry draws it now.
                outcome = await self.replace_seat(project_id, alloc, seat, "declined",
                                              reason or "declined", resume=True)
            elif seat.status != SeatState.NOTIFIED:
                outcome = f"already-{seat.status}"
            elif accept:
                entry = self.seat_event(seat, NoticeAccepted(
                    self.stimulus(request_id, "notice")))
                await self.save_allocation(alloc, entry)
                await self.record("notice.accepted", project_id, {"notice": notice_id})
                outcome = "accepted"
            else:
                outcome = await self.replace_seat(project_id, alloc, seat, "declined",
                                              reason or "declined", stimulus_id=request_id)
        await self.remember(request_id, {"outcome": outcome})
        return outcome

    async def list_notices(self, project_id: str, *, by: str
                           ) -> tuple[Project, list[tuple[SeatRecord, str]]]:
        """A project's notices as an operator sees them: opaque ids, venue, status; never the
        code or the name (reading them is an audited unseal, as for the seats)."""
        if not project_id.strip():
            raise WorkflowError("project_id", "required")
        project = await self.project(project_id)
        state = (await self.registry.project_states()).get(project_id)
        if state not in WITH_SEATS:
            return project, []
        alloc = await self.allocation(project_id, f"notice list for {by}")
        return project, [(seat, self.desk.venue_label(seat.venue_id)) for seat in alloc.seats]

    async def resend_notice(self, notice_id: str, reason: str, request_id: str, *,
                            by: str) -> str:
        """Send a notice again (same code) when the expert says it never arrived: audited."""
        replay = await self.replay(request_id)
        if replay is not None:
            return str(replay["outcome"])
        if not notice_id.strip():
            raise WorkflowError("notice_id", "required")
        if not reason.strip():
            raise WorkflowError("reason", "say why the notice is sent again (it is audited)")
        project_id = await self._project_of_notice(notice_id)
        project = await self.project(project_id)
        async with self.project_lock(project_id):
            alloc = await self.allocation(project_id, "notice resend")
            seat = alloc.by_notice(notice_id)
            if seat is None:
                raise WorkflowError("notice_id", "unknown notice", code="not_found")
            if not seat.active:
                raise WorkflowError("notice_id", f"the seat of this notice is {seat.status}; "
                                    "its notice no longer holds", code="precondition")
            if self.clock.now() >= project.window.end:
                raise WorkflowError("notice_id", "the evaluation window has ended",
                                    code="precondition")
            self.notifier.send(Notice(notice_id=seat.notice_id, expert_id=seat.expert_id,
                                      venue_id=seat.venue_id,
                                      venue=self.desk.venue_label(seat.venue_id),
                                      start=project.window.start.astimezone(self.local_tz),
                                      end=project.window.end.astimezone(self.local_tz),
                                      code=seat.code))
            await self.record("notice.resent", project_id, {
                "notice": notice_id, "by": by, "reason": reason.strip()[:500]})
        await self.remember(request_id, {"outcome": "resent"})
        return "resent"

    async def _project_of_notice(self, notice_id: str) -> str:
        for project_id, alloc in self.allocations.items():
            if alloc.by_notice(notice_id) is not None:
                return project_id
        states = await self.registry.project_states()
        for project_id, state in states.items():
            if state in WITH_COMMITTEE:
                alloc = await self.allocation(project_id, "find notice")
                if alloc.by_notice(notice_id) is not None:
                    return project_id
        raise WorkflowError("notice_id", "unknown notice", code="not_found")

    async def replace_member(self, project_id: str, session_id: str, reason: str, note: str,
                             request_id: str, *, by: str) -> str:
        """A leave filed before opening, or a no-show once the window is open: redraw."""
        replay = await self.replay(request_id)
        if replay is not None:
            return str(replay["outcome"])
        if reason not in ("leave", "no_show"):
            raise WorkflowError("reason", f"must be 'leave' or 'no_show', not {reason!r}")
        async with self.project_lock(project_id):
            state = (await self.registry.project_states()).get(project_id)
            wanted = ProjectState.DRAWN if reason == "leave" else ProjectState.EVALUATING
            if state != wanted:
                raise WorkflowError("reason", f"a {reason} applies while the project is "
                                    f"{wanted.value}; it is {state}", code="precondition")
            alloc = await self.allocation(project_id, f"{reason} by {by}")
            seat = alloc.by_session(session_id)
            project = await self.project(project_id)
            if seat is not None and seat.status == DEPARTURES[reason] and \
                    len(alloc.active_seats()) < project.drawn_seats:
                # The same departure, interrupted before its replacement was drawn (the
                # store went away): the retry draws it now.
                outcome = await self.replace_seat(project_id, alloc, seat, reason,
                                              note or reason, resume=True)
                await self.remember(request_id, {"outcome": outcome})
                return outcome
            if seat is None or not seat.active:
                raise WorkflowError("session_id", "no active seat with this session",
                                    code="not_found")
            if seat.status in SAT:
                raise WorkflowError("session_id", "the member has signed in: not a no-show",
                                    code="precondition")
            # The redraw's seed round must be fixable now: refused before the seat is touched.
            await self.seed_shares.day_seed(local_day(project.window.start,
                                                      self.rules.local_utc_offset_minutes))
            booth = self.links.live[seat.site_id].workstations.get(seat.workstation_id)
            if reason == "no_show" and booth in ("signed_in", "evaluating"):
                # Signed in at the booth while the coordinator (or its store) was away: the
                # agent is forwarding the sign-in; redrawing now would refuse it.
                raise WorkflowError("session_id", "the guest site reports this workstation "
                                    f"{booth.replace('_', ' ')}: a sign-in taken offline is "
                                    "being forwarded, not a no-show", code="precondition")
            outcome = await self.replace_seat(project_id, alloc, seat, reason, note or reason,
                                          stimulus_id=request_id)
        await self.remember(request_id, {"outcome": outcome})
        return outcome

    async def declare_recusal(self, site_id: str, session_id: str, workstation_id: str,
                              reason: str, request_id: str) -> str:
        """A signed-in member recuses on seeing the parties: the seat is redrawn."""
        replay = await self.replay(request_id)
        if replay is not None:
            return str(replay["outcome"])
        project, alloc, seat = await self.open_seat(site_id, session_id, workstation_id)
        async with self.project_lock(project.id):
            if seat.status != SeatState.SIGNED_IN:
                raise WorkflowError("session_id", "recusal is declared after sign-in and "
                                    "before signing the sheet", code="precondition")
            outcome = await self.replace_seat(project.id, alloc, seat, "recusal",
                                          reason or "recusal", stimulus_id=request_id)
        await self.remember(request_id, {"outcome": outcome})
        return outcome

    async def open_seats(self, *, by: str) -> list[tuple[str, str, list[SeatRecord]]]:
        """(project, state, seats) of every project drawn or under evaluation: the operator's
        live view. Opening an allocation not yet in memory is an audited unseal, as in
        `project_seats`."""
        states = await self.registry.project_states()
        found = []
        for project_id, state in sorted(states.items()):
            if state in WITH_COMMITTEE:
                alloc = await self.allocation(project_id, f"seat list for {by}")
                found.append((project_id, state, list(alloc.seats)))
        return found

    async def project_seats(self, project_id: str, *, by: str) -> tuple[str, list[SeatRecord]]:
        state = (await self.registry.project_states()).get(project_id, "unknown")
        if state == ProjectState.REGISTERED:
            return state, []
        alloc = await self.allocation(project_id, f"seat list for {by}")
        return state, list(alloc.seats)

    async def project_story(self, project_id: str, *, last: int = 0
                            ) -> tuple[str, list[StoryEntry]]:
        """The project's state and its story (every transition kept, or the `last` ones)."""
        if not project_id.strip():
            raise WorkflowError("project_id", "required")
        if last < 0 or last > STORY_KEPT:
            raise WorkflowError("last", f"must be 0 (all) to {STORY_KEPT}")
        await self.project(project_id)  # not_found for a project never registered
        state = await self.registry.project_state(project_id) or "unknown"
        return state, await self.registry.story(project_id, last=last)

    async def replace_seat(self, project_id: str, alloc: Allocation, seat: SeatRecord,
                           reason: str, note: str, *, resume: bool = False,
                           stimulus_id: str = "") -> str:
        """Release a member's seat and draw a replacement under the same rules (chained).

        The departure is stored before the bookings are released: interrupted there, the
        seat is departed and still holds its bookings (never a seat without them), and a
        retry (`resume`) goes on from the draw."""
        project = await self.project(project_id)
        status = DEPARTURES[reason]
        if not resume:  # pending until the draw has run: see _redraw_due
            await self.redraws.add(project_id, seat.session_id)
            entry = self.seat_event(seat, Departed(self.stimulus(stimulus_id, reason), reason))
            await self.save_allocation(alloc, entry)
        await self.withdrawals.tell(project, seat, reason)  # resumed: unless told already
        await self.bookings.release(
            [BookingItem(ws_resource(seat.workstation_id), project.window.start_ts,
                         project.window.end_ts, seat.session_id),
             BookingItem(expert_resource(seat.expert_id), project.window.start_ts,
                         project.window.end_ts, seat.expert_hold)])
        self.desk.unbook(project, seat.expert_id, seat.workstation_id)
        await self.release_on_site(seat, status)
        if not resume:
            await self.record(f"seat.{status}", project_id,
                              {"session": seat.session_id, "reason": note})
        async with self.draw_lock:
            committee = [Seat(s.expert_id, s.quota_index, s.venue_id, s.site_id,
                              s.workstation_id, s.room_id)
                         for s in alloc.seats if s.active or s is seat]
            previous = await self.sealed_archive(alloc.draw_ids[-1])
            await self._refresh_conduct()
            # From the day's seed round (both shares): not the coordinator's pick. Fixed by the
            # first draw; a redraw the grid makes on its own takes the audited fallback.
            day = local_day(project.window.start, self.rules.local_utc_offset_minutes)
            day_seed, _ = await self.seed_shares.day_seed(day, urgent=f"redraw after {reason}")
            label = await self.seed_shares.redraw_label(day, project_id, len(alloc.draw_ids))
            derived = {"seed_from": {"day": day.isoformat(), "label": label}}
            try:
                prepared = self.desk.prepare_supplementary(
                    project, self.clock.now(), previous, committee, [seat.expert_id],
                    self._down_for_replacement(project, alloc), project_seed(day_seed, label))
            except DrawRefused as exc:
                await self.save_allocation(alloc)
                await self.record("draw.refused", project_id, {"reason": str(exc)})
                await self.redraws.done(project_id, seat.session_id)
                return f"{status}-no-replacement"
            committed = {**prepared.commitment_record(), **derived}
            result = self.desk.run(prepared)
            if isinstance(result, str):
                await self.save_allocation(alloc)
                await self.record_batch([("draw.committed", project_id, committed),
                                         ("draw.starved", project_id, {"reason": result})])
                await self.redraws.done(project_id, seat.session_id)
                return f"{status}-no-replacement"
            # Committed in the MULTI of its archive and intent: an outage after it leaves the
            # intent, which the next pass takes forward (`_redraw_due`), never a second draw.
            await self.place(project, alloc, result, committed=committed)
            await self.redraws.done(project_id, seat.session_id)
        await self.faults.admit_seats(project_id)  # a replacement drawn during evaluation
        return f"{status}-redrawn"

    # --- at the guest site -----------------------------------------------------------------

    async def open_seat(self, site_id: str, session_id: str, workstation_id: str | None = None
                        ) -> tuple[Project, Allocation, SeatRecord]:
        """The open seat behind a session at this site (and on this workstation, if given)."""
        held = await self.sessions.held(session_id)
        if held is None or held.site_id != site_id:
            raise WorkflowError("session_id", "no such session at this site", code="not_found")
        project = await self.project(held.project_id)
        states = await self.registry.project_states()
        if states.get(project.id) != ProjectState.EVALUATING:
            raise WorkflowError("session_id", "evaluation has not started for this session",
                                code="precondition")
        alloc = await self.allocation(project.id, "session")
        seat = alloc.by_session(session_id)
        if seat is None or not seat.active:
            raise WorkflowError("session_id", "session is no longer held", code="precondition")
        if workstation_id is not None and seat.workstation_id != workstation_id:
            raise WorkflowError("workstation_id", "this session is not on this workstation",
                                code="denied")
        return project, alloc, seat

    # --- check-in at the desk, sign-in at the booth: coordinator/arrivals.py -------------

    # --- score sheets, clarifications, review: coordinator/sheets.py ------------------------

    # --- window start and close ------------------------------------------------------------

    async def run_schedule(self, idle_s: float = 30.0) -> None:
        """Unseal every drawn project when its window opens: the scheduled, audited start.

        Woken by a draw or a clock change (no busy polling); on the system clock it also
        sleeps until the next window start, at most `idle_s` at a time.
        """
        while True:
            self._schedule_wake.clear()
            failed = False
            try:
                upcoming = await self._schedule_pass()
            except Exception:  # a Redis outage: the loop lives on, the next tick tries again
                log.exception("schedule pass failed; retrying in %s s", SCHEDULE_RETRY_S)
                failed, upcoming = True, []
            wait = min([idle_s, *upcoming])
            if isinstance(self.clock, SimClock):
                wait = idle_s  # simulated time moves only when told: wait for that
            if failed:
                wait = SCHEDULE_RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._schedule_wake.wait(), timeout=max(wait, 0.01))

    async def _schedule_pass(self) -> list[float]:
        """One pass of the schedule; the seconds until each later window start."""
        states = await self.registry.project_states()
        now = self.clock.now()
        upcoming = []
        for project in self.desk.projects():
            if states.get(project.id) != ProjectState.DRAWN:
                continue
            if project.window.start <= now:
                try:
                    await self.evaluation.start(project.id, by="schedule",
                                                stimulus_id=f"schedule-{now.isoformat()}")
                except WorkflowError as exc:
                    log.warning("scheduled start of %s: %s", project.id, exc)
            else:
                upcoming.append((project.window.start - now).total_seconds())
        await self.faults.review()  # incident deadlines passed with the clock
        await self.faults.overdue_evaluations(states)
        await self._redraw_due(states)
        if await finish_placed(self, self.in_flight()):
            self.grid_changed()
        return upcoming

    async def _redraw_due(self, states: dict[str, str]) -> None:
        """Departures stored whose replacement draw an outage cut off, with no retry since
        (a booth's recusal, a lost site's redraw): drawn now, at the schedule's pass."""
        for project_id, session_id in await self.redraws.all():
            if states.get(project_id) not in (ProjectState.DRAWN, ProjectState.EVALUATING):
                await self.redraws.done(project_id, session_id)
                continue
            async with self.project_lock(project_id):
                if project_id in self.in_flight():
                    continue  # its placement is under way: the next pass looks again
                # A replacement committed before the outage is taken forward (or back) from
                # its intent first: its seed label is spent, a second draw would reuse it.
                await recover_project(self, project_id)
                alloc = await self.allocation(project_id, "redraw after an outage")
                seat = alloc.by_session(session_id)
                project = await self.project(project_id)
                if seat is None or seat.active or \
                        len(alloc.active_seats()) >= project.drawn_seats:
                    await self.redraws.done(project_id, session_id)  # replaced meanwhile
                    continue
                reason = next(r for r, status in DEPARTURES.items() if status == seat.status)
                try:
                    outcome = await self.replace_seat(project_id, alloc, seat, reason,
                                                      "redrawn at the schedule's pass",
                                                      resume=True)
                except WorkflowError as exc:  # e.g. a booking conflict: the operator's now
                    await self.redraws.done(project_id, session_id)
                    outcome = f"not redrawn: {exc}"
            log.info("departure %s of %s: %s", session_id, project_id, outcome)

    # --- evaluation start and close: coordinator/evaluation.py ---------------------------

    async def store_snapshot(self, result: PlacedDraw) -> None:
        """The day's snapshot a draw references, stored once per digest (before the archive
        that names it, so no stored archive ever lacks its snapshot)."""
        if result.snapshot is not None:
            await self.snapshots.store_once(result.snapshot)

    async def draw_inputs(self, archive: dict[str, Any]) -> DrawInputs:
        """The inputs of an archive, with the snapshot they reference (the desk's, or Redis)."""
        digest = archive["inputs"].get("snapshot")
        snapshots: dict[str, DrawSnapshot] = {}
        if digest is not None:
            snapshot = self.desk.snapshot(digest) or await self.snapshots.read(digest)
            if snapshot is not None:
                snapshots[digest] = snapshot
        return inputs_from_json(archive["inputs"], snapshots)

    async def sealed_archive(self, draw_id: str) -> dict[str, Any]:
        """The full archive of a draw, seed included: only the coordinator opens it."""
        archive = await self.draws.sealed_archive(draw_id)
        if archive is None:
            raise WorkflowError("draw_id", f"no draw {draw_id}", code="not_found")
        return archive

    async def draw_public(self, draw_id: str) -> dict[str, Any]:
        return await self.draws.commitment(draw_id) or {"draw_id": draw_id}

    # --- status ----------------------------------------------------------------------------

    async def status(self) -> dict[str, int]:
        counts = await self.registry.counts()
        states = await self.registry.project_states()
        return {
            "sites": counts["sites"], "sites_online": len(self.links.online()),
            "workstations": self.desk.workstation_count(), "experts": counts["experts"],
            "projects": counts["projects"],
            "projects_reported": sum(1 for s in states.values() if s == ProjectState.REPORTED),
            "sites_disconnected": len(self.links.liveness.sites_in(Link.DISCONNECTED)),
            "sites_lost": len(self.links.liveness.sites_in(Link.LOST)),
            "incidents_open": len(await self.faults.incidents()),
        }

    async def list_projects(self, day: str) -> list[tuple[Project, str]]:
        states = await self.registry.project_states()
        province = self.desk.projects()
        chosen = [p for p in province
                  if not day or self.rules.local_date(p.window.start).isoformat() == day]
        return [(p, states.get(p.id, "unknown")) for p in sorted(
            chosen, key=lambda p: (p.window.start, p.id))]

    async def result(self, project_id: str) -> tuple[str, str]:
        states = await self.registry.project_states()
        state = states.get(project_id, "unknown")
        path = self.reports_dir / f"{project_id}.json"
        report = path.read_text(encoding="utf-8") \
            if state == ProjectState.REPORTED and path.exists() \
            else ""
        return state, report

    async def project_of_seat(self, seat: SeatRecord) -> Project:
        for project_id, alloc in self.allocations.items():
            if seat in alloc.seats:
                return await self.project(project_id)
        raise WorkflowError("session_id", "unknown seat", code="not_found")

    def company_names(self) -> dict[str, str]:
        return self.desk.company_names

    async def audit_site(self, site_id: str, kind: str) -> None:
        await self.record(kind, site_id, {})

    def publish_status(self, site_id: str, changed: list[tuple[str, str]]) -> None:
        """Workstation state changes go to watchers (telemetry, not audit); a failed
        workstation that holds a seat is handled by the fault rules, off the status stream."""
        self.grid_changed()
        failed = [ws for ws, state in changed if state == "fault"]
        if failed:
            task = asyncio.create_task(self._handle_faults(site_id, failed))
            self._fault_tasks.add(task)
            task.add_done_callback(self._fault_tasks.discard)
        for ws in self.links.back_in_service(site_id):  # of the report `changed` came from
            self.faults.workstation_may_be_back(site_id, ws)

    async def _handle_faults(self, site_id: str, workstation_ids: list[str]) -> None:
        for workstation_id in workstation_ids:
            try:
                await self.workstation_failed(site_id, workstation_id)
            except Exception:  # a fault handler must never take the status stream down
                log.exception("handling the fault of %s at %s", workstation_id, site_id)

    async def workstation_failed(self, site_id: str, workstation_id: str) -> str:
        """DOMAIN "Faults": move the member to a spare workstation at the same venue, else
        redraw venue and member. A signed sheet is kept whatever happens to the booth."""
        for held in await self.sessions.held_at(site_id, workstation_id):
            session_id = held.session_id
            project = await self.project(held.project_id)
            if project.window.end <= self.clock.now():
                continue
            async with self.project_lock(project.id):
                alloc = await self.allocation(project.id, "workstation fault")
                seat = alloc.by_session(session_id)
                if seat is None or not seat.active or seat.status == SeatState.SIGNED:
                    continue
                begun = any(s.status in SAT for s in alloc.active_seats())
                phase = phase_of(project.window.start, self.clock.now(), begun)
                outcome = await self._move_or_replace(
                    project, alloc, seat, redraw=phase is Phase.BEFORE_WINDOW)
                if outcome == "no-spare":  # at or during the window: the rules' clock runs
                    return await self.faults.workstation_down(project, alloc, seat)
                return outcome
        return "no-seat"

    async def _refresh_conduct(self, skimmed: int | None = None) -> None:
        """Conduct bars changed (by the trail followed just now, `conduct update` or a
        sanction): the day's screen, built on the old ones, is built again. `skimmed`: the
        bars' version a skim just found with nothing to follow (no follow needed)."""
        if skimmed is None:
            await self.conduct_follower.follow()
            skimmed = self.conduct_follower.bars_version
        if await self.conduct.refresh(self.desk.pool, skimmed):
            self.desk.forget_screen()

    def _down_for_replacement(self, project: Project, alloc: Allocation) -> frozenset[str]:
        """Disconnected sites left out of a supplementary draw, as long as a venue holding
        no member stays on offer: else leaving them out would only raise the per-venue cap
        (or starve the seat), and the replacement waits for its site instead."""
        down = self.down_workstations(unreachable=True)
        usual = self.down_workstations()
        if down == usual:
            return down
        occupied = {s.venue_id for s in alloc.active_seats()}
        spare = self.desk.offered_venues(project, self.clock.now(), down) - occupied
        return down if spare else usual

    def down_workstations(self, *, unreachable: bool = False) -> frozenset[str]:
        """Workstations their sites report faulty or offline, and every workstation of a site
        declared lost: no draw or move offers them. `unreachable` (supplementary draws: the
        replacement is needed now) adds every site recorded as disconnected (heard since this
        coordinator started, then silent; one not yet heard after a restart or failover is
        still within its grace), unless most sites are: that is the coordinator's own outage
        (its store was away), not theirs, and they are back in seconds."""
        liveness = self.links.liveness
        sites = liveness.sites_in(Link.LOST)
        if unreachable:
            cut = [s for s in liveness.sites_in(Link.DISCONNECTED)
                   if liveness.view(s).last_heard is not None]
            if len(cut) < len(liveness.sites_in(Link.CONNECTED)):
                sites += cut
        lost = [self.desk.site_workstations(s) or set() for s in sites]
        return frozenset(self.links.out_of_service).union(*lost)

    async def _move_or_replace(self, project: Project, alloc: Allocation,
                               seat: SeatRecord, *, redraw: bool = True) -> str:
        venue = self.desk.venue(seat.venue_id)
        busy = self.desk.busy_during(project) | self.down_workstations()
        rooms_taken = {s.room_id for s in alloc.active_seats()
                       if s.venue_id == seat.venue_id and s is not seat}
        spares = sorted((ws.id, ws.room_id) for ws in (venue.workstations if venue else ())
                        if ws.id not in busy and ws.room_id not in rooms_taken)
        start, end = project.window.start_ts, project.window.end_ts
        if spares:
            # A spare at random, replayably: from the committed seed of the seat's draw.
            seed = bytes.fromhex(str((await self.sealed_archive(seat.draw_id))["seed"]))
            new_ws, new_room = spares[spare_workstation(
                seed, seat.session_id, seat.workstation_id, [ws for ws, _ in spares])]
            booked = await self.bookings.reserve_all(
                [BookingItem(ws_resource(new_ws), start, end, seat.session_id)])
            if booked.ok:
                old_ws = seat.workstation_id
                await self.bookings.release(
                    [BookingItem(ws_resource(old_ws), start, end, seat.session_id)])
                self.desk.move_workstation(project, old_ws, new_ws)
                seat.workstation_id, seat.room_id = new_ws, new_room
                await self.save_allocation(alloc)
                await self.sessions.move(seat.session_id, new_ws)
                window = to_window(project.window.start, project.window.end)
                await self.links.enqueue(seat.site_id, site_link_pb2.CoordinatorCommand(
                    release=site_link_pb2.Release(session_id=seat.session_id,
                                                  workstation_id=old_ws,
                                                  reason="workstation fault")))
                await self.links.enqueue(seat.site_id, site_link_pb2.CoordinatorCommand(
                    reserve=site_link_pb2.Reserve(session_id=seat.session_id,
                                                  workstation_id=new_ws, window=window)))
                await self.record("seat.moved", project.id, {
                    "session": seat.session_id, "from": old_ws, "to": new_ws,
                    "reason": "workstation fault", "draw_id": seat.draw_id,
                    "spares": [ws for ws, _ in spares]})
                return "moved"
        if not redraw:
            return "no-spare"
        return await self.replace_seat(project.id, alloc, seat, "fault",
                                   "workstation failed and the venue has no spare")

    async def save_clock(self) -> None:
        """Keep the simulated clock's time in Redis: a coordinator restarted with the same
        command line (or a standby taking over) resumes the day there, not at its start."""
        await sim_clock.save(self.redis, self.clock.now())

    @staticmethod
    async def saved_clock(redis: aioredis.Redis) -> datetime | None:
        return await sim_clock.saved(redis)

    def advance_clock(self, when: datetime) -> datetime:
        if not isinstance(self.clock, SimClock):
            raise WorkflowError("to", "this coordinator runs on the system clock",
                                code="precondition")
        now = self.clock.advance_to(when)
        self.grid_changed()
        self.wake_schedule()
        return now

    def local_text(self, when: datetime) -> str:
        """`2026-03-02 09:00 +08:00`: a time as people in the province read it."""
        local = when.astimezone(self.local_tz)
        return f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}"

    def now(self) -> datetime:
        return self.clock.now()
