"""The expert's booth client: enrols with its agent, heartbeats, signs in, scores, signs.

Identity is the workstation certificate (role workstation, "SITE/WS"): the agent lets it act
only as itself and, once an expert is signed in, only for that expert's session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc, common_pb2

from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S


@dataclass(frozen=True)
class Score:
    bid_code: str
    criterion_id: str
    score: str  # exact decimal as text


class BoothTerminal:
    def __init__(self, *, pki_dir: Path, site_id: str, workstation_id: str, agent: str) -> None:
        self.site_id = site_id
        self.workstation_id = workstation_id
        self.channel = secure_channel(
            agent, channel_credentials(pki_dir, "workstation", f"{site_id}/{workstation_id}")
        )
        self.stub = booth_pb2_grpc.BoothStub(self.channel)
        self.session_id = ""
        self.sheet_id = ""
        self._heartbeat: asyncio.Task[None] | None = None

    async def enrol(self) -> booth_pb2.EnrolReply:
        reply: booth_pb2.EnrolReply = await self.stub.Enrol(
            booth_pb2.EnrolRequest(request_id=request_id(), workstation_id=self.workstation_id),
            timeout=UNARY_DEADLINE_S,
        )
        interval = max(reply.heartbeat_interval_ms, 200) / 1000
        self._heartbeat = asyncio.create_task(self._beat(interval), name="booth-heartbeat")
        return reply

    async def _beat(self, interval: float) -> None:
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self.heartbeat()
            await asyncio.sleep(interval)

    async def heartbeat(self) -> booth_pb2.HeartbeatReply:
        reply: booth_pb2.HeartbeatReply = await self.stub.Heartbeat(
            booth_pb2.HeartbeatRequest(workstation_id=self.workstation_id),
            timeout=UNARY_DEADLINE_S,
        )
        return reply

    async def sign_in(self, id_number: str, code: str) -> common_pb2.SignInReply:
        reply: common_pb2.SignInReply = await self.stub.SignIn(
            booth_pb2.BoothSignInRequest(
                request_id=request_id(), workstation_id=self.workstation_id,
                id_number=id_number, code=code,
            ),
            timeout=UNARY_DEADLINE_S,
        )
        self.session_id = reply.session_id
        # One sheet per session: the id is fixed here so every resend is the same sheet.
        self.sheet_id = f"sheet-{reply.session_id}"
        return reply

    async def form(self) -> common_pb2.SheetForm:
        form: common_pb2.SheetForm = await self.stub.GetSheetForm(
            booth_pb2.BoothFormRequest(workstation_id=self.workstation_id),
            timeout=UNARY_DEADLINE_S,
        )
        return form

    async def submit(self, scores: Iterable[Score], *, signed: bool,
                     request: str | None = None) -> common_pb2.SubmitSheetReply:
        sheet = common_pb2.ScoreSheet(sheet_id=self.sheet_id, session_id=self.session_id,
                                      signed=signed)
        for s in scores:
            sheet.scores.add(bid_code=s.bid_code, criterion_id=s.criterion_id, score=s.score)
        reply: common_pb2.SubmitSheetReply = await self.stub.SubmitSheet(
            booth_pb2.BoothSubmitRequest(request_id=request or request_id(),
                                         workstation_id=self.workstation_id, sheet=sheet),
            timeout=UNARY_DEADLINE_S,
        )
        return reply

    async def declare_recusal(self, reason: str) -> common_pb2.RecusalReply:
        reply: common_pb2.RecusalReply = await self.stub.DeclareRecusal(
            booth_pb2.BoothRecusalRequest(request_id=request_id(),
                                          workstation_id=self.workstation_id, reason=reason),
            timeout=UNARY_DEADLINE_S,
        )
        return reply

    async def ask(self, bid_code: str, question: str) -> common_pb2.Clarification:
        reply: common_pb2.Clarification = await self.stub.AskClarification(
            booth_pb2.BoothAskRequest(request_id=request_id(), workstation_id=self.workstation_id,
                                      bid_code=bid_code, question=question),
            timeout=UNARY_DEADLINE_S)
        return reply

    async def clarifications(self) -> common_pb2.ClarificationList:
        reply: common_pb2.ClarificationList = await self.stub.Clarifications(
            booth_pb2.BoothFormRequest(workstation_id=self.workstation_id),
            timeout=UNARY_DEADLINE_S)
        return reply

    async def review(self) -> common_pb2.CommitteeReview:
        reply: common_pb2.CommitteeReview = await self.stub.Review(
            booth_pb2.BoothFormRequest(workstation_id=self.workstation_id),
            timeout=UNARY_DEADLINE_S)
        return reply

    async def return_sheet(self, expert_ref: str, reason: str) -> common_pb2.ReturnSheetReply:
        reply: common_pb2.ReturnSheetReply = await self.stub.ReturnSheet(
            booth_pb2.BoothReturnRequest(request_id=request_id(),
                                         workstation_id=self.workstation_id,
                                         expert_ref=expert_ref, reason=reason),
            timeout=UNARY_DEADLINE_S)
        return reply

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.channel.close()
