"""The site agent process: serves its booths and desk, and keeps one stream to the coordinator.

A thin shell around `SiteBooths`: servicers translate messages, the link loop dials out,
applies commands and reports status. Nothing here decides a rule the coordinator owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from evalgrid_wire.v1 import (
    booth_pb2,
    booth_pb2_grpc,
    common_pb2,
    site_link_pb2,
    site_link_pb2_grpc,
)

from evalgrid.authorization import AUTHORIZATION, authorize
from evalgrid.ids import request_id
from evalgrid.limits import clip
from evalgrid.pki.identity import Identity
from evalgrid.revocation import RevocationError, RevocationGuard, Revocations
from evalgrid.serving import Served, start_server
from evalgrid.tls import (
    PermissionDeniedError,
    channel_credentials,
    secure_channel,
    server_credentials,
)
from evalgrid.wire import UNARY_DEADLINE_S, from_window, to_window
from site_agent.booths import BoothError, BoothState, SiteBooths
from site_agent.enrolment import EnrolmentPort, EnrolmentService, start_enrolment_port
from site_agent.inventory import booths_from_inventory
from site_agent.offline_journal import OfflineJournal
from site_agent.offline_mode import (
    COORDINATOR_DEADLINE_S,
    OfflineMode,
    SheetRefused,
    unreachable,
)

log = logging.getLogger("evalgrid.agent")
R = TypeVar("R")

STATE_TO_WIRE = {
    BoothState.FREE: common_pb2.WORKSTATION_STATE_FREE,
    BoothState.RESERVED: common_pb2.WORKSTATION_STATE_RESERVED,
    BoothState.SIGNED_IN: common_pb2.WORKSTATION_STATE_SIGNED_IN,
    BoothState.EVALUATING: common_pb2.WORKSTATION_STATE_EVALUATING,
    BoothState.FAULT: common_pb2.WORKSTATION_STATE_FAULT,
    BoothState.OFFLINE: common_pb2.WORKSTATION_STATE_OFFLINE,
}


@dataclass
class AgentConfig:
    site_id: str
    pki_dir: Path
    coordinator: str  # host:port
    bind: str = "127.0.0.1:0"
    # Where new workstations enrol (server-only TLS, see site_agent.enrolment); None: no port.
    enrol_bind: str | None = "127.0.0.1:0"
    heartbeat_interval_s: float = 2.0
    max_backoff_s: float = 10.0
    # The offline journal lives here (site_agent/offline_journal.py); None keeps it in memory.
    data_dir: Path | None = None


class CoordinatorLink(site_link_pb2_grpc.SiteLinkStub):
    """The SiteLink stub on a channel that can be replaced.

    A server that answers at the coordinator's address without serving SiteLink (its port
    taken by another service while a standby held none, a balancer on the wrong backend)
    keeps gRPC's connection open: every retry would go to it again. Only a new channel, and
    so a new connection, can reach the coordinator there once it is back.
    """

    def __init__(self, open_channel: Callable[[], grpc.aio.Channel]) -> None:
        self._open = open_channel
        self.channel = open_channel()
        # The stub types its constructor as __new__ overloads; at run time it is __init__.
        super().__init__(self.channel)  # type: ignore[call-arg]

    async def renew(self) -> None:
        old, self.channel = self.channel, self._open()
        super().__init__(self.channel)  # type: ignore[call-arg]  # methods on the new one
        await old.close()


class SiteAgent:
    def __init__(self, config: AgentConfig, inventory: common_pb2.Inventory) -> None:
        self.config = config
        self.inventory = inventory
        self.booths = SiteBooths(config.site_id, booths_from_inventory(inventory))
        self._started = time.monotonic()
        self._applied = 0  # commands carried out (a figure for the coordinator's metrics)
        self.link = CoordinatorLink(lambda: secure_channel(
            config.coordinator, channel_credentials(config.pki_dir, "site", config.site_id)))
        self.connected = asyncio.Event()
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self._changed = asyncio.Event()
        # Board watchers (staff consoles) wait on the current event; a change sets it and puts
        # a fresh one in its place, so every watcher wakes once and nobody polls.
        self._board_event = asyncio.Event()
        self.fault_details: dict[str, str] = {}  # workstation -> why staff marked it faulty
        # Offline mode: journal, seat passes; a restart restores what the journal holds.
        journal = OfflineJournal(config.data_dir / "journal.jsonl" if config.data_dir else None)
        self.offline = OfflineMode(self.booths, journal, link=self.link,
                                   connected=self.connected, changed=self.status_changed)
        self.offline.fault_details = self.fault_details
        self._restoring = True
        self.offline.restore(self.apply)
        self._restoring = False
        self._forwarding: asyncio.Task[None] | None = None
        self.room_names = {r.id: r.name for v in inventory.venues for r in v.rooms}
        self._last_sent: dict[str, tuple[int, str, str]] = {}
        self._seq = 0
        self._stop = asyncio.Event()
        self.served: Served | None = None
        self._link_task: asyncio.Task[None] | None = None
        # The CRL in force here: pushed by the coordinator (SiteLink), kept in pki_dir.
        self.revocations = Revocations(config.pki_dir, owner=f"agent {config.site_id}")
        self.enrolment: EnrolmentPort | None = None
        self._crl_task: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> int:
        self.served = await start_server(
            bind=self.config.bind,
            credentials=server_credentials(self.config.pki_dir, "site", self.config.site_id),
            services=[
                (booth_pb2_grpc.add_BoothServicer_to_server, BoothService(self),
                 "evalgrid.v1.Booth"),
                (booth_pb2_grpc.add_DeskServicer_to_server, DeskService(self), "evalgrid.v1.Desk"),
                (booth_pb2_grpc.add_EnrolmentServicer_to_server, EnrolmentService(
                    self.config.site_id, self.link, (self.config.pki_dir / "ca.pem").read_bytes(),
                    lambda ws: _bound(self, "Enrolment.Activate", ws)), "evalgrid.v1.Enrolment"),
            ],
            extra_interceptors=[RevocationGuard(self.revocations)],
        )
        if self.config.enrol_bind is not None:
            self.enrolment = await start_enrolment_port(
                bind=self.config.enrol_bind, pki_dir=self.config.pki_dir,
                site_id=self.config.site_id, link=self.link)
        self._crl_task = asyncio.create_task(self.revocations.watch(), name="crl-watch")
        self._link_task = asyncio.create_task(self._run_link(), name="coordinator-link")
        # The journal goes up whenever the coordinator can store it again (offline_mode).
        self._forwarding = asyncio.create_task(self.offline.keep_forwarding(), name="forward")
        return self.served.port

    async def stop(self) -> None:
        self._stop.set()
        self.board_changed()  # board watchers see the stop and end their streams
        for task in (self._link_task, self._forwarding):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._crl_task is not None:
            self._crl_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._crl_task
        if self.enrolment is not None:
            await self.enrolment.server.stop(grace=1)
        if self.served is not None:
            await self.served.server.stop(grace=1)
        await self.link.channel.close()

    def status_changed(self) -> None:
        self._changed.set()
        self.board_changed()

    def board_changed(self) -> None:
        """Wake every board watcher (a booth changed, or the coordinator link did)."""
        self._board_event.set()
        self._board_event = asyncio.Event()

    async def board_changes(self, settle_s: float = 0.05) -> AsyncIterator[None]:
        """Yield at once, then after each change; a burst of changes yields once."""
        while not self._stop.is_set():
            event = self._board_event  # taken before the caller reads: no change is missed
            yield
            await event.wait()
            await asyncio.sleep(settle_s)

    # --- the link to the coordinator -------------------------------------------------------

    async def _run_link(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                reply = await self.link.RegisterSite(
                    site_link_pb2.RegisterSiteRequest(
                        request_id=request_id(), inventory=self.inventory, agent_version="1"
                    ),
                    timeout=UNARY_DEADLINE_S,
                )
                if reply.heartbeat_interval_ms:
                    self.heartbeat_interval_s = reply.heartbeat_interval_ms / 1000
                backoff = 0.2
                await self._stream()
            except grpc.aio.AioRpcError as exc:
                log.warning("site %s: coordinator link: %s %s", self.config.site_id,
                            exc.code().name, exc.details())
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    log.warning("site %s: the server at %s is not a coordinator (no SiteLink); "
                                "connecting afresh", self.config.site_id,
                                self.config.coordinator)
                    await self.link.renew()
            except asyncio.CancelledError:
                raise
            finally:
                if self.connected.is_set():
                    self.connected.clear()
                    self.board_changed()
            # Capped exponential backoff with jitter, so sites do not reconnect in lock-step.
            delay = min(backoff * (0.5 + random.random()), self.config.max_backoff_s)
            backoff = min(backoff * 2, self.config.max_backoff_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def _outgoing(self, acks: asyncio.Queue[site_link_pb2.AgentMessage]
                        ) -> AsyncIterator[site_link_pb2.AgentMessage]:
        """Hello, then status, acks and heartbeats. `acks` belongs to this stream alone: a
        dead stream's generator, still waiting, must not take the next stream's acks."""
        yield site_link_pb2.AgentMessage(
            hello=site_link_pb2.AgentHello(
                request_id=request_id(), last_fence=self.booths.highest_fence
            )
        )
        self._last_sent.clear()
        while True:
            status = self._status_report(full=False)
            if status is not None:
                yield status
            while not acks.empty():
                yield acks.get_nowait()
            ack_wait = asyncio.ensure_future(acks.get())
            change_wait = asyncio.ensure_future(self._changed.wait())
            done, pending = await asyncio.wait(
                {ack_wait, change_wait},
                # The coordinator sets the interval; jitter keeps sites out of lock-step (and
                # only shortens it: the lease is a few intervals long).
                timeout=self.heartbeat_interval_s * random.uniform(0.8, 1.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            if ack_wait in done:
                yield ack_wait.result()
            self._changed.clear()
            if not done:
                # Nothing changed for a whole interval: a heartbeat keeps the lease alive.
                yield self._status_report(full=False, heartbeat=True) or _empty_status()

    def _status_report(
        self, *, full: bool, heartbeat: bool = False
    ) -> site_link_pb2.AgentMessage | None:
        report = site_link_pb2.StatusReport()
        for entry in self.booths.board():
            wire = STATE_TO_WIRE[entry.state]
            detail = self.fault_details.get(entry.workstation_id, "") \
                if entry.state is BoothState.FAULT else ""
            key = (wire, entry.session_id or "", detail)
            if full or self._last_sent.get(entry.workstation_id) != key:
                report.workstations.add(
                    workstation_id=entry.workstation_id, state=wire,
                    session_id=entry.session_id or "", detail=detail,
                )
                self._last_sent[entry.workstation_id] = key
        if not report.workstations and not heartbeat:
            return None
        if heartbeat or full:
            report.figures.update(self.figures())
        self._seq += 1
        report.seq = self._seq
        return site_link_pb2.AgentMessage(status=report)

    def figures(self) -> dict[str, float]:
        """What this agent tells the coordinator's metrics: booths by state, offline records
        waiting to be forwarded, commands applied, seconds up."""
        counts: dict[str, float] = {}
        for entry in self.booths.board():
            key = f"booths_{entry.state.value}"
            counts[key] = counts.get(key, 0) + 1
        counts["offline_pending"] = len(self.offline.journal.pending())
        counts["commands_applied"] = self._applied
        counts["uptime_s"] = round(time.monotonic() - self._started, 1)
        return counts

    async def _stream(self) -> None:
        acks: asyncio.Queue[site_link_pb2.AgentMessage] = asyncio.Queue()
        call = self.link.Connect(self._outgoing(acks))
        self.connected.set()
        self.board_changed()
        log.info("site %s: connected to coordinator", self.config.site_id)
        # What the booths did while the coordinator was away goes up now, once each.
        self.offline.kick.set()
        async for command in call:
            await acks.put(site_link_pb2.AgentMessage(ack=self.apply(command)))

    def apply(self, command: site_link_pb2.CoordinatorCommand) -> site_link_pb2.CommandAck:
        """Carry out one coordinator command; every command is answered with an ack."""
        repeat = self.offline.is_repeat(command)  # a resend changes nothing, journals nothing
        try:
            kind = command.WhichOneof("body")
            if kind == "reserve":
                start, end = from_window(command.reserve.window)
                self.booths.reserve(command.reserve.session_id, command.reserve.workstation_id,
                                    start, end, command.fence)
            elif kind == "release":
                self.booths.release(command.release.session_id, command.fence)
            elif kind == "ping":
                pass
            elif kind == "admit":
                self.offline.admit(command)
            elif kind == "crl":
                try:
                    self.revocations.install(command.crl.pem)
                except (OSError, RevocationError) as exc:
                    raise BoothError(f"crl: not installed: {exc}") from exc
            else:
                raise BoothError(f"body: unknown command {kind!r}")
        except BoothError as exc:
            return site_link_pb2.CommandAck(command_id=command.command_id, ok=False,
                                            error=str(exc))
        if not self._restoring and not repeat:
            self.offline.applied(command)  # journaled before the ack goes up
        self._applied += 1
        self.status_changed()
        return site_link_pb2.CommandAck(command_id=command.command_id, ok=True)


def _empty_status() -> site_link_pb2.AgentMessage:
    return site_link_pb2.AgentMessage(status=site_link_pb2.StatusReport())


def _bound(agent: SiteAgent, rpc: str, workstation_id: str | None = None) -> Identity:
    """The caller of `rpc` after its row's role and binding checks (evalgrid.authorization).

    "own site": a site certificate of this agent's site; "own workstation" and "signed-in
    expert": a workstation certificate of this site for `workstation_id`, so a booth acts only
    as itself (that an expert is signed in there is the booth state's `require_signed_in`).
    """
    try:
        who = authorize(rpc)
    except PermissionDeniedError as exc:
        raise PermissionError(str(exc)) from exc
    binding = AUTHORIZATION[rpc].binding
    if who.site_id != agent.config.site_id:
        raise PermissionError(f"role {who.role!r} ({who.subject}) may not call {rpc} at site "
                              f"{agent.config.site_id} (binding: {binding})")
    if binding in ("own workstation", "signed-in expert") and \
            who.workstation_id != workstation_id:
        raise PermissionError(
            f"workstation_id: this certificate is for {who.workstation_id!r}, "
            f"not {workstation_id!r}"
        )
    return who


def relays_errors(method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]
                  ) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """A refusal here, or the coordinator's answer relayed, becomes the caller's status."""
    @functools.wraps(method)
    async def relaying(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except (PermissionError, BoothError, grpc.aio.AioRpcError) as exc:
            await _relay_error(context, exc)
            raise
    return relaying


async def _relay_error(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, PermissionError):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, clip(str(exc)))
    if isinstance(exc, SheetRefused):  # checked here while the coordinator is away
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, clip(str(exc)))
    if isinstance(exc, BoothError):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, clip(str(exc)))
    if isinstance(exc, grpc.aio.AioRpcError):
        await context.abort(exc.code(), clip(exc.details() or "coordinator error"))
    raise exc


class BoothService(booth_pb2_grpc.BoothServicer):
    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent

    @relays_errors
    async def Enrol(self, request: booth_pb2.EnrolRequest,
                    context: grpc.aio.ServicerContext) -> booth_pb2.EnrolReply:
        _bound(self.agent, "Booth.Enrol", request.workstation_id)
        booth = self.agent.booths.booth(request.workstation_id)
        booth.enrolled = True
        booth.online = True
        self.agent.status_changed()
        return booth_pb2.EnrolReply(
            workstation_id=booth.workstation_id, room_id=booth.room_id,
            heartbeat_interval_ms=int(self.agent.heartbeat_interval_s * 1000),
        )

    @relays_errors
    async def Heartbeat(self, request: booth_pb2.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> booth_pb2.HeartbeatReply:
        _bound(self.agent, "Booth.Heartbeat", request.workstation_id)
        booth = self.agent.booths.booth(request.workstation_id)
        if not booth.online:
            booth.online = True
            self.agent.status_changed()
        held = self.agent.booths.current_reservation(request.workstation_id)
        state = self.agent.booths.state_of(request.workstation_id)
        return booth_pb2.HeartbeatReply(
            state=STATE_TO_WIRE[state], session_id=held.session_id if held else ""
        )

    @relays_errors
    async def SignIn(self, request: booth_pb2.BoothSignInRequest,
                     context: grpc.aio.ServicerContext) -> common_pb2.SignInReply:
        _bound(self.agent, "Booth.SignIn", request.workstation_id)
        booths = self.agent.booths
        booth = booths.booth(request.workstation_id)
        if booth.fault:
            raise BoothError(f"workstation_id: {request.workstation_id!r} is marked faulty")
        held = booths.current_reservation(request.workstation_id)
        if held is None:
            raise BoothError(
                f"workstation_id: no session is reserved on {request.workstation_id!r}"
            )
        # The coordinator decides; while it is unreachable, the seat's pass (offline mode).
        reply = await self.agent.offline.sign_in(
            request.workstation_id, held.session_id, request.id_number, request.code,
            request.request_id or request_id())
        self.agent.status_changed()
        return reply

    @relays_errors
    async def GetSheetForm(self, request: booth_pb2.BoothFormRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.SheetForm:
        _bound(self.agent, "Booth.GetSheetForm", request.workstation_id)
        booth = self.agent.booths.require_signed_in(request.workstation_id)
        return await self.agent.offline.form(booth.signed_in_session or "")

    @relays_errors
    async def SubmitSheet(self, request: booth_pb2.BoothSubmitRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.SubmitSheetReply:
        _bound(self.agent, "Booth.SubmitSheet", request.workstation_id)
        booth = self.agent.booths.require_signed_in(request.workstation_id)
        if request.sheet.session_id != booth.signed_in_session:
            raise BoothError("sheet.session_id: not the session signed in at this booth")
        # Journaled first; "accepted, will be forwarded" (queued) while the coordinator is away.
        reply = await self.agent.offline.submit(request.workstation_id, request,
                                                request.request_id or request_id())
        if request.sheet.signed and reply.accepted:
            booth.submitted = True
            self.agent.status_changed()
        return reply


    @relays_errors
    async def DeclareRecusal(self, request: booth_pb2.BoothRecusalRequest,
                             context: grpc.aio.ServicerContext) -> common_pb2.RecusalReply:
        _bound(self.agent, "Booth.DeclareRecusal", request.workstation_id)
        booth = self.agent.booths.require_signed_in(request.workstation_id)
        reply: common_pb2.RecusalReply = await self.agent.link.DeclareRecusal(
            site_link_pb2.RecusalRequest(
                request_id=request.request_id or request_id(),
                session_id=booth.signed_in_session or "",
                workstation_id=request.workstation_id, reason=request.reason,
            ),
            timeout=COORDINATOR_DEADLINE_S,
        )
        return reply  # the coordinator's Release unlocks the booth


    async def _signed_in_session(self, rpc: str, workstation_id: str) -> str:
        _bound(self.agent, rpc, workstation_id)
        booth = self.agent.booths.require_signed_in(workstation_id)
        return booth.signed_in_session or ""

    @relays_errors
    async def AskClarification(self, request: booth_pb2.BoothAskRequest,
                               context: grpc.aio.ServicerContext) -> common_pb2.Clarification:
        session = await self._signed_in_session("Booth.AskClarification", request.workstation_id)
        reply: common_pb2.Clarification = await self.agent.link.AskClarification(
            site_link_pb2.AskRequest(
                request_id=request.request_id or request_id(), session_id=session,
                workstation_id=request.workstation_id, bid_code=request.bid_code,
                question=request.question),
            timeout=COORDINATOR_DEADLINE_S)
        return reply

    @relays_errors
    async def Clarifications(self, request: booth_pb2.BoothFormRequest,
                             context: grpc.aio.ServicerContext
                             ) -> common_pb2.ClarificationList:
        session = await self._signed_in_session("Booth.Clarifications", request.workstation_id)
        reply: common_pb2.ClarificationList = await self.agent.link.Clarifications(
            site_link_pb2.SheetFormRequest(session_id=session), timeout=COORDINATOR_DEADLINE_S)
        return reply

    @relays_errors
    async def Review(self, request: booth_pb2.BoothFormRequest,
                     context: grpc.aio.ServicerContext) -> common_pb2.CommitteeReview:
        session = await self._signed_in_session("Booth.Review", request.workstation_id)
        reply: common_pb2.CommitteeReview = await self.agent.link.Review(
            site_link_pb2.SheetFormRequest(session_id=session), timeout=COORDINATOR_DEADLINE_S)
        return reply

    @relays_errors
    async def ReturnSheet(self, request: booth_pb2.BoothReturnRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.ReturnSheetReply:
        session = await self._signed_in_session("Booth.ReturnSheet", request.workstation_id)
        reply: common_pb2.ReturnSheetReply = await self.agent.link.ReturnSheet(
            site_link_pb2.ReturnSheetRequest(
                request_id=request.request_id or request_id(), session_id=session,
                workstation_id=request.workstation_id, expert_ref=request.expert_ref,
                reason=request.reason),
            timeout=COORDINATOR_DEADLINE_S)
        return reply


class DeskService(booth_pb2_grpc.DeskServicer):
    """The guest-site desk: staff check experts in and watch the booths."""

    def __init__(self, agent: SiteAgent) -> None:
        self.agent = agent

    def _staff(self, rpc: str) -> None:
        _bound(self.agent, rpc)

    @relays_errors
    async def CheckIn(self, request: booth_pb2.DeskCheckInRequest,
                      context: grpc.aio.ServicerContext) -> booth_pb2.DeskCheckInReply:
        self._staff("Desk.CheckIn")
        rid = request.request_id or request_id()
        if not self.agent.connected.is_set():  # offline mode: the seats' passes answer
            workstation_id = await self.agent.offline.check_in(request.id_number, request.code)
        else:
            try:
                reply = await self.agent.link.CheckIn(
                    site_link_pb2.CheckInRequest(request_id=rid, id_number=request.id_number,
                                                 code=request.code),
                    timeout=COORDINATOR_DEADLINE_S,
                )
                workstation_id = reply.workstation_id
            except grpc.aio.AioRpcError as exc:
                if not unreachable(exc):
                    raise
                workstation_id = await self.agent.offline.check_in(request.id_number,
                                                                   request.code)
        booth = self.agent.booths.booth(workstation_id)
        return booth_pb2.DeskCheckInReply(workstation_id=booth.workstation_id,
                                          room_id=booth.room_id)

    async def Board(self, request: booth_pb2.BoardRequest,
                    context: grpc.aio.ServicerContext) -> booth_pb2.BoardReply:
        try:
            self._staff("Desk.Board")
        except PermissionError as exc:
            await _relay_error(context, exc)
            raise
        return self._board()

    async def WatchBoard(self, request: booth_pb2.BoardRequest,
                         context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[booth_pb2.BoardReply]:
        try:
            self._staff("Desk.WatchBoard")
        except PermissionError as exc:
            await _relay_error(context, exc)
            raise
        async for _ in self.agent.board_changes():
            yield self._board()

    @relays_errors
    async def IssueActivationCode(self, request: booth_pb2.DeskActivationRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> common_pb2.ActivationCode:
        """A one-time enrolment code for one of this site's workstations (site_agent.enrolment)."""
        self._staff("Desk.IssueActivationCode")
        self.agent.booths.booth(request.workstation_id)  # a workstation of this site, or refused
        code: common_pb2.ActivationCode = await self.agent.link.IssueActivationCode(
            site_link_pb2.ActivationCodeRequest(request_id=request.request_id or request_id(),
                                                workstation_id=request.workstation_id),
            timeout=COORDINATOR_DEADLINE_S)
        return code

    @relays_errors
    async def MarkWorkstation(self, request: booth_pb2.MarkRequest,
                              context: grpc.aio.ServicerContext) -> booth_pb2.MarkReply:
        self._staff("Desk.MarkWorkstation")
        booth = self.agent.booths.booth(request.workstation_id)
        detail = request.detail.strip()[:200]
        if request.fault:
            self.agent.fault_details[booth.workstation_id] = detail
        else:
            self.agent.fault_details.pop(booth.workstation_id, None)
        if booth.fault != request.fault:
            log.warning("site %s: workstation %s %s%s", self.agent.config.site_id,
                        booth.workstation_id,
                        "marked faulty" if request.fault else "back in service",
                        f": {detail}" if request.fault and detail else "")
        if booth.fault != request.fault:
            self.agent.offline.marked(booth.workstation_id, request.fault, detail)
        booth.fault = request.fault
        self.agent.status_changed()
        return booth_pb2.MarkReply(
            workstation_id=booth.workstation_id,
            state=STATE_TO_WIRE[self.agent.booths.state_of(booth.workstation_id)])

    def _board(self) -> booth_pb2.BoardReply:
        agent = self.agent
        reply = booth_pb2.BoardReply(site_id=agent.config.site_id,
                                     coordinator_connected=agent.connected.is_set())
        for entry in agent.booths.board():
            item = reply.workstations.add(
                workstation_id=entry.workstation_id, room_id=entry.room_id,
                state=STATE_TO_WIRE[entry.state], session_id=entry.session_id or "",
                room_name=agent.room_names.get(entry.room_id, ""),
                detail=agent.fault_details.get(entry.workstation_id, "")
                if entry.state is BoothState.FAULT else "",
            )
            if entry.start is not None and entry.end is not None:
                item.window.CopyFrom(to_window(entry.start, entry.end))
        held = sorted(agent.booths.reservations.values(),
                      key=lambda r: (r.start, r.workstation_id))
        for r in held:
            reply.sessions.add(session_id=r.session_id, workstation_id=r.workstation_id,
                               room_id=agent.booths.booths[r.workstation_id].room_id,
                               window=to_window(r.start, r.end))
        return reply
