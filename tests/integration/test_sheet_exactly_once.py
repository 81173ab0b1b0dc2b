"""A signed sheet is stored exactly once, even when the connection drops before the reply.

The site's agent reaches the coordinator through a loopback TCP forwarder that the test cuts
(every connection through it, the status stream included) right after the coordinator has
stored the sheet and before its reply is written: the booth never sees the coordinator's
answer (the call fails, or the agent's journal answers "queued"), the agent reconnects (and
may forward the journaled sheet again), and the booth resends the same sheet with the same
request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from evalgrid_wire.v1 import booth_pb2
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from coordinator.domain.model import Project
from coordinator.store.keys import load_public_key, public_key_path
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.agent import SiteAgent
from site_agent.booth_terminal import Score


class Forwarder:
    """Loopback TCP forwarding to `port`; `cut()` drops every connection at once, as a
    network failure would (TLS passes through untouched: the agent still verifies the
    coordinator's certificate)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    def cut(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


async def _through_forwarder(grid: Grid, site_id: str, forwarder: Forwarder) -> SiteAgent:
    """Restart the site's agent so that it dials the coordinator through `forwarder`."""
    old = grid.agents[site_id]
    await old.stop()
    port = await forwarder.start()
    agent = SiteAgent(dataclasses.replace(old.config, coordinator=f"127.0.0.1:{port}"),
                      old.inventory)
    grid.agents[site_id] = agent
    grid.agent_ports[site_id] = await agent.start()
    return agent


async def test_a_sheet_whose_reply_is_lost_is_stored_once(grid: Grid) -> None:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    site_id = grid.site_of_venue(notices[0]["venue_id"])
    forwarder = Forwarder(grid.port)
    try:
        await _lose_a_reply_and_resend(grid, project, notices, site_id, forwarder)
    finally:
        await forwarder.stop()


async def _lose_a_reply_and_resend(grid: Grid, project: Project, notices: list[dict[str, str]],
                                   site_id: str, forwarder: Forwarder) -> None:
    notice = notices[0]
    agent = await _through_forwarder(grid, site_id, forwarder)
    held = sum(1 for n in notices if grid.site_of_venue(n["venue_id"]) == site_id)

    async def holds_its_seats() -> bool:
        return agent.connected.is_set() and len(agent.booths.reservations) == held

    await wait_until(holds_its_seats, "the agent behind the forwarder to hold its seats")
    await grid.advance_to(project.window.start)
    await grid.start(project.id)

    expert = grid.experts[notice["expert_id"]]
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    signed_in = await booth.sign_in(expert.id_number, notice["code"])
    scores = fair_scores(await booth.form())

    # The coordinator stores the sheet; then the network drops before the reply is written.
    workflow: Any = grid.coordinator.workflow
    store = workflow.sheets.submit_sheet
    stored: list[tuple[bool, bool, str]] = []

    async def store_then_drop(*args: Any, **kwargs: Any) -> tuple[bool, bool, str]:
        answer: tuple[bool, bool, str] = await store(*args, **kwargs)
        if not stored:
            stored.append(answer)
            forwarder.cut()
        return answer

    workflow.sheets.submit_sheet = store_then_drop
    drops = forwarder.accepted
    rid = request_id()
    try:
        try:
            first = await booth.submit(scores, signed=True, request=rid)
        except grpc.aio.AioRpcError as lost:  # an agent that relays the failure
            assert lost.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        else:  # an agent that journals the sheet answers "accepted, will be forwarded"
            assert first.accepted and not first.digest
        assert stored and stored[0][0] and not stored[0][1]  # it was stored, the first time

        async def reconnected() -> bool:
            return forwarder.accepted > drops and agent.connected.is_set()

        await wait_until(reconnected, "the agent to reconnect after the drop")
        again = await booth.submit(scores, signed=True, request=rid)
    finally:
        workflow.sheets.submit_sheet = store
    # the resend gets the first answer, not a second sheet
    assert (again.accepted, again.duplicate, again.digest) == stored[0]

    # Exactly one signed sheet for this member, signed by the coordinator, the member's own.
    redis = aioredis.Redis.from_url(grid.redis_url)
    try:
        sheets = []
        async for key in redis.scan_iter(match="sheet:*"):
            body = json.loads((await redis.hget(key, "body")) or b"{}")
            if body.get("expert_ref") == signed_in.expert_ref:
                sheets.append(await redis.hgetall(key))
    finally:
        await redis.aclose()
    (sheet,) = sheets
    body = json.loads(sheet[b"body"])
    assert body["sheet_id"] == booth.sheet_id and body["signed"] is True
    assert body["session"] == signed_in.session_id
    assert sorted(tuple(row) for row in body["scores"]) and len(body["scores"]) == len(scores)
    digest = sheet[b"digest"].decode()
    assert hashlib.sha256(sheet[b"body"]).hexdigest() == digest == again.digest
    public = load_public_key(public_key_path(grid.data.keys / "audit-signing.pem"))
    public.verify(bytes.fromhex(sheet[b"signature"].decode()), digest.encode())  # raises if not

    entries = await workflow.audit.entries()
    signed = [e for e in entries if e.kind == "sheet.signed" and e.subject == project.id
              and e.detail.get("expert_ref") == signed_in.expert_ref]
    assert [e.detail["digest"] for e in signed] == [digest]

    # The same sheet id with other scores is refused, under a new request id or the same one.
    changed = [Score(s.bid_code, s.criterion_id, "0") for s in scores]
    for rid_again, why in ((request_id(), "sheet: this sheet is already signed and final"),
                           (rid, "request_id: already used for a different sheet")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await booth.submit(changed, signed=True, request=rid_again)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert why in (refused.value.details() or "")
    entries = await workflow.audit.entries()
    assert sum(1 for e in entries if e.kind == "sheet.signed"
               and e.detail.get("expert_ref") == signed_in.expert_ref) == 1
