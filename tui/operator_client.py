"""What the operator console needs from the coordinator, as plain values, and over gRPC.

`OperatorClient` is the seam where Pilot tests put a fake. The operator sees opaque session
ids, seat states and sites, never an expert's identity.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import grpc
from evalgrid_wire.v1 import operator_pb2, operator_pb2_grpc

from evalgrid.i18n import _, first_of, fit
from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import from_timestamp
from tui.client_errors import ClientError, client_error

if TYPE_CHECKING:
    from tui.operator_service import ServiceView


@dataclass(frozen=True)
class Flagged:
    workstation_id: str
    state: str  # fault | offline
    detail: str = ""


@dataclass(frozen=True)
class SiteRow:
    site_id: str
    name: str
    city: str
    online: bool
    workstations: int
    states: Mapping[str, int] = field(default_factory=dict)
    flagged: tuple[Flagged, ...] = ()
    link: str = ""  # connected | disconnected | lost (the coordinator's lease verdict)


@dataclass(frozen=True)
class ProjectRow:
    project_id: str
    name: str
    state: str  # registered | drawn | evaluating | reported
    host_site_id: str
    start: datetime
    end: datetime
    committee_size: int
    tenderer_reps: int = 0  # in the committee size, but never drawn: no seat on the grid

    @property
    def drawn_seats(self) -> int:
        """The seats the grid fills by drawing: what "short" is counted against."""
        return max(self.committee_size - self.tenderer_reps, 0)


@dataclass(frozen=True)
class SeatRow:
    project_id: str
    session_id: str
    expert_ref: str
    status: str  # notified | accepted | declined | left | no_show | recused | signed_in | signed
    site_id: str
    workstation_id: str
    quota_index: int = 0
    signed_in_at: datetime | None = None
    draw_id: str = ""


@dataclass(frozen=True)
class IncidentRow:
    """A site failure at or during a window, as the fault rules see it."""

    incident_id: str
    project_id: str
    site_id: str
    phase: str  # before_evaluation | during_evaluation
    state: str  # awaiting_repair | decision_due | waiting | resumed | postponed | reevaluated
    cause: str
    failed_at: datetime
    deadline: datetime
    allowed: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()  # the sites concerned (an overdue evaluation's: several)


@dataclass(frozen=True)
class SeedWaitRow:
    """A day whose seed round waits on the supervisor's share: its draws are refused until the
    share is revealed or the fallback comes."""

    day: str  # YYYY-MM-DD
    state: str  # awaiting (no supervisor commitment yet) | committed (not revealed yet)
    fallback_at: datetime | None


@dataclass(frozen=True)
class GridView:
    now: datetime
    sites: tuple[SiteRow, ...]
    projects: tuple[ProjectRow, ...]
    seats: tuple[SeatRow, ...] = ()  # of projects drawn or under evaluation
    experts: int = 0
    audit_head: int = 0
    incidents: tuple[IncidentRow, ...] = ()
    seed_waits: tuple[SeedWaitRow, ...] = ()


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    kind: str
    subject: str
    at: datetime
    detail: str = ""  # compact JSON


@dataclass(frozen=True)
class StoryLine:
    """One transition of a project's story (Operator.ProjectStory)."""

    at: datetime
    seat: str  # opaque session id; "" for the project itself
    event: str
    before: str
    after: str
    stimulus_id: str = ""


class OperatorClient(Protocol):
    """The coordinator's Operator service, as the console uses it."""

    def watch_grid(self) -> AsyncIterator[GridView]:
        """A view now, then after every change; raises `ClientError` when the link drops."""
        ...

    def watch_audit(self, *, after: int = 0, tail: int = 0) -> AsyncIterator[AuditEvent]:
        """Events after seq `after` (or the last `tail`), then new ones as they come."""
        ...

    async def replace_member(self, project_id: str, session_id: str, reason: str,
                             note: str) -> str:
        """A supplementary draw for a seat (`no_show` or `leave`); returns the outcome."""
        ...

    async def project_story(self, project_id: str, last: int) -> list[StoryLine]:
        """The newest `last` transitions of a project, oldest first."""
        ...

    async def step(self, name: str, fields: Mapping[str, str]) -> str:
        """One of the operator's other steps (tui/operator_steps.py `STEPS`): the answer as
        text; raises `ClientError` with the coordinator's reason when refused."""
        ...

    async def service_stats(self, start: date, end: date) -> ServiceView:
        """Per site and city, what the grid served over the local days [start, end]."""
        ...

    async def close(self) -> None: ...


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def grid_from_wire(snapshot: operator_pb2.GridSnapshot) -> GridView:
    sites = tuple(SiteRow(
        site_id=s.site_id, name=s.name, city=s.city, online=s.online,
        workstations=s.workstations, states=dict(s.states),
        flagged=tuple(Flagged(f.workstation_id, f.state, f.detail) for f in s.flagged),
        link=s.link)
        for s in snapshot.sites)
    projects = tuple(ProjectRow(
        project_id=p.project_id, name=p.name, state=p.state, host_site_id=p.host_site_id,
        start=from_timestamp(p.window_start), end=from_timestamp(p.window_end),
        committee_size=p.committee_size, tenderer_reps=p.tenderer_reps)
        for p in snapshot.projects)
    seats = tuple(SeatRow(
        project_id=op.project_id, session_id=s.session_id, expert_ref=s.expert_ref,
        status=s.status, site_id=s.site_id, workstation_id=s.workstation_id,
        quota_index=s.quota_index, signed_in_at=_when(s.signed_in_at), draw_id=s.draw_id)
        for op in snapshot.open_projects for s in op.seats)
    incidents = tuple(IncidentRow(
        incident_id=i.incident_id, project_id=i.project_id, site_id=i.site_id, phase=i.phase,
        state=i.state, cause=i.cause, failed_at=from_timestamp(i.failed_at),
        deadline=from_timestamp(i.deadline), allowed=tuple(i.allowed), sites=tuple(i.sites))
        for i in snapshot.incidents)
    seed_waits = tuple(SeedWaitRow(
        day=w.day, state=w.state,
        fallback_at=from_timestamp(w.fallback_at) if w.HasField("fallback_at") else None)
        for w in snapshot.seed_waits)
    return GridView(now=from_timestamp(snapshot.status.now), sites=sites, projects=projects,
                    seats=seats, experts=snapshot.status.experts,
                    audit_head=snapshot.audit_head, incidents=incidents,
                    seed_waits=seed_waits)


def event_from_wire(event: operator_pb2.Event) -> AuditEvent:
    detail = event.detail_json
    with contextlib.suppress(ValueError):  # compact, one line: one event per line
        detail = json.dumps(json.loads(detail), separators=(",", ":"), ensure_ascii=False)
    return AuditEvent(seq=int(event.id) if event.id.isdigit() else 0, kind=event.kind,
                      subject=event.subject, at=from_timestamp(event.at), detail=detail)


class GrpcOperatorClient:
    """The coordinator's Operator service over mutual TLS, with an operator's certificate."""

    def __init__(self, *, pki_dir: Path, coordinator: str, name: str,
                 role: str = "operator") -> None:
        self.name = name
        self.coordinator = coordinator
        self._channel = secure_channel(coordinator, channel_credentials(pki_dir, role, name),
                                       retry=True)
        self._stub = operator_pb2_grpc.OperatorStub(self._channel)

    async def watch_grid(self) -> AsyncIterator[GridView]:
        call = self._stub.WatchGrid(operator_pb2.WatchGridRequest())
        try:
            async for snapshot in call:
                yield grid_from_wire(snapshot)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        finally:
            call.cancel()
        raise ClientError("the coordinator ended the grid stream", code="UNAVAILABLE")

    async def watch_audit(self, *, after: int = 0, tail: int = 0) -> AsyncIterator[AuditEvent]:
        call = self._stub.Watch(operator_pb2.WatchRequest(
            after_id=str(after) if after else "", tail=tail))
        try:
            async for event in call:
                yield event_from_wire(event)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        finally:
            call.cancel()
        raise ClientError("the coordinator ended the audit stream", code="UNAVAILABLE")

    async def replace_member(self, project_id: str, session_id: str, reason: str,
                             note: str) -> str:
        try:
            reply = await self._stub.ReplaceMember(operator_pb2.ReplaceMemberRequest(
                request_id=request_id(), project_id=project_id, session_id=session_id,
                reason=reason, note=note), timeout=60)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        return str(reply.outcome)

    async def project_story(self, project_id: str, last: int) -> list[StoryLine]:
        try:
            reply = await self._stub.ProjectStory(operator_pb2.ProjectStoryRequest(
                project_id=project_id, last=last), timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        return [StoryLine(at=from_timestamp(s.at), seat=s.seat, event=s.event,
                          before=s.before, after=s.after, stimulus_id=s.stimulus_id)
                for s in reply.steps]

    async def step(self, name: str, fields: Mapping[str, str]) -> str:
        try:
            return await _run_step(self._stub, name, fields)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None

    async def service_stats(self, start: date, end: date) -> ServiceView:
        from tui.operator_service import service_from_wire

        try:
            reply = await self._stub.ServiceStats(operator_pb2.ServiceStatsRequest(
                from_day=start.isoformat(), to_day=end.isoformat()), timeout=60)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        return service_from_wire(reply)

    async def close(self) -> None:
        await self._channel.close()


async def _run_step(stub: operator_pb2_grpc.OperatorStub, name: str,
                    f: Mapping[str, str]) -> str:
    """The RPC behind each console step; lists come back as lines of text."""
    rid = request_id()
    if name == "close":
        closed = await stub.CloseEvaluation(operator_pb2.ProjectRequest(
            request_id=rid, project_id=f["project"]), timeout=120)
        return _("{project}: {state}; report {report}").format(
            project=f["project"], state=_(closed.state), report=closed.detail)
    if name == "unlock":
        lifted = await stub.UnlockSignIn(operator_pb2.UnlockSignInRequest(
            request_id=rid, site_id=f["site"], workstation_id=f.get("workstation", ""),
            session_id=f.get("session", ""), reason=f["reason"]), timeout=30)
        return _("lifted: {what}").format(what=", ".join(lifted.unlocked)) \
            if lifted.unlocked else _("nothing was locked there")
    if name == "notices":
        listed = await stub.ListNotices(operator_pb2.ListNoticesRequest(
            project_id=f["project"]), timeout=30)
        return "\n".join(fit(f"{n.notice_id}  {n.expert_ref}  {_(n.status)}  {n.venue}", 72)
                         for n in listed.notices) or _("no notices")
    if name in ("resend", "decline"):
        if name == "resend":
            sent = await stub.ResendNotice(operator_pb2.ResendNoticeRequest(
                request_id=rid, notice_id=f["notice"], reason=f["reason"]), timeout=30)
            return _("notice {notice}: {outcome}").format(notice=f["notice"],
                                                          outcome=_(sent.outcome))
        answered = await stub.ReplyToNotice(operator_pb2.NoticeReplyRequest(
            request_id=rid, notice_id=f["notice"], accept=False, reason=f["reason"]),
            timeout=60)
        return _("notice {notice}: {outcome}").format(notice=f["notice"],
                                                      outcome=_(answered.outcome))
    if name == "incidents":
        found = await stub.ListIncidents(operator_pb2.ListIncidentsRequest(
            include_closed=True), timeout=30)
        return "\n".join(fit(f"{i.incident_id}  {i.project_id}  "
                             f"{first_of(i.sites) or i.site_id}  "
                             f"{_(i.state.replace('_', ' '))}  "
                             + _("may: {allowed}").format(allowed=",".join(i.allowed) or "-"),
                             72)
                         for i in found.incidents) or _("no incidents")
    if name == "decide":
        decided = await stub.DecideIncident(operator_pb2.DecideIncidentRequest(
            request_id=rid, incident_id=f["incident"], decision=f["decision"],
            note=f["note"]), timeout=120)
        return _("incident {incident}: {outcome} (now {state})").format(
            incident=f["incident"], outcome=_(decided.outcome),
            state=_(decided.incident.state.replace("_", " ")))

    raise ClientError(f"step: no step {name!r}", code="INVALID_ARGUMENT")
