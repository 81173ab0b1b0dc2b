"""What the site console needs from its agent, as plain values, and the gRPC implementation.

The console never sees a wire message: `SiteClient` is the seam where Pilot tests put a fake.
A guest site learns only opaque sessions and times here, never a project.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import grpc
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc

from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import STATE_NAMES, UNARY_DEADLINE_S, from_window
from tui.client_errors import ClientError, client_error


@dataclass(frozen=True)
class Workstation:
    workstation_id: str
    room_id: str
    room_name: str
    state: str  # free | reserved | signed_in | evaluating | fault | offline
    session_id: str = ""
    start: datetime | None = None
    end: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class Session:
    session_id: str
    workstation_id: str
    room_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Board:
    site_id: str
    coordinator_connected: bool
    workstations: tuple[Workstation, ...]
    sessions: tuple[Session, ...] = ()


@dataclass(frozen=True)
class CheckedIn:
    workstation_id: str
    room_id: str


class SiteClient(Protocol):
    """The desk of one site's agent, as the staff console uses it."""

    def watch_board(self) -> AsyncIterator[Board]:
        """The board now, then each time it changes; raises `ClientError` when the link drops."""
        ...

    async def check_in(self, id_number: str, code: str) -> CheckedIn: ...

    async def mark(self, workstation_id: str, fault: bool, detail: str = "") -> str:
        """Mark faulty (`fault`) or back in service; returns the workstation's new state."""
        ...

    async def close(self) -> None: ...


def board_from_wire(reply: booth_pb2.BoardReply) -> Board:
    workstations = []
    for e in reply.workstations:
        start, end = from_window(e.window) if e.HasField("window") else (None, None)
        workstations.append(Workstation(
            workstation_id=e.workstation_id, room_id=e.room_id, room_name=e.room_name,
            state=STATE_NAMES.get(e.state, "unknown"), session_id=e.session_id,
            start=start, end=end, detail=e.detail))
    sessions = tuple(Session(s.session_id, s.workstation_id, s.room_id, *from_window(s.window))
                     for s in reply.sessions)
    return Board(site_id=reply.site_id, coordinator_connected=reply.coordinator_connected,
                 workstations=tuple(workstations), sessions=sessions)


class GrpcSiteClient:
    """The agent's Desk service over mutual TLS, with the site's own certificate."""

    def __init__(self, *, pki_dir: Path, site_id: str, agent: str) -> None:
        self.site_id = site_id
        self.agent = agent
        self._channel = secure_channel(agent, channel_credentials(pki_dir, "site", site_id))
        self._desk = booth_pb2_grpc.DeskStub(self._channel)

    async def watch_board(self) -> AsyncIterator[Board]:
        call = self._desk.WatchBoard(booth_pb2.BoardRequest())
        try:
            async for reply in call:
                yield board_from_wire(reply)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        finally:
            call.cancel()
        raise ClientError("the agent ended the board stream", code="UNAVAILABLE")

    async def check_in(self, id_number: str, code: str) -> CheckedIn:
        try:
            reply = await self._desk.CheckIn(booth_pb2.DeskCheckInRequest(
                request_id=request_id(), id_number=id_number, code=code),
                timeout=UNARY_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        return CheckedIn(reply.workstation_id, reply.room_id)

    async def mark(self, workstation_id: str, fault: bool, detail: str = "") -> str:
        try:
            reply = await self._desk.MarkWorkstation(booth_pb2.MarkRequest(
                request_id=request_id(), workstation_id=workstation_id, fault=fault,
                detail=detail), timeout=UNARY_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc) from None
        return STATE_NAMES.get(reply.state, "unknown")

    async def close(self) -> None:
        await self._channel.close()
