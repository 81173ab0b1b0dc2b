"""gRPC servicers of the coordinator: translate messages to workflow calls, nothing more.

The caller's identity always comes from its certificate (`current_identity`), never from a
request field.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import grpc
from evalgrid_wire.v1 import (
    common_pb2,
    operator_pb2,
    operator_pb2_grpc,
    site_link_pb2,
    site_link_pb2_grpc,
)
from google.protobuf.timestamp_pb2 import Timestamp

from coordinator import seat_passes
from coordinator.domain.day_plan import local_day
from coordinator.domain.fault_rules import Incident, allowed
from coordinator.enrolment import Enrolments
from coordinator.metrics import CoordinatorMetrics
from coordinator.seed_shares import ShareState
from coordinator.site_links import OUT_OF_SERVICE
from coordinator.store.errors import STORE_UNAVAILABLE
from coordinator.workflow import Workflow, WorkflowError
from evalgrid.authorization import authorize
from evalgrid.limits import clip
from evalgrid.lockout import unlock_scopes
from evalgrid.pki.identity import Identity
from evalgrid.tls import PermissionDeniedError
from evalgrid.wire import from_timestamp, to_timestamp, to_window

log = logging.getLogger("evalgrid.coordinator")
R = TypeVar("R")

STATUS_OF = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "denied": grpc.StatusCode.PERMISSION_DENIED,
}


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, WorkflowError):
        await context.abort(STATUS_OF[exc.code], clip(str(exc)))
    if isinstance(exc, PermissionDeniedError):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, clip(str(exc)))
    raise exc


def answers_errors(method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]
                   ) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """A unary method's refusals become the status code that says why (see `STATUS_OF`)."""
    @functools.wraps(method)
    async def answering(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except (WorkflowError, PermissionDeniedError) as exc:
            await _abort(context, exc)
            raise
        except STORE_UNAVAILABLE as exc:
            # The store is restarting or unreachable: retryable, and nothing half-done is
            # acknowledged (the caller retries with the same request id).
            log.warning("store unavailable during %s: %s", method.__name__, exc)
            metrics = getattr(self, "metrics", None)
            if metrics is not None:
                metrics.redis_errors.labels(method.__name__).inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "the coordinator's store is unavailable; retry")
            raise
    return answering


# --- validation of request fields (a bad value is INVALID_ARGUMENT naming the field) --------

#: An agent's figures (StatusReport.figures): at most this many, names like `booths_free`.
MAX_AGENT_FIGURES = 16
FIGURE_NAME = re.compile(r"[a-z][a-z_]{0,39}")

#: How far one AdvanceClock may move the simulated clock: days of schedule, not the year 9999.
MAX_CLOCK_STEP = timedelta(days=366)


def _event_id(after_id: str) -> int:
    """An audit event id ("" for none): ASCII digits only (str.isdigit also takes "²")."""
    if not after_id:
        return 0
    if not (after_id.isascii() and after_id.isdigit() and len(after_id) <= 19):
        raise WorkflowError("after_id", "not an event id (the id of an Event, digits)")
    return int(after_id)


#: The longest period one Operator.ServiceStats call counts (it reads the whole trail).
MAX_SERVICE_DAYS = 366


def _local_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WorkflowError(field, f"a local date YYYY-MM-DD, not {text[:40]!r}") from None


def _when(ts: Timestamp, field: str) -> datetime:
    """A wire timestamp as a datetime; out-of-range seconds or nanos are refused by name."""
    try:
        return from_timestamp(ts)
    except (ValueError, OverflowError) as exc:
        raise WorkflowError(field, f"not a valid timestamp: {exc}") from None


def _required(**fields: str) -> None:
    """Refuse the first empty field, by name."""
    for name, value in fields.items():
        if not value.strip():
            raise WorkflowError(name, "required")


def _site(rpc: str) -> str:
    """The calling site, if the table's row for `rpc` admits it (evalgrid.authorization).

    Every SiteLink row binds to the caller's own site: the workflow checks sessions, seats and
    projects against this id, from the certificate, never against a request field.
    """
    who: Identity = authorize(rpc)
    if who.site_id is None:
        raise PermissionDeniedError(f"{who}: {rpc} acts for a site; this is no site certificate",
                                    action=rpc, identity=who)
    return who.site_id


class SiteLinkService(site_link_pb2_grpc.SiteLinkServicer):
    metrics: CoordinatorMetrics | None = None  # set by the server (coordinator/metrics.py)

    def __init__(self, workflow: Workflow, heartbeat_interval_ms: int,
                 enrolments: Enrolments | None = None) -> None:
        self.workflow = workflow
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.enrolments = enrolments  # None: this coordinator does not enrol workstations

    @answers_errors
    async def RegisterSite(self, request: site_link_pb2.RegisterSiteRequest,
                           context: grpc.aio.ServicerContext
                           ) -> site_link_pb2.RegisterSiteReply:
        site_id = _site("SiteLink.RegisterSite")
        workstations = {ws.id for v in request.inventory.venues for r in v.rooms
                        for ws in r.workstations}
        fence = await self.workflow.register_site(site_id, workstations)
        return site_link_pb2.RegisterSiteReply(
            site_id=site_id, heartbeat_interval_ms=self.heartbeat_interval_ms, fence=fence)

    async def Connect(self, request_iterator: AsyncIterator[site_link_pb2.AgentMessage],
                      context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[site_link_pb2.CoordinatorCommand]:
        try:
            site_id = _site("SiteLink.Connect")
        except PermissionDeniedError as exc:
            await _abort(context, exc)
            raise
        links = self.workflow.links
        faults = self.workflow.faults
        if links.closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the coordinator is shutting down")
        stop = await faults.stream_opened(site_id)  # audited by liveness; ends older streams
        stop_wait = asyncio.ensure_future(stop.wait())

        async def read_up() -> None:
            async for message in request_iterator:
                faults.heard(site_id)  # every message renews the site's lease
                kind = message.WhichOneof("body")
                if kind == "status":
                    if message.status.figures and self.metrics is not None:
                        self._agent_figures(site_id, message.status.figures)
                    changed = links.status(site_id, message.status)
                    if changed:
                        self.workflow.publish_status(site_id, changed)
                elif kind == "ack":
                    await links.acknowledge(site_id, message.ack)
                elif kind == "hello":
                    links.status(site_id, site_link_pb2.StatusReport())

        reader = asyncio.create_task(read_up(), name=f"uplink-{site_id}")
        commands = links.commands_for(site_id)
        next_command: asyncio.Future[site_link_pb2.CoordinatorCommand] = asyncio.Future()
        try:
            while True:
                next_command = asyncio.ensure_future(anext(commands))
                done, _ = await asyncio.wait({next_command, reader, stop_wait},
                                             return_when=asyncio.FIRST_COMPLETED)
                if next_command in done:
                    yield next_command.result()
                else:
                    next_command.cancel()
                    break
        finally:
            for task in (next_command, reader, stop_wait):
                task.cancel()
            for task in (next_command, stop_wait):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            # A read in flight may not see the cancellation until the call ends: the stream
            # must end (a dropped or superseded one) without waiting for the agent's next word.
            await asyncio.wait({reader}, timeout=1.0)
            with contextlib.suppress(RuntimeError):
                await commands.aclose()  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):  # the audit store may be the thing that failed
                await faults.stream_closed(site_id, stop)

    def _agent_figures(self, site_id: str, figures: Mapping[str, float]) -> None:
        """An agent's figures as gauges; names are checked and capped (a label each)."""
        assert self.metrics is not None
        for name, value in list(figures.items())[:MAX_AGENT_FIGURES]:
            if FIGURE_NAME.fullmatch(name) and math.isfinite(value):
                self.metrics.agent_figure.labels(site_id, name).set(value)

    @answers_errors
    async def CheckIn(self, request: site_link_pb2.CheckInRequest,
                      context: grpc.aio.ServicerContext) -> site_link_pb2.CheckInReply:
        site_id = _site("SiteLink.CheckIn")
        _required(id_number=request.id_number, code=request.code)
        seat = await self.workflow.arrivals.check_in(site_id, request.id_number, request.code)
        project = await self.workflow.project_of_seat(seat)
        return site_link_pb2.CheckInReply(
            workstation_id=seat.workstation_id, session_id=seat.session_id,
            window=to_window(project.window.start, project.window.end))

    @answers_errors
    async def SignIn(self, request: site_link_pb2.SignInRequest,
                     context: grpc.aio.ServicerContext) -> common_pb2.SignInReply:
        site_id = _site("SiteLink.SignIn")
        try:
            seat, name = await self.workflow.arrivals.sign_in(
                site_id, request.session_id, request.workstation_id, request.id_number,
                request.code, request.request_id,
                signed_in_at=_when(request.signed_in_at, "signed_in_at")
                if request.HasField("signed_in_at") else None,
                offline_proof=request.offline_proof)
        except WorkflowError as exc:
            if request.HasField("signed_in_at"):  # taken offline, forwarded late
                await self.workflow.arrivals.forwarded_refused(
                    site_id, "sign-in", request.session_id, str(exc))
            raise
        return common_pb2.SignInReply(session_id=seat.session_id, expert_ref=seat.expert_ref,
                                      expert_name=name)

    @answers_errors
    async def GetSheetForm(self, request: site_link_pb2.SheetFormRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.SheetForm:
        site_id = _site("SiteLink.GetSheetForm")
        project, codes, seat, leader = await self.workflow.sheets.sheet_form(
            site_id, request.session_id)
        return seat_passes.sheet_form(project, codes, self.workflow.company_names(),
                                      session_id=request.session_id,
                                      returned_reason=seat.returned_reason, leader=leader)

    @answers_errors
    async def SubmitSheet(self, request: site_link_pb2.SubmitSheetRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.SubmitSheetReply:
        site_id = _site("SiteLink.SubmitSheet")
        sheet = request.sheet
        try:
            accepted, duplicate, digest = await self.workflow.sheets.submit_sheet(
                site_id, request.workstation_id, sheet.sheet_id, sheet.session_id,
                [(s.bid_code, s.criterion_id, s.score) for s in sheet.scores], sheet.signed,
                request.request_id)
        except WorkflowError as exc:
            if request.HasField("taken_at"):  # taken offline, forwarded late
                await self.workflow.arrivals.forwarded_refused(
                    site_id, "sheet", sheet.session_id, str(exc))
            raise
        return common_pb2.SubmitSheetReply(sheet_id=request.sheet.sheet_id, accepted=accepted,
                                           duplicate=duplicate, digest=digest)

    @answers_errors
    async def DeclareRecusal(self, request: site_link_pb2.RecusalRequest,
                             context: grpc.aio.ServicerContext) -> common_pb2.RecusalReply:
        site_id = _site("SiteLink.DeclareRecusal")
        outcome = await self.workflow.declare_recusal(
            site_id, request.session_id, request.workstation_id, request.reason,
            request.request_id)
        return common_pb2.RecusalReply(session_id=request.session_id, outcome=outcome)

    @answers_errors
    async def AskClarification(self, request: site_link_pb2.AskRequest,
                               context: grpc.aio.ServicerContext) -> common_pb2.Clarification:
        site_id = _site("SiteLink.AskClarification")
        record = await self.workflow.sheets.ask_clarification(
            site_id, request.session_id, request.workstation_id, request.bid_code,
            request.question, request.request_id)
        return _clarification(record)

    @answers_errors
    async def Clarifications(self, request: site_link_pb2.SheetFormRequest,
                             context: grpc.aio.ServicerContext
                             ) -> common_pb2.ClarificationList:
        site_id = _site("SiteLink.Clarifications")
        records = await self.workflow.sheets.clarifications(site_id, request.session_id)
        return common_pb2.ClarificationList(items=[_clarification(r) for r in records])

    @answers_errors
    async def HostClarifications(self, request: site_link_pb2.ResultRequest,
                                 context: grpc.aio.ServicerContext
                                 ) -> site_link_pb2.HostClarificationList:
        site_id = _site("SiteLink.HostClarifications")
        records = await self.workflow.sheets.host_clarifications(site_id, request.project_id)
        reply = site_link_pb2.HostClarificationList(project_id=request.project_id)
        for r in records:
            reply.items.add(question_id=r["question_id"], bidder_id=r["bidder_id"],
                            question=r["question"], answer=r["answer"])
        return reply

    @answers_errors
    async def AnswerClarification(self, request: site_link_pb2.AnswerRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> common_pb2.Clarification:
        site_id = _site("SiteLink.AnswerClarification")
        record = await self.workflow.sheets.answer_clarification(
            site_id, request.project_id, request.question_id, request.answer,
            request.request_id)
        return _clarification(record)

    @answers_errors
    async def Review(self, request: site_link_pb2.SheetFormRequest,
                     context: grpc.aio.ServicerContext) -> common_pb2.CommitteeReview:
        site_id = _site("SiteLink.Review")
        leader, warnings, signed, pending, codes = await self.workflow.sheets.review(
            site_id, request.session_id)
        reply = common_pb2.CommitteeReview(leader=leader, signed=signed, pending=pending)
        for w in warnings:
            reply.warnings.add(kind=w.kind, expert_ref=w.expert_ref or "",
                               bid_code=codes.get(w.bidder_id, ""),
                               criterion_id=w.criterion_id,
                               score="" if w.score is None else str(w.score),
                               mean=str(w.mean))
        return reply

    @answers_errors
    async def ReturnSheet(self, request: site_link_pb2.ReturnSheetRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.ReturnSheetReply:
        site_id = _site("SiteLink.ReturnSheet")
        outcome = await self.workflow.sheets.return_sheet(
            site_id, request.session_id, request.workstation_id, request.expert_ref,
            request.reason, request.request_id)
        return common_pb2.ReturnSheetReply(expert_ref=request.expert_ref, outcome=outcome)

    @answers_errors
    async def RegisterProject(self, request: site_link_pb2.RegisterProjectRequest,
                              context: grpc.aio.ServicerContext
                              ) -> site_link_pb2.RegisterProjectReply:
        site_id = _site("SiteLink.RegisterProject")
        project_id, duplicate = await self.workflow.register_project(
            site_id, request.project_json, request.request_id)
        return site_link_pb2.RegisterProjectReply(project_id=project_id, duplicate=duplicate)

    @answers_errors
    async def GetResult(self, request: site_link_pb2.ResultRequest,
                        context: grpc.aio.ServicerContext) -> site_link_pb2.ResultReply:
        site_id = _site("SiteLink.GetResult")
        project = await self.workflow.project(request.project_id)
        if project.host_site_id != site_id:
            raise WorkflowError("project_id", "only the host site may fetch the result",
                                code="denied")
        state, report = await self.workflow.result(project.id)
        return site_link_pb2.ResultReply(project_id=project.id, state=state, report_json=report)

    def _enrolling(self) -> Enrolments:
        if self.enrolments is None:
            raise WorkflowError("workstation_id", "this coordinator does not enrol workstations",
                                code="precondition")
        return self.enrolments

    @answers_errors
    async def IssueActivationCode(self, request: site_link_pb2.ActivationCodeRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> common_pb2.ActivationCode:
        site_id = _site("SiteLink.IssueActivationCode")
        code, expires = await self._enrolling().issue_code(
            site_id, request.workstation_id, self.workflow.desk.site_workstations(site_id))
        return common_pb2.ActivationCode(workstation_id=request.workstation_id, code=code,
                                         expires_at=to_timestamp(expires))

    @answers_errors
    async def EnrolWorkstation(self, request: site_link_pb2.EnrolWorkstationRequest,
                               context: grpc.aio.ServicerContext
                               ) -> site_link_pb2.EnrolWorkstationReply:
        site_id = _site("SiteLink.EnrolWorkstation")
        if request.workstation_id not in (self.workflow.desk.site_workstations(site_id) or ()):
            raise WorkflowError("workstation_id", f"{request.workstation_id!r} is not a "
                                f"workstation of site {site_id}", code="not_found")
        pem, serial = await self._enrolling().enrol(
            site_id, request.workstation_id, request.activation_code, bytes(request.csr_pem))
        return site_link_pb2.EnrolWorkstationReply(
            workstation_id=request.workstation_id, certificate_pem=pem, serial=f"{serial:x}")


class OperatorService(operator_pb2_grpc.OperatorServicer):
    metrics: CoordinatorMetrics | None = None  # set by the server (coordinator/metrics.py)

    def __init__(self, workflow: Workflow, *, sim_clock: bool, executor: str = "local") -> None:
        self.workflow = workflow
        self.sim_clock = sim_clock
        self.executor = executor  # the coordinator's batch setting; a PlanDay may narrow it
        self._plans: set[asyncio.Task[dict[str, Any]]] = set()

    @answers_errors
    async def Status(self, request: operator_pb2.StatusRequest,
                     context: grpc.aio.ServicerContext) -> operator_pb2.StatusReply:
        authorize("Operator.Status")
        s = await self.workflow.status()
        return operator_pb2.StatusReply(now=to_timestamp(self.workflow.now()), **s)

    @answers_errors
    async def ListProjects(self, request: operator_pb2.ListProjectsRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.ListProjectsReply:
        authorize("Operator.ListProjects")
        reply = operator_pb2.ListProjectsReply()
        for p, state in await self.workflow.list_projects(request.day):
            reply.projects.add(project_id=p.id, name=p.name, state=state,
                               host_site_id=p.host_site_id,
                               window_start=to_timestamp(p.window.start),
                               window_end=to_timestamp(p.window.end),
                               committee_size=p.committee_size,
                                  tenderer_reps=p.tenderer_reps)
        return reply

    @answers_errors
    async def Draw(self, request: operator_pb2.DrawRequest,
                   context: grpc.aio.ServicerContext) -> operator_pb2.DrawReply:
        authorize("Operator.Draw")
        s = await self.workflow.draw(request.project_id, request.request_id)
        return operator_pb2.DrawReply(project_id=s.project_id, draw_id=s.draw_id,
                                      commitment=s.commitment, input_digest=s.input_digest,
                                      seats=s.seats, venues=s.venues)

    @answers_errors
    async def ReplyToNotice(self, request: operator_pb2.NoticeReplyRequest,
                            context: grpc.aio.ServicerContext
                            ) -> operator_pb2.NoticeReplyReply:
        authorize("Operator.ReplyToNotice")
        outcome = await self.workflow.reply_to_notice(
            request.notice_id, request.accept, request.reason, request.request_id)
        return operator_pb2.NoticeReplyReply(notice_id=request.notice_id, outcome=outcome)

    @answers_errors
    async def ProjectSeats(self, request: operator_pb2.ProjectRequest,
                           context: grpc.aio.ServicerContext) -> operator_pb2.ProjectSeatsReply:
        who = authorize("Operator.ProjectSeats")
        state, seats = await self.workflow.project_seats(request.project_id, by=str(who))
        reply = operator_pb2.ProjectSeatsReply(project_id=request.project_id, state=state)
        for s in seats:
            reply.seats.add(session_id=s.session_id, expert_ref=s.expert_ref, status=s.status,
                            site_id=s.site_id, workstation_id=s.workstation_id,
                            quota_index=s.quota_index, signed_in_at=s.signed_in_at,
                            draw_id=s.draw_id)
        return reply

    @answers_errors
    async def ProjectStory(self, request: operator_pb2.ProjectStoryRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.ProjectStoryReply:
        authorize("Operator.ProjectStory")
        state, steps = await self.workflow.project_story(request.project_id,
                                                         last=request.last)
        reply = operator_pb2.ProjectStoryReply(project_id=request.project_id, state=state)
        for step in steps:
            reply.steps.add(at=to_timestamp(datetime.fromisoformat(step.at)),
                            stimulus_id=step.stimulus_id, event=step.event,
                            before=step.before, after=step.after, seat=step.seat,
                            instructions=list(step.instructions))
        return reply

    @answers_errors
    async def ReplaceMember(self, request: operator_pb2.ReplaceMemberRequest,
                            context: grpc.aio.ServicerContext
                            ) -> operator_pb2.ReplaceMemberReply:
        who = authorize("Operator.ReplaceMember")
        outcome = await self.workflow.replace_member(
            request.project_id, request.session_id, request.reason, request.note,
            request.request_id, by=str(who))
        return operator_pb2.ReplaceMemberReply(project_id=request.project_id, outcome=outcome)

    @answers_errors
    async def StartEvaluation(self, request: operator_pb2.ProjectRequest,
                              context: grpc.aio.ServicerContext) -> operator_pb2.ProjectReply:
        who = authorize("Operator.StartEvaluation")
        state = await self.workflow.evaluation.start(request.project_id, by=str(who),
                                                     stimulus_id=request.request_id)
        return operator_pb2.ProjectReply(project_id=request.project_id, state=state)

    @answers_errors
    async def CloseEvaluation(self, request: operator_pb2.ProjectRequest,
                              context: grpc.aio.ServicerContext) -> operator_pb2.ProjectReply:
        who = authorize("Operator.CloseEvaluation")
        state, path = await self.workflow.evaluation.close(request.project_id, by=str(who),
                                                           stimulus_id=request.request_id)
        return operator_pb2.ProjectReply(project_id=request.project_id, state=state,
                                         detail=path)

    async def Watch(self, request: operator_pb2.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[operator_pb2.Event]:
        try:
            authorize("Operator.Watch")
        except PermissionDeniedError as exc:
            await _abort(context, exc)
            raise
        try:
            after = _event_id(request.after_id)
        except WorkflowError as exc:
            await _abort(context, exc)
            raise
        async for entry in self.workflow.watch(after, tail=0 if after else request.tail):
            yield operator_pb2.Event(id=str(entry.seq), kind=entry.kind, subject=entry.subject,
                                     at=to_timestamp(_parse(entry.at)),
                                     detail_json=_json(entry.detail))

    async def WatchGrid(self, request: operator_pb2.WatchGridRequest,
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[operator_pb2.GridSnapshot]:
        try:
            who = authorize("Operator.WatchGrid")
        except PermissionDeniedError as exc:
            await _abort(context, exc)
            raise
        last = b""
        # A 0.1 s settle: under a steady stream of changes (150 sites x 30 workstations at
        # 5,000 changes/s) a snapshot every ~0.15 s keeps p99 change-to-console under 0.5 s
        # (bench/status_load.py); 0.2 s gave p99 ~0.5 s on 2 cores.
        async for _ in self.workflow.grid_changes(settle_s=0.1):
            snapshot = await self._grid_snapshot(by=str(who))
            wire = snapshot.SerializeToString(deterministic=True)
            if wire != last:  # a quiet refresh on a stopped (simulated) clock sends nothing
                last = wire
                yield snapshot

    async def _grid_snapshot(self, *, by: str) -> operator_pb2.GridSnapshot:
        """What an operator may see of the whole grid: states and opaque ids, no names."""
        workflow = self.workflow
        status = operator_pb2.StatusReply(now=to_timestamp(workflow.now()),
                                          **await workflow.status())
        snapshot = operator_pb2.GridSnapshot(status=status,
                                             audit_head=(await workflow.audit.head()).seq)
        for site in sorted(workflow.desk.sites.values(), key=lambda s: s.id):
            live = workflow.links.live.get(site.id)
            counts: dict[str, int] = {}
            link = workflow.links.liveness.view(site.id)
            item = snapshot.sites.add(
                site_id=site.id, name=site.name, city=site.city,
                online=link.link == "connected", link=link.link.value,
                link_since=to_timestamp(link.since),
                workstations=sum(len(v.workstations) for v in site.venues))
            for ws_id, state in sorted(live.workstations.items() if live else []):
                counts[state] = counts.get(state, 0) + 1
                if state in OUT_OF_SERVICE:
                    item.flagged.add(workstation_id=ws_id, state=state,
                                     detail=live.details.get(ws_id, "") if live else "")
            item.states.update(counts)
        awaiting: set[date] = set()
        for p, state in await workflow.list_projects(""):
            if state == "registered":
                awaiting.add(local_day(p.window.start, workflow.rules.local_utc_offset_minutes))
            snapshot.projects.add(project_id=p.id, name=p.name, state=state,
                                  host_site_id=p.host_site_id,
                                  window_start=to_timestamp(p.window.start),
                                  window_end=to_timestamp(p.window.end),
                                  committee_size=p.committee_size,
                                  tenderer_reps=p.tenderer_reps)
        for project_id, state, seats in await workflow.open_seats(by=by):
            open_project = snapshot.open_projects.add(project_id=project_id, state=state)
            for s in seats:
                open_project.seats.add(
                    session_id=s.session_id, expert_ref=s.expert_ref, status=s.status,
                    site_id=s.site_id, workstation_id=s.workstation_id,
                    quota_index=s.quota_index, signed_in_at=s.signed_in_at, draw_id=s.draw_id)
        faults = workflow.faults
        for incident in faults.recent(await faults.incidents(include_closed=True)):
            snapshot.incidents.append(_incident(incident, workflow.now()))
        for share in await workflow.seed_shares.waiting(awaiting):
            snapshot.seed_waits.append(_share_wire(share))
        return snapshot

    @answers_errors
    async def ListIncidents(self, request: operator_pb2.ListIncidentsRequest,
                            context: grpc.aio.ServicerContext
                            ) -> operator_pb2.ListIncidentsReply:
        authorize("Operator.ListIncidents")
        found = await self.workflow.faults.incidents(include_closed=request.include_closed)
        now = self.workflow.now()
        return operator_pb2.ListIncidentsReply(incidents=[_incident(i, now) for i in found])

    @answers_errors
    async def DecideIncident(self, request: operator_pb2.DecideIncidentRequest,
                             context: grpc.aio.ServicerContext
                             ) -> operator_pb2.DecideIncidentReply:
        who = authorize("Operator.DecideIncident")
        window = None
        if request.HasField("new_window_start") or request.HasField("new_window_end"):
            window = (_when(request.new_window_start, "new_window_start"),
                      _when(request.new_window_end, "new_window_end"))
        incident, outcome = await self.workflow.faults.decide(
            request.incident_id, request.decision, request.note[:500], window,
            request.request_id, by=str(who))
        return operator_pb2.DecideIncidentReply(
            incident=_incident(incident, self.workflow.now()), outcome=outcome)

    @answers_errors
    async def AdvanceClock(self, request: operator_pb2.AdvanceClockRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.AdvanceClockReply:
        authorize("Operator.AdvanceClock")
        if not self.sim_clock:
            raise WorkflowError("to", "this coordinator runs on the system clock",
                                code="precondition")
        to = _when(request.to, "to")
        if to - self.workflow.now() > MAX_CLOCK_STEP:
            raise WorkflowError("to", f"more than {MAX_CLOCK_STEP.days} days ahead of the "
                                "simulated clock")
        now = self.workflow.advance_clock(to)
        await self.workflow.save_clock()
        return operator_pb2.AdvanceClockReply(now=to_timestamp(now))

    @answers_errors
    async def ServiceStats(self, request: operator_pb2.ServiceStatsRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.ServiceStatsReply:
        """Per site and city, what the grid served over local days [from_day, to_day]."""
        from coordinator.centre_records import grid_service_stats
        from coordinator.domain.service_stats import by_city

        authorize("Operator.ServiceStats")
        start = _local_date(request.from_day, "from_day")
        end = _local_date(request.to_day, "to_day")
        if end < start:
            raise WorkflowError("to_day", f"{end} is before from_day {start}")
        if (end - start).days >= MAX_SERVICE_DAYS:
            raise WorkflowError("to_day", f"a period of at most {MAX_SERVICE_DAYS} days")
        figures = await grid_service_stats(self.workflow, start, end)
        reply = operator_pb2.ServiceStatsReply(from_day=start.isoformat(),
                                               to_day=end.isoformat(),
                                               now=to_timestamp(self.workflow.now()))
        for f in figures:
            site = reply.sites.add(
                site_id=f.site_id, city=f.city, workstations=f.workstations,
                guest_projects=f.guest_projects, seat_services=f.seat_services,
                host_projects=f.host_projects, outages=f.outages,
                outage_minutes=f.outage_minutes, incidents=f.incidents,
                incident_minutes=f.incident_minutes, seats_moved=f.seats_moved)
            for (day, half), n in f.half_days.items():
                site.half_days.add(day=day, half=half, workstations=n)
        for c in by_city(figures):
            reply.cities.add(city=c.city, sites=c.sites, workstations=c.workstations,
                             guest_projects=c.guest_projects, seat_services=c.seat_services,
                             host_projects=c.host_projects, outages=c.outages,
                             outage_minutes=c.outage_minutes, incidents=c.incidents,
                             incident_minutes=c.incident_minutes)
        return reply

    async def PlanDay(self, request: operator_pb2.PlanDayRequest,
                      context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[operator_pb2.PlanProgress]:
        """Progress of the day plan as it goes, then the summary. The plan runs on if the
        caller goes away: a retry with the same request id gets the summary."""
        from coordinator.day_plan import keep_open, resolve_executor

        try:
            authorize("Operator.PlanDay")
            try:
                day = date.fromisoformat(request.day)
            except ValueError:
                raise WorkflowError("day", f"a date YYYY-MM-DD, not {request.day[:40]!r}") \
                    from None
            try:
                executor = resolve_executor(self.executor, request.executor)
            except ValueError as exc:
                raise WorkflowError("executor", str(exc).removeprefix("executor: ")) from None
        except (WorkflowError, PermissionDeniedError) as exc:
            await _abort(context, exc)
            raise
        queue: asyncio.Queue[operator_pb2.PlanProgress | None] = asyncio.Queue()

        def progress(phase: str, done: int, total: int, message: str) -> None:
            queue.put_nowait(operator_pb2.PlanProgress(phase=phase, done=done, total=total,
                                                       message=message))

        async def plan() -> dict[str, Any]:
            try:
                return await self.workflow.plan_day(day, request.request_id, executor,
                                                    progress)
            finally:
                if not keep_open(executor):
                    await asyncio.to_thread(executor.close)
                queue.put_nowait(None)

        task = asyncio.create_task(plan(), name=f"plan-{day}")
        self._plans.add(task)
        task.add_done_callback(self._plans.discard)
        while (item := await queue.get()) is not None:
            yield item
        try:
            summary = await task
        except WorkflowError as exc:
            await _abort(context, exc)
            raise
        yield operator_pb2.PlanProgress(
            phase="done", done=summary["projects"], total=summary["projects"],
            message=f"{summary['drawn']} of {summary['projects']} project(s) drawn",
            summary=operator_pb2.PlanSummary(**summary))

    @answers_errors
    async def CommitSeedShare(self, request: operator_pb2.SeedShareCommit,
                              context: grpc.aio.ServicerContext
                              ) -> operator_pb2.SeedShareState:
        return await self._seed_share("Commit", request.day, request.commitment,
                                      request.public_source)

    @answers_errors
    async def RevealSeedShare(self, request: operator_pb2.SeedShareReveal,
                              context: grpc.aio.ServicerContext
                              ) -> operator_pb2.SeedShareState:
        return await self._seed_share("Reveal", request.day, request.secret,
                                      request.public_value)

    async def _seed_share(self, step: str, day: str, value: str, public: str
                          ) -> operator_pb2.SeedShareState:
        """The supervisor's commitment or reveal of its share (coordinator/seed_shares.py)."""
        who = authorize(f"Operator.{step}SeedShare")
        shares = self.workflow.seed_shares
        act = shares.commit if step == "Commit" else shares.reveal
        return _share_wire(await act(_day(day), value.strip().lower(), public.strip(),
                                     by=str(who)))

    @answers_errors
    async def UnlockSignIn(self, request: operator_pb2.UnlockSignInRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.UnlockSignInReply:
        who = authorize("Operator.UnlockSignIn")
        if not request.reason.strip():
            raise WorkflowError("reason", "say why the lock is lifted (it is audited)")
        if request.site_id not in self.workflow.desk.sites:
            raise WorkflowError("site_id", f"no site {request.site_id!r}", code="not_found")
        lifted = await self.workflow.sign_ins.unlock(
            unlock_scopes(request.site_id, request.workstation_id, request.session_id),
            site_id=request.site_id, reason=request.reason.strip()[:500], by=str(who))
        return operator_pb2.UnlockSignInReply(unlocked=lifted)


    @answers_errors
    async def ListNotices(self, request: operator_pb2.ListNoticesRequest,
                          context: grpc.aio.ServicerContext) -> operator_pb2.ListNoticesReply:
        who = authorize("Operator.ListNotices")
        project, seats = await self.workflow.list_notices(request.project_id, by=str(who))
        reply = operator_pb2.ListNoticesReply(project_id=project.id)
        for seat, venue in seats:
            reply.notices.add(notice_id=seat.notice_id, expert_ref=seat.expert_ref,
                              session_id=seat.session_id, status=seat.status, venue=venue,
                              start=to_timestamp(project.window.start),
                              end=to_timestamp(project.window.end))
        return reply

    @answers_errors
    async def ResendNotice(self, request: operator_pb2.ResendNoticeRequest,
                           context: grpc.aio.ServicerContext
                           ) -> operator_pb2.ResendNoticeReply:
        who = authorize("Operator.ResendNotice")
        outcome = await self.workflow.resend_notice(request.notice_id, request.reason,
                                                    request.request_id, by=str(who))
        return operator_pb2.ResendNoticeReply(notice_id=request.notice_id, outcome=outcome)
def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WorkflowError("day", f"a date YYYY-MM-DD, not {text[:40]!r}") from None


def _share_wire(state: ShareState) -> operator_pb2.SeedShareState:
    reply = operator_pb2.SeedShareState(
        day=state.day, state=state.state, coordinator_commitment=state.coordinator_commitment,
        supervisor_commitment=state.supervisor_commitment, public_source=state.public_source,
        fixed=state.fixed)
    if state.fallback_at is not None:
        reply.fallback_at.CopyFrom(to_timestamp(state.fallback_at))
    return reply


def _incident(incident: Incident, now: datetime) -> operator_pb2.Incident:
    where = f"workstation {incident.workstation_id}" if incident.workstation_id else \
        "site" if incident.site_id else "unsigned sheets"
    return operator_pb2.Incident(
        incident_id=incident.incident_id, project_id=incident.project_id,
        site_id=incident.site_id, phase=incident.phase.value, state=incident.state.value,
        cause=incident.cause, failed_at=to_timestamp(incident.failed_at),
        deadline=to_timestamp(incident.deadline),
        allowed=[d.value for d in allowed(incident, now)],
        detail=f"{where}; repair within {incident.limit}", sites=list(incident.sites))


def _clarification(record: dict[str, str]) -> common_pb2.Clarification:
    """The member's view of a question: the bid's code, never the bidder behind it."""
    item = common_pb2.Clarification(question_id=record["question_id"],
                                    bid_code=record["bid_code"], question=record["question"],
                                    answer=record["answer"],
                                    asked_at=to_timestamp(_parse(record["asked_at"])))
    if record["answered_at"]:
        item.answered_at.CopyFrom(to_timestamp(_parse(record["answered_at"])))
    return item


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at)


def _json(detail: object) -> str:
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str)

