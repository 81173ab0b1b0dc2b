"""Bytes that are no message, and calls with no message, from a client built only from the
descriptors (the way a third party's tool talks to the grid).

For every RPC on the real grid, as a party the table admits and as one it refuses: garbage,
a truncated message, a string field that is not UTF-8, no message at all on a unary request,
an empty request stream. Every answer is a documented status code (never UNKNOWN or INTERNAL,
never none: every call here has a deadline, and only a stream with nothing to say may run into
it), the caller is checked before a byte is decoded (a refused role gets PERMISSION_DENIED
whatever it sent), an undecodable request is named by its message type, and no server logs an
error. Also: reflection v1 and v1alpha, and the enrolment port's per-source limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc, operator_pb2, site_link_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grid_fixture import OPERATOR
from grpc_reflection.v1alpha import reflection_pb2
from security_grid import SecurityGrid
from test_authorization_table import RPCS, Party, Rpc, expected_refusal, parties

from coordinator.province.codec.projects import project_to_dict
from evalgrid.authorization import AUTHORIZATION, PACKAGE
from evalgrid.ids import request_id
from evalgrid.limits import ENROLMENT_PER_SOURCE
from evalgrid.pki.ca import issue
from evalgrid.request_fields import Format, RequestFieldError, check_request, format_of
from evalgrid.serving import REFLECTION_V1
from evalgrid.tls import secure_channel

ON_GRID = pytest.mark.asyncio(loop_scope="module")
DEADLINE_S = 5.0
STREAM_DEADLINE_S = 0.5
DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.RESOURCE_EXHAUSTED}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def hostile_bodies(rpc: Rpc) -> dict[str, bytes]:
    """Bytes no decoder of `rpc`'s request accepts: garbage, truncated, bad UTF-8."""
    bodies = {
        "garbage": b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        "truncated": _varint(1 << 3 | 2) + _varint(50) + b"abc",
        "end group": _varint(1 << 3 | 4),  # an end-group tag with no group open
    }
    strings = [f for f in rpc.request.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING
               and not f.is_repeated]
    if strings:
        tag = _varint(strings[0].number << 3 | 2)
        bodies["bad utf-8"] = tag + _varint(4) + b"\xff\xfe\xc3\x28"
    return bodies


def at_agent(rpc: Rpc, served: dict[str, str], g: SecurityGrid) -> bool:
    return served[rpc.name.split(".")[0]] != g.grid.target


def channel_for(g: SecurityGrid, party: Party, agent: bool) -> grpc.aio.Channel:
    grid = g.grid
    if agent:
        return grid.channel(grid.agent_target(g.home), party.role, party.agent_subject)
    return grid.channel(grid.target, party.role, party.subject)


async def send_raw(channel: grpc.aio.Channel, rpc: Rpc, messages: list[bytes]
                   ) -> tuple[grpc.StatusCode, str]:
    """Send `messages` as they are (no serializer): zero, one or more, then half-close."""
    streaming = rpc.client_streaming or rpc.server_streaming
    timeout = STREAM_DEADLINE_S if streaming else DEADLINE_S

    async def feed() -> AsyncIterator[bytes]:
        for m in messages:
            yield m

    try:
        # A request stream is what a client can always send: also to a unary method.
        if rpc.server_streaming:
            call = channel.stream_stream(rpc.path)(feed(), timeout=timeout)
            await call.read()
            call.cancel()
        else:
            await channel.stream_unary(rpc.path)(feed(), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith("Task was destroyed but it is pending"):
            self.records.append(record)


@ON_GRID
async def test_undecodable_bytes_and_missing_messages_get_documented_answers(
        security_grid: SecurityGrid) -> None:
    g = security_grid
    for party in parties(g):
        if party.role == "workstation":
            await asyncio.to_thread(issue, g.grid.data.pki, "workstation", party.subject)
    served = await g.served()
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    before = await g.snapshot()
    problems: list[str] = []
    try:
        for rpc in RPCS.values():
            agent = at_agent(rpc, served, g)
            row = AUTHORIZATION[rpc.name]
            everyone = parties(g)
            admitted = next(p for p in everyone if not expected_refusal(rpc, p, g, agent))
            refused = next(p for p in everyone if p.role not in row.roles)
            name = rpc.request.DESCRIPTOR.full_name
            for label, body in hostile_bodies(rpc).items():
                code, details = await send_raw(channel_for(g, refused, agent), rpc, [body])
                if code != grpc.StatusCode.PERMISSION_DENIED:
                    problems.append(f"{rpc.name} {label} as {refused.label}: {code.name} "
                                    f"{details!r} (the caller is checked first)")
                code, details = await send_raw(channel_for(g, admitted, agent), rpc, [body])
                if code != grpc.StatusCode.INVALID_ARGUMENT or not details.startswith(name):
                    problems.append(f"{rpc.name} {label}: {code.name} {details!r}")
            code, details = await send_raw(channel_for(g, admitted, agent), rpc, [])
            if rpc.client_streaming:  # an empty stream: a stream that ends, answered
                ok = code in DOCUMENTED or code == grpc.StatusCode.DEADLINE_EXCEEDED
            else:
                ok = code == grpc.StatusCode.INVALID_ARGUMENT and "no request message" in details
            if not ok:
                problems.append(f"{rpc.name} with no message: {code.name} {details!r}")
    finally:
        logging.getLogger().removeHandler(errors)
    assert problems == [], "\n".join(problems)
    assert errors.records == [], errors.records[0].getMessage()[:500]
    await g.settle(polls=2, interval=0.05)
    assert before.changed(await g.snapshot()) == [], "an undecodable call changed the state"


@ON_GRID
async def test_reflection_v1_and_v1alpha_list_the_same_services(
        security_grid: SecurityGrid) -> None:
    g = security_grid
    channel = g.grid.channel(g.grid.target, "operator", OPERATOR)
    request = reflection_pb2.ServerReflectionRequest(list_services="").SerializeToString()
    listed = {}
    for service in ("grpc.reflection.v1alpha.ServerReflection", REFLECTION_V1):
        call = channel.stream_stream(f"/{service}/ServerReflectionInfo")(
            iter([request]), timeout=DEADLINE_S)
        raw = await call.read()
        assert isinstance(raw, bytes)
        reply = reflection_pb2.ServerReflectionResponse.FromString(raw)
        listed[service] = sorted(s.name for s in reply.list_services_response.service)
        call.cancel()
    v1alpha, v1 = listed.values()
    assert v1alpha == v1
    assert f"{PACKAGE}.Operator" in v1 and REFLECTION_V1 in v1


@ON_GRID
async def test_the_enrolment_port_limits_each_source_before_decoding(
        security_grid: SecurityGrid) -> None:
    """A flood on the port without certificates is refused there: nothing reaches the
    coordinator (no audit entry, the site's budget untouched) and nothing is decoded."""
    g = security_grid
    grid = g.grid
    bootstrap = grid.track(secure_channel(
        grid.enrol_target(g.other),
        grpc.ssl_channel_credentials((grid.data.pki / "ca.pem").read_bytes())))
    path = f"/{PACKAGE}.Enrolment/Activate"
    before = await g.snapshot()
    codes: list[grpc.StatusCode] = []
    details: list[str] = []
    for _ in range(ENROLMENT_PER_SOURCE.burst + 5):
        try:
            await bootstrap.unary_unary(path)(b"\xff\xff\xff\xff", timeout=DEADLINE_S)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as exc:
            codes.append(exc.code())
            details.append(exc.details() or "")
    assert codes[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert details[0].startswith(f"{PACKAGE}.ActivateRequest: ")
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert set(codes) <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert await g.audit_kinds_since(before) == []
    # The site's desk still gets its answers from the same agent.
    desk = booth_pb2_grpc.DeskStub(grid.channel(grid.agent_target(g.other), "site", g.other))
    board = await desk.Board(booth_pb2.BoardRequest(), timeout=DEADLINE_S)
    assert len(board.workstations) > 0


# --- field formats, from the descriptors -----------------------------------------------------


def formatted_fields(descriptor: Descriptor, prefix: str = "", depth: int = 0
                     ) -> list[tuple[str, list[FieldDescriptor], Format]]:
    """(path, the fields along it, format) of every string field with a format, nested too."""
    found: list[tuple[str, list[FieldDescriptor], Format]] = []
    for fd in descriptor.fields:
        fmt = format_of(fd)
        if fmt is not None:
            found.append((prefix + fd.name + ("[0]" if fd.is_repeated else ""), [fd], fmt))
        elif fd.message_type is not None and not fd.message_type.GetOptions().map_entry \
                and depth < 3:
            step = prefix + fd.name + ("[0]." if fd.is_repeated else ".")
            found += [(path, [fd, *chain], f)
                      for path, chain, f in formatted_fields(fd.message_type, step, depth + 1)]
    return found


def with_value(cls: type[Message], chain: list[FieldDescriptor], value: str) -> Message:
    message = cls()
    target: Any = message
    for fd in chain[:-1]:
        target = getattr(target, fd.name).add() if fd.is_repeated else getattr(target, fd.name)
    last = chain[-1]
    if last.is_repeated:
        getattr(target, last.name).append(value)
    else:
        setattr(target, last.name, value)
    return message


def test_formats_accept_what_the_grid_makes_and_refuse_the_rest() -> None:
    for good in ("", "2026-05-12", "2028-02-29"):
        check_request(operator_pb2.ListProjectsRequest(day=good))
    for bad in ("05/12/2026", "2026-02-30", "2026-5-12", "２０２６-05-12", "2026-05-12 "):
        with pytest.raises(RequestFieldError, match=r"^day: a date YYYY-MM-DD"):
            check_request(operator_pb2.ListProjectsRequest(day=bad))
    for good in ("S0001-V1-R01-W01", "ses-0123abcd", "P-2026.01_a", request_id()):
        check_request(operator_pb2.ProjectRequest(project_id=good, request_id=good))
    with pytest.raises(RequestFieldError, match=r"^project_id: an id"):
        check_request(operator_pb2.ProjectRequest(project_id="P 1"))


def test_every_formatted_field_has_a_refusing_case() -> None:
    """Walk the descriptors: the fields that carry a day or an id all have a format."""
    paths = {f"{rpc.name}:{path}" for rpc in RPCS.values()
             for path, _, _ in formatted_fields(rpc.request.DESCRIPTOR)}
    assert "Operator.ListProjects:day" in paths and "Operator.PlanDay:day" in paths
    assert "SiteLink.SubmitSheet:sheet.session_id" in paths
    for rpc in RPCS.values():
        for path, chain, fmt in formatted_fields(rpc.request.DESCRIPTOR):
            assert not fmt.check(fmt.refused), path
            with pytest.raises(RequestFieldError) as refused:
                check_request(with_value(rpc.request, chain, fmt.refused))
            assert str(refused.value).startswith(f"{path}: "), (rpc.name, str(refused.value))


@ON_GRID
async def test_a_bad_format_is_refused_at_the_door_naming_the_field(
        security_grid: SecurityGrid) -> None:
    g = security_grid
    served = await g.served()
    before = await g.snapshot()
    problems = []
    for rpc in RPCS.values():
        agent = at_agent(rpc, served, g)
        admitted = next(p for p in parties(g) if not expected_refusal(rpc, p, g, agent))
        for path, chain, fmt in formatted_fields(rpc.request.DESCRIPTOR):
            body = with_value(rpc.request, chain, fmt.refused).SerializeToString()
            code, details = await send_raw(channel_for(g, admitted, agent), rpc, [body])
            if code != grpc.StatusCode.INVALID_ARGUMENT or not details.startswith(f"{path}: "):
                problems.append(f"{rpc.name} {path}: {code.name} {details!r}")
    assert problems == [], "\n".join(problems)
    listed = g.grid.operator.ListProjects(operator_pb2.ListProjectsRequest(day="05/12/2026"),
                                          timeout=DEADLINE_S)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await listed
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("day: a date YYYY-MM-DD")
    assert before.changed(await g.snapshot()) == []


@ON_GRID
async def test_a_project_registered_over_the_network_names_a_registry_city(
        security_grid: SecurityGrid) -> None:
    """The import's city check holds for live registration too; an alias is stored as the
    city (so the other-cities rule compares like with like)."""
    g = security_grid
    project = g.grid.province.projects[0]
    record = project_to_dict(project)
    record["id"] = "CITY-TYPO"
    record["city"] = project.city[:-1]
    link = g.grid.site_link(project.host_site_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await link.RegisterProject(site_link_pb2.RegisterProjectRequest(
            request_id=request_id(), project_json=json.dumps(record)), timeout=DEADLINE_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == \
        f"city: unknown city {project.city[:-1]!r} (did you mean {project.city!r}?)"
    desk = g.grid.coordinator.workflow.desk
    alias = next(a for c in g.grid.province.cities if c.name == project.city
                 for a in c.aliases)
    renamed = desk.with_registry_city(dataclasses.replace(project, city=alias))
    assert renamed.city == project.city
