"""Size and rate limits: what a flood or an oversized message gets, and that it stores nothing.

The token buckets are checked with an injected clock; the door with a real server built by
`start_server` (mutual TLS, the authorization table, a small limit) around a counting
Operator servicer; message sizes against the real grid's coordinator and agent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, operator_pb2, operator_pb2_grpc, site_link_pb2
from grid_fixture import AUDITOR, OPERATOR
from security_grid import SecurityGrid

from coordinator.province.codec.projects import project_to_dict
from evalgrid import tls
from evalgrid.ids import request_id
from evalgrid.limits import (
    ENV_VAR,
    MAX_DETAILS_CHARS,
    OWN_BUDGET,
    RateLimit,
    TokenBuckets,
    clip,
    rate_limit_from_env,
)
from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.identity import Identity
from evalgrid.serving import Served, start_server
from evalgrid.tls import (
    MAX_CONCURRENT_STREAMS,
    MAX_MESSAGE_BYTES,
    channel_credentials,
    secure_channel,
    server_credentials,
)
from evalgrid.wire import UNARY_DEADLINE_S

ON_GRID = pytest.mark.asyncio(loop_scope="module")
OVERSIZED = MAX_MESSAGE_BYTES + 1024


# --- token buckets --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(RateLimit(rate_per_s=2.0, burst=3), clock=clock)
    assert [buckets.take("operator:a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("operator:a") == pytest.approx(0.5)  # one token comes in 0.5 s
    assert buckets.take("auditor:b") == 0.0                   # every identity has its own
    clock.now += 0.5
    assert buckets.take("operator:a") == 0.0
    assert buckets.take("operator:a") > 0
    clock.now += 60  # a long pause refills to the burst, not beyond
    assert [buckets.take("operator:a") for _ in range(4)].count(0.0) == 3


def test_rate_limit_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    default = RateLimit(rate_per_s=5.0, burst=10)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert rate_limit_from_env(default) == default
    monkeypatch.setenv(ENV_VAR, "off")
    assert rate_limit_from_env(default) is None
    monkeypatch.setenv(ENV_VAR, "0.5/7")
    assert rate_limit_from_env(default) == RateLimit(rate_per_s=0.5, burst=7)
    for bad in ("10", "x/y", "0/5", "5/0", "-1/3"):
        monkeypatch.setenv(ENV_VAR, bad)
        with pytest.raises(ValueError, match=ENV_VAR):
            rate_limit_from_env(default)


def test_status_details_are_clipped_to_fit_a_trailer() -> None:
    assert clip("short") == "short"
    long = clip("𝔘" * 60_000)
    assert len(long) == MAX_DETAILS_CHARS and long.endswith("…")
    # Percent-encoded in the trailer: at most 12 bytes a character, under gRPC's 8 KiB.
    assert len(long.encode()) * 3 < 8192


# --- the door of a real server ----------------------------------------------------------------


class CountingOperator(operator_pb2_grpc.OperatorServicer):
    """Answers Status and counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def Status(self, request: operator_pb2.StatusRequest, context: grpc.aio.ServicerContext
                     ) -> operator_pb2.StatusReply:
        self.calls += 1
        return operator_pb2.StatusReply(sites=self.calls)


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "pki"
    init_ca(d)
    for role, subject in (("coordinator", "coordinator"), ("operator", OPERATOR),
                          ("auditor", AUDITOR)):
        issue(d, role, subject)
    yield d


@asynccontextmanager
async def door(pki: Path, servicer: CountingOperator, limit: RateLimit | str | None
               ) -> AsyncIterator[Served]:
    served = await start_server(
        bind="127.0.0.1:0", credentials=server_credentials(pki, "coordinator", "coordinator"),
        services=[(operator_pb2_grpc.add_OperatorServicer_to_server, servicer,
                   "evalgrid.v1.Operator")],
        rate_limit=limit)  # type: ignore[arg-type]
    try:
        yield served
    finally:
        await served.server.stop(grace=None)


async def _status(pki: Path, port: int, role: str, subject: str) -> grpc.StatusCode:
    async with secure_channel(f"127.0.0.1:{port}", channel_credentials(pki, role, subject)) as ch:
        try:
            await operator_pb2_grpc.OperatorStub(ch).Status(operator_pb2.StatusRequest(),
                                                            timeout=UNARY_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or \
                f"operator {OPERATOR!r}" in (exc.details() or ""), exc.details()
            return exc.code()
    return grpc.StatusCode.OK


async def test_a_certificate_over_its_budget_gets_resource_exhausted(pki: Path) -> None:
    servicer = CountingOperator()
    async with door(pki, servicer, RateLimit(rate_per_s=0.001, burst=3)) as served:
        codes = [await _status(pki, served.port, "operator", OPERATOR) for _ in range(5)]
        assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        assert servicer.calls == 3  # the refused calls never reached the servicer
        # Another certificate has its own budget; one refused at the door spends it too.
        assert await _status(pki, served.port, "auditor", AUDITOR) == grpc.StatusCode.OK
        assert await _status(pki, served.port, "coordinator", "coordinator") == \
            grpc.StatusCode.PERMISSION_DENIED
        assert servicer.calls == 4


async def test_the_limit_comes_from_the_environment_and_can_be_off(
        pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "0.001/2")
    servicer = CountingOperator()
    async with door(pki, servicer, "env") as served:
        codes = [await _status(pki, served.port, "operator", OPERATOR) for _ in range(3)]
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED and servicer.calls == 2
    async with door(pki, servicer, None) as served:
        codes = [await _status(pki, served.port, "operator", OPERATOR) for _ in range(10)]
    assert set(codes) == {grpc.StatusCode.OK}


class HangingOperator(CountingOperator):
    """Status never answers (a servicer stuck on a lock); Watch streams stay open."""

    async def Status(self, request: operator_pb2.StatusRequest, context: grpc.aio.ServicerContext
                     ) -> operator_pb2.StatusReply:
        self.calls += 1
        if self.calls > 1:
            await asyncio.Event().wait()
        return operator_pb2.StatusReply(sites=self.calls)

    async def Watch(self, request: operator_pb2.WatchRequest, context: grpc.aio.ServicerContext
                    ) -> AsyncIterator[operator_pb2.Event]:
        yield operator_pb2.Event(id="1")
        await asyncio.Event().wait()


async def test_the_server_ends_a_stuck_unary_call_itself(
        pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "SERVER_UNARY_DEADLINE_S", 0.2)
    async with door(pki, HangingOperator(), None) as served, secure_channel(
            f"127.0.0.1:{served.port}", channel_credentials(pki, "operator", OPERATOR)) as ch:
        stub = operator_pb2_grpc.OperatorStub(ch)
        await stub.Status(operator_pb2.StatusRequest())
        with pytest.raises(grpc.aio.AioRpcError) as stuck:
            await stub.Status(operator_pb2.StatusRequest())  # no client deadline at all
        assert stuck.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "server's limit" in (stuck.value.details() or "")


async def test_a_connection_holds_at_most_the_capped_number_of_streams(pki: Path) -> None:
    servicer = HangingOperator()
    async with door(pki, servicer, None) as served, secure_channel(
            f"127.0.0.1:{served.port}", channel_credentials(pki, "operator", OPERATOR)) as ch:
        stub = operator_pb2_grpc.OperatorStub(ch)
        streams = [stub.Watch(operator_pb2.WatchRequest()) for _ in range(MAX_CONCURRENT_STREAMS)]
        for stream in streams:
            assert (await stream.read()).id == "1"
        # One more call on this connection waits for a free stream: it never reaches the server.
        with pytest.raises(grpc.aio.AioRpcError) as waiting:
            await stub.Status(operator_pb2.StatusRequest(), timeout=1.0)
        assert waiting.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert servicer.calls == 0
        streams[0].cancel()
        assert (await stub.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S)
                ).sites == 1
        for stream in streams[1:]:
            stream.cancel()


# --- message sizes on the real grid -----------------------------------------------------------


def _unlimited_sender(g: SecurityGrid, target: str, role: str, subject: str) -> grpc.aio.Channel:
    """A channel that would send anything: what a hostile client can do."""
    return g.grid.track(grpc.aio.secure_channel(
        target, channel_credentials(g.grid.data.pki, role, subject),
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]))


@ON_GRID
async def test_an_oversized_request_is_refused_and_stores_nothing(
        security_grid: SecurityGrid) -> None:
    g = security_grid
    project = g.grid.province.projects[0]
    host = project.host_site_id
    record = project_to_dict(project)
    record["name"] = "x" * OVERSIZED
    big_project = site_link_pb2.RegisterProjectRequest(request_id=request_id(),
                                                       project_json=json.dumps(record))
    big_mark = booth_pb2.MarkRequest(request_id=request_id(), workstation_id=g.home_ws,
                                     fault=True, detail="y" * OVERSIZED)
    before = await g.snapshot()

    coordinator = _unlimited_sender(g, g.grid.target, "site", host)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await coordinator.unary_unary(
            "/evalgrid.v1.SiteLink/RegisterProject",
            request_serializer=site_link_pb2.RegisterProjectRequest.SerializeToString,
            response_deserializer=site_link_pb2.RegisterProjectReply.FromString,
        )(big_project, timeout=UNARY_DEADLINE_S)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    agent = _unlimited_sender(g, g.grid.agent_target(g.home), "site", g.home)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await agent.unary_unary(
            "/evalgrid.v1.Desk/MarkWorkstation",
            request_serializer=booth_pb2.MarkRequest.SerializeToString,
            response_deserializer=booth_pb2.MarkReply.FromString,
        )(big_mark, timeout=UNARY_DEADLINE_S)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # The project's own channel (the shared options) will not even send it.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await g.grid.site_link(host).RegisterProject(big_project, timeout=UNARY_DEADLINE_S)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    after = await g.snapshot()
    assert before.changed(after) == [] and after.audit_length == before.audit_length
    listed = await g.grid.operator.ListProjects(operator_pb2.ListProjectsRequest(),
                                                timeout=UNARY_DEADLINE_S)
    assert project.id not in {p.project_id for p in listed.projects}
    board = await g.grid.board(g.home)
    assert all(w.detail == "" for w in board.workstations)


def test_relayed_enrolments_have_a_budget_of_their_own() -> None:
    """A flood of enrolments relayed by a site spends their own bucket, not the site's."""
    door = tls._Door(None, None, TokenBuckets(RateLimit(rate_per_s=0.001, burst=2)))
    site = Identity("site", "S0001")
    enrol = next(iter(OWN_BUDGET))
    for _ in range(2):
        tls._check_door(site, enrol, door)
    with pytest.raises(tls.RateLimitedError):
        tls._check_door(site, enrol, door)
    for _ in range(2):  # the site's own calls still have their whole budget
        tls._check_door(site, "/evalgrid.v1.SiteLink/SignIn", door)
    with pytest.raises(tls.RateLimitedError):
        tls._check_door(site, "/evalgrid.v1.SiteLink/SignIn", door)
