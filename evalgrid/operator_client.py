"""The operator's command-line steps of a day, as clients of the coordinator's Operator service:
start and close an evaluation, record an expert's answer to a notice, list and resend notices,
lift a sign-in lockout, list and decide incidents, list projects.

Each step is one RPC under the operator's certificate; the coordinator authorizes and audits it
(evalgrid.authorization). A refusal comes back as `OperatorCallError` carrying the status and
the coordinator's words (the field and the reason); times are shown in the province's time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TypeVar

import grpc
from evalgrid_wire.v1 import operator_pb2, operator_pb2_grpc
from rich import box
from rich.console import Console
from rich.table import Table

from evalgrid.i18n import _, first_of
from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S, from_timestamp

T = TypeVar("T")

#: What a decision on an incident may be (DOMAIN "Faults"); the coordinator checks when.
DECISIONS = ("wait", "postpone", "reevaluate")
#: Closing aggregates every sheet and writes the signed report: more than a plain call.
CLOSE_DEADLINE_S = 120.0


class OperatorCallError(Exception):
    """The coordinator refused the step or could not be reached (the message says which)."""


@dataclass(frozen=True)
class OperatorLink:
    """Who calls (an operator or auditor certificate in `pki_dir`) and where."""

    pki_dir: Path
    name: str
    coordinator: str
    tz: tzinfo
    role: str = "operator"

    async def call(self, rpc: str,
                   step: Callable[[operator_pb2_grpc.OperatorStub], Awaitable[T]]) -> T:
        channel = secure_channel(self.coordinator,
                                 channel_credentials(self.pki_dir, self.role, self.name))
        try:
            return await step(operator_pb2_grpc.OperatorStub(channel))
        except grpc.aio.AioRpcError as exc:
            raise OperatorCallError(f"{rpc}: {exc.code().name}: {exc.details()}") from None
        finally:
            await channel.close()

    def offset(self) -> str:
        """`+08:00`: said once in a table's title, so its columns stay short at 80 wide."""
        return datetime.now(self.tz).isoformat()[-6:]

    def short(self, ts: datetime) -> str:
        """`03-02 09:00` in the province's time (the title says the offset)."""
        return f"{ts.astimezone(self.tz):%m-%d %H:%M}"

    def when(self, ts: datetime) -> str:
        """`2026-03-02 09:00 +08:00`: the province's time, with its offset said."""
        local = ts.astimezone(self.tz)
        return f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}"


def _rid(given: str | None) -> str:
    return given or request_id()


async def start_evaluation(link: OperatorLink, project_id: str, rid: str | None = None) -> str:
    reply = await link.call("StartEvaluation", lambda s: s.StartEvaluation(
        operator_pb2.ProjectRequest(request_id=_rid(rid), project_id=project_id),
        timeout=UNARY_DEADLINE_S))
    return f"{project_id}: {_(reply.state)}"


async def close_evaluation(link: OperatorLink, project_id: str, rid: str | None = None) -> str:
    """Aggregate, rank, write the signed report and reveal the seeds (Operator.CloseEvaluation)."""
    reply = await link.call("CloseEvaluation", lambda s: s.CloseEvaluation(
        operator_pb2.ProjectRequest(request_id=_rid(rid), project_id=project_id),
        timeout=CLOSE_DEADLINE_S))
    return _("{project}: {state}; signed report {report}").format(
        project=project_id, state=_(reply.state), report=reply.detail)


async def reply_to_notice(link: OperatorLink, notice_id: str, *, accept: bool, reason: str,
                          rid: str | None = None) -> str:
    reply = await link.call("ReplyToNotice", lambda s: s.ReplyToNotice(
        operator_pb2.NoticeReplyRequest(request_id=_rid(rid), notice_id=notice_id,
                                        accept=accept, reason=reason),
        timeout=UNARY_DEADLINE_S))
    return _("notice {notice}: {outcome}").format(notice=notice_id, outcome=_(reply.outcome))


async def resend_notice(link: OperatorLink, notice_id: str, reason: str,
                        rid: str | None = None) -> str:
    reply = await link.call("ResendNotice", lambda s: s.ResendNotice(
        operator_pb2.ResendNoticeRequest(request_id=_rid(rid), notice_id=notice_id,
                                         reason=reason),
        timeout=UNARY_DEADLINE_S))
    return _("notice {notice}: {outcome}").format(notice=notice_id, outcome=_(reply.outcome))


async def list_notices(link: OperatorLink, project_id: str) -> Table:
    reply = await link.call("ListNotices", lambda s: s.ListNotices(
        operator_pb2.ListNoticesRequest(project_id=project_id), timeout=UNARY_DEADLINE_S))
    table = Table(title=_("notices of {project} (no codes, no names; times {offset})").format(
        project=reply.project_id, offset=link.offset()))
    for column in (_("notice"), _("member"), _("status"), _("venue"), _("time")):
        table.add_column(column)
    for n in reply.notices:
        table.add_row(n.notice_id, n.expert_ref, _(n.status), n.venue,
                      f"{link.short(from_timestamp(n.start))}-"
                      f"{from_timestamp(n.end).astimezone(link.tz):%H:%M}")
    return table


async def unlock_sign_in(link: OperatorLink, *, site_id: str, workstation_id: str,
                         session_id: str, reason: str, rid: str | None = None) -> str:
    reply = await link.call("UnlockSignIn", lambda s: s.UnlockSignIn(
        operator_pb2.UnlockSignInRequest(request_id=_rid(rid), site_id=site_id,
                                         workstation_id=workstation_id,
                                         session_id=session_id, reason=reason),
        timeout=UNARY_DEADLINE_S))
    if not reply.unlocked:
        return _("nothing was locked there")
    return _("lifted: {what}").format(what=", ".join(reply.unlocked))


def incident_table(link: OperatorLink, incidents: list[operator_pb2.Incident]) -> Table:
    # The ids are typed back (`incident decide ID`): never cut; the rest wraps at 80 wide.
    table = Table(title=_("incidents ({n}; times {offset})").format(n=len(incidents),
                                                                   offset=link.offset()),
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in (_("incident"), _("project"), _("site")):
        table.add_column(column, no_wrap=True)
    for column, least in ((_("state"), 8), (_("deadline"), 8), (_("may decide"), 10)):
        table.add_column(column, min_width=least)  # "awaiting", "deadline", "reevaluate"
    for i in incidents:
        table.add_row(i.incident_id, i.project_id, first_of(i.sites) or i.site_id,
                      _(i.state.replace("_", " ")),
                      link.short(from_timestamp(i.deadline)), ", ".join(i.allowed) or "-")
    return table


async def list_incidents(link: OperatorLink, include_closed: bool) -> Table:
    reply = await link.call("ListIncidents", lambda s: s.ListIncidents(
        operator_pb2.ListIncidentsRequest(include_closed=include_closed),
        timeout=UNARY_DEADLINE_S))
    return incident_table(link, list(reply.incidents))


async def decide_incident(link: OperatorLink, incident_id: str, decision: str, note: str,
                          window: tuple[datetime, datetime] | None,
                          rid: str | None = None) -> str:
    from evalgrid.wire import to_timestamp

    request = operator_pb2.DecideIncidentRequest(request_id=_rid(rid), incident_id=incident_id,
                                                 decision=decision, note=note)
    if window is not None:
        request.new_window_start.CopyFrom(to_timestamp(window[0]))
        request.new_window_end.CopyFrom(to_timestamp(window[1]))
    reply = await link.call("DecideIncident", lambda s: s.DecideIncident(
        request, timeout=UNARY_DEADLINE_S))
    return _("incident {incident}: {outcome} (now {state})").format(
        incident=incident_id, outcome=_(reply.outcome),
        state=_(reply.incident.state.replace("_", " ")))


async def advance_clock(link: OperatorLink, to: datetime) -> str:
    from evalgrid.wire import to_timestamp

    reply = await link.call("AdvanceClock", lambda s: s.AdvanceClock(
        operator_pb2.AdvanceClockRequest(to=to_timestamp(to)), timeout=UNARY_DEADLINE_S))
    return _("the simulated clock reads {time}").format(time=link.when(from_timestamp(reply.now)))


async def list_projects(link: OperatorLink, day: str) -> Table:
    reply = await link.call("ListProjects", lambda s: s.ListProjects(
        operator_pb2.ListProjectsRequest(day=day), timeout=UNARY_DEADLINE_S))
    title = _("projects of {day} ({n}; times {offset})") if day else _(
        "projects ({n}; times {offset})")
    table = Table(title=title.format(day=day, n=len(reply.projects), offset=link.offset()))
    for column in (_("project"), _("state"), _("host"), _("window"), _("members")):
        table.add_column(column)
    for p in reply.projects:
        table.add_row(p.project_id, _(p.state), p.host_site_id,

                      f"{link.short(from_timestamp(p.window_start))}-"
                      f"{from_timestamp(p.window_end).astimezone(link.tz):%H:%M}",
                      str(p.committee_size))
    return table


async def project_story(link: OperatorLink, project_id: str, last: int = 0) -> str:
    """One transition a line (local time, the offset in the heading), and under it what
    caused it and what the coordinator carried out: 80 columns, the seat in full."""
    reply = await link.call("ProjectStory", lambda s: s.ProjectStory(
        operator_pb2.ProjectStoryRequest(project_id=project_id, last=last),
        timeout=UNARY_DEADLINE_S))
    lines = [f"story of {reply.project_id}, now {reply.state}: {len(reply.steps)} "
             f"transition(s), times {link.offset()}"]
    for step in reply.steps:
        lines.append(f"{link.short(from_timestamp(step.at))}  {step.seat or 'project':<20}  "
                     f"{step.event}: {step.before} -> {step.after}"[:80])
        cause, done = f"{'':13}by {step.stimulus_id[:64]}", ", ".join(step.instructions)
        lines += [f"{cause}; {done}"] if len(cause) + len(done) <= 78 else \
            [cause, f"{'':13}did {done}"[:80]]
    return "\n".join(lines)


def show(console: Console, what: Table | str) -> None:
    console.print(what)
