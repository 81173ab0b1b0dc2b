"""Hostile input on every RPC, over real gRPC, to the real coordinator and agents.

For each RPC, hypothesis generates request messages from the generated descriptors: malformed
and oversized strings, real ids mixed in (so the calls reach past the first lookup), boundary
and negative numbers, unknown enum values, empty and long repeated fields, wrong timestamps,
random bytes decoded as the message, and mutated project JSON. They are sent as a party the
authorization table admits, on one grid where an evaluation is under way and an expert is
signed in at a booth. Every answer must be OK or a refusal that says why
(INVALID_ARGUMENT naming the field, NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED): never
UNKNOWN or INTERNAL, never a hang (every call has a deadline), never an error logged by a
server, and a refused call leaves the stored state as it was (only "*.refused" audit entries
may be added: refused check-ins and sign-ins are audited on purpose).

Hypothesis runs in a worker thread and sends each call to the grid's event loop, so the grid
is started once for the module. Runs derandomized: the same cases every time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
from evalgrid_wire.v1 import booth_pb2, operator_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from grid_fixture import AUDITOR, OPERATOR, fair_scores, focus_projects
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from security_grid import SecurityGrid
from test_authorization_table import RPCS, Rpc

from coordinator.allocation import DEPARTURES
from coordinator.province.codec.projects import project_to_dict
from evalgrid.authorization import AUTHORIZATION
from evalgrid.ids import request_id
from evalgrid.limits import clip
from evalgrid.tls import MAX_MESSAGE_BYTES
from evalgrid.wire import UNARY_DEADLINE_S

ON_GRID = pytest.mark.asyncio(loop_scope="module")
# The grid runs on the event loop's thread while hypothesis draws in its own, and the grid's
# code uses `random` (reconnect jitter): hypothesis sees the global state move and warns.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

# Examples per RPC: ~48 RPCs x 45 gives over 2,000 cases; the slow ones get fewer.
EXAMPLES = 45
FEWER = {"Operator.Watch": 15, "Operator.WatchGrid": 25, "Desk.WatchBoard": 25,
         "SiteLink.Connect": 30, "Operator.Draw": 30}
STREAM_DEADLINE_S = 0.4
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED}
# Refusals that count on purpose: sign-in lockouts, and activation codes burnt by wrong tries.
LOCKOUT_KEYS = ("lock:", "enrol:")
REFUSAL_KINDS = re.compile(r"[._](refused|locked)$")
FIELD_FIRST = re.compile(r"^[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*: ")
# Calls that change the grid the most run last, so the others meet an evaluation under way.
LAST = ["Booth.ReturnSheet", "Booth.DeclareRecusal", "SiteLink.ReturnSheet",
        "SiteLink.DeclareRecusal", "Desk.MarkWorkstation", "Operator.ReplaceMember",
        "Operator.CloseEvaluation", "Operator.AdvanceClock"]
ORDER = sorted(RPCS, key=lambda n: (LAST.index(n) if n in LAST else -1, n))

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
NASTY = ["", " ", "\x00", "\n", "../../etc/passwd", "'; DROP TABLE x; --", "{}", "[]", "null",
         "%s%n", "\u202e", "9" * 40, "-1", "0", "1e309", "NaN", "sNaN", "-Infinity", "-0",
         "0.000000001", "１２３", "²", "٣", "2026-13-45", "9999-12-31", "0000-00-00",
         "leave", "no_show", "\ud7ff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a" * 300]


@dataclass
class Ids:
    """Real ids of the grid, mixed into generated strings so calls reach deeper code."""

    strings: list[str] = field(default_factory=list)
    project_json: list[str] = field(default_factory=list)
    by_field: dict[str, list[str]] = field(default_factory=dict)  # field name -> real values


def string_values(ids: Ids, name: str, depth: int) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.text(max_size=30),
        st.sampled_from(NASTY),
        st.sampled_from(ids.strings),
    ]
    if ids.by_field.get(name):  # the real values of this very field, half of the time
        options += [st.sampled_from(ids.by_field[name])] * 4
    if depth == 0:  # long strings, built cheaply: a short piece repeated
        options.append(st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=3),
                                 st.integers(1_000, 60_000)).map(lambda p: p[0] * p[1]))
    if name == "project_json":
        options.append(st.sampled_from(ids.project_json).flatmap(mutated_json))
    return st.one_of(*options)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                        st.sampled_from(NASTY))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def mutated_json(base: str) -> st.SearchStrategy[str]:
    """A real project record with one value replaced, one key dropped, or both."""
    record = json.loads(base)

    def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [prefix]
        if isinstance(value, dict):
            for k, v in value.items():
                found += paths(v, (*prefix, k))
        elif isinstance(value, list):
            for i, v in enumerate(value[:3]):
                found += paths(v, (*prefix, i))
        return found

    every = [p for p in paths(record) if p]

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        copy = json.loads(base)
        for _ in range(draw(st.integers(0, 3))):
            path = draw(st.sampled_from(every))
            parent = copy
            try:
                for step in path[:-1]:
                    parent = parent[step]
                if draw(st.booleans()) and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = draw(json_values())
            except (KeyError, IndexError, TypeError):
                continue
        return json.dumps(copy, allow_nan=True)

    return mutate()


def timestamps() -> st.SearchStrategy[dict[str, int]]:
    """Valid, boundary and out-of-range Timestamp fields (protobuf accepts them all)."""
    return st.fixed_dictionaries({
        "seconds": st.one_of(st.integers(1_700_000_000, 1_900_000_000),
                             st.sampled_from([0, -1, -62135596801, -62135596800, 253402300799,
                                              253402300800, 2**63 - 1, -(2**63)])),
        "nanos": st.one_of(st.just(0), st.sampled_from([-1, 999_999_999, 1_000_000_000,
                                                        2**31 - 1, -(2**31)])),
    })


def scalar(fd: FieldDescriptor, ids: Ids, depth: int) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return string_values(ids, fd.name, depth)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if fd.type == FieldDescriptor.TYPE_FLOAT else 64)
    low, high = INT_RANGES[fd.type]
    return st.one_of(st.sampled_from(sorted({low, high, 0, 1, max(low, -1)})),
                     st.integers(low, high))


def field_values(fd: FieldDescriptor, ids: Ids, depth: int) -> st.SearchStrategy[Any]:
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Timestamp":
            return timestamps()
        return message_dicts(fd.message_type, ids, depth + 1)
    return scalar(fd, ids, depth)


def message_dicts(descriptor: Descriptor, ids: Ids, depth: int = 0
                  ) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for a message, as a dict: each field set or left out, recursively."""
    if depth > 2:
        return st.just({})
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for fd in descriptor.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key, value = fd.message_type.fields
            values = st.dictionaries(scalar(key, ids, depth + 1),
                                     field_values(value, ids, depth + 1), max_size=4)
        elif fd.is_repeated:
            element = field_values(fd, ids, max(depth, 1))
            values = st.lists(element, max_size=4)
            if depth == 0:  # and long ones: one element many times
                values = st.one_of(values, st.tuples(element, st.integers(200, 1_000))
                                   .map(lambda p: [p[0]] * p[1]))
        else:
            values = field_values(fd, ids, depth)
        parts[fd.name] = values
    return st.fixed_dictionaries({}, optional=parts)


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    _fill(message, values)
    return message


def _fill(message: Message, values: dict[str, Any]) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        fd = fields[name]
        target = getattr(message, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_fd.message_type is not None:
                    _fill(target[k], v)
                else:
                    target[k] = v
        elif fd.is_repeated:
            for item in value:
                if fd.message_type is not None:
                    _fill(target.add(), item)
                else:
                    target.append(item)
        elif fd.message_type is not None:
            target.SetInParent()
            _fill(target, value)
        else:
            setattr(message, name, value)


def requests(rpc: Rpc, ids: Ids, own_workstation: str | None) -> st.SearchStrategy[Message]:
    """Generated requests for `rpc`; a booth's requests mostly name its own workstation."""
    structured = message_dicts(rpc.request.DESCRIPTOR, ids).map(
        lambda values: build(rpc.request, values))

    def decoded(raw: bytes) -> Message | None:
        try:
            return rpc.request.FromString(raw)
        except (DecodeError, RuntimeError, ValueError):
            return None

    # Random bytes: decoded where they decode, else sent as they are (garbage, truncated,
    # strings that are not UTF-8), as a client that is not ours may send them.
    from_bytes = st.binary(max_size=256).map(lambda raw: decoded(raw) or raw)
    strategy: st.SearchStrategy[Message] = st.one_of(structured, structured, structured,
                                                     from_bytes)  # type: ignore[arg-type]
    if own_workstation is not None and "workstation_id" in rpc.request.DESCRIPTOR.fields_by_name:

        def own(pair: tuple[Message, bool]) -> Message:
            message, keep = pair
            if not keep and not isinstance(message, bytes):
                message.workstation_id = own_workstation  # type: ignore[attr-defined]
            return message

        strategy = st.tuples(strategy, st.booleans()).map(own)
    return strategy


# --- the grid under fuzz -------------------------------------------------------------------


@dataclass
class Target:
    """Who calls, where, and the real ids the strategies mix in."""

    g: SecurityGrid
    ids: Ids
    seat_site: str
    seat_ws: str
    errors: list[logging.LogRecord]
    served: dict[str, str]


class ErrorLog(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        # A pending task collected on cancellation is teardown noise, not a failed request.
        if record.name.startswith("hypothesis") or \
                record.getMessage().startswith("Task was destroyed but it is pending"):
            return
        self.sink.append(record)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(security_grid: SecurityGrid) -> AsyncIterator[Target]:
    """An evaluation under way: one expert signed in at a booth, a question asked."""
    g = security_grid
    grid = g.grid
    await grid.register_all()
    project = focus_projects(grid.province)[0]
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    notice = notices[0]
    expert = grid.experts[notice["expert_id"]]
    site_id = grid.site_of_venue(notice["venue_id"])
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    signed = await booth.sign_in(expert.id_number, notice["code"])
    form = await booth.form()
    await booth.submit(fair_scores(form), signed=False)
    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project.id), timeout=UNARY_DEADLINE_S)
    # Every reservation has reached its agent: no command is in flight when the fuzz begins.
    await grid.wait_held(Counter((s.site_id, project.window.start) for s in seats.seats
                                 if s.status not in DEPARTURES.values()))
    await g.settle()

    strings = [request_id()]
    strings += [p.id for p in grid.province.projects] + [s.id for s in grid.province.sites]
    strings += [*grid.workstations_of(site_id)[:5], checked.workstation_id]
    strings += [s.session_id for s in seats.seats] + [s.expert_ref for s in seats.seats]
    strings += [n["notice_id"] for n in notices] + [n["code"] for n in notices]
    strings += [grid.experts[n["expert_id"]].id_number for n in notices]
    strings += [b.code for b in form.bids] + [c.id for c in form.criteria]
    strings += [signed.session_id, signed.expert_ref, OPERATOR]
    by_field = {
        "project_id": [p.id for p in grid.province.projects],
        "session_id": [s.session_id for s in seats.seats],
        "workstation_id": [*grid.workstations_of(site_id)[:3], checked.workstation_id],
        "notice_id": [n["notice_id"] for n in notices],
        "code": [n["code"] for n in notices],
        "id_number": [grid.experts[n["expert_id"]].id_number for n in notices],
        "bid_code": [b.code for b in form.bids],
        "criterion_id": [c.id for c in form.criteria],
        "expert_ref": [s.expert_ref for s in seats.seats],
        "site_id": [s.id for s in grid.province.sites],
        "reason": ["leave", "no_show", "ill"],
        "day": [project.window.start.date().isoformat()],
        "score": ["0", "1.5", "-1", "1e9", "NaN", "Infinity", "0.001"],
    }
    host_projects = []
    for p in grid.province.projects:
        record = project_to_dict(p)
        record["id"] = f"FZ-{p.id}"
        record["host_site_id"] = site_id
        host_projects.append(json.dumps(record))
    errors: list[logging.LogRecord] = []
    handler = ErrorLog(errors)
    logging.getLogger().addHandler(handler)
    try:
        yield Target(g, Ids(strings, host_projects, by_field), site_id,
                     checked.workstation_id, errors, await g.served())
    finally:
        logging.getLogger().removeHandler(handler)


def party_for(rpc: Rpc, t: Target) -> tuple[str, str, str]:
    """(target address, role, subject): a party the row admits, bound to its resources."""
    grid = t.g.grid
    roles = AUTHORIZATION[rpc.name].roles
    at_agent = t.served[rpc.name.split(".")[0]] != grid.target
    address = grid.agent_target(t.seat_site) if at_agent else grid.target
    if "workstation" in roles:
        return address, "workstation", f"{t.seat_site}/{t.seat_ws}"
    if "operator" in roles:
        return address, "operator", OPERATOR
    if "auditor" in roles:  # the supervisor's seed share
        return address, "auditor", AUDITOR
    assert "site" in roles, rpc.name
    # A site's streams come from a site without a live agent (no competing with it); its
    # unary calls from the seat's site, so they reach past the seat checks.
    spare = rpc.client_streaming and not at_agent
    return address, "site", t.g.spare if spare else t.seat_site


def _serialize(message: Message | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


async def send(t: Target, rpc: Rpc, request: Message | list[Message]
               ) -> tuple[grpc.StatusCode, str]:
    address, role, subject = party_for(rpc, t)
    channel = t.g.grid.channel(address, role, subject)
    kwargs: dict[str, Any] = {"request_serializer": _serialize,
                              "response_deserializer": rpc.response.FromString}
    try:
        if rpc.client_streaming:
            assert isinstance(request, list)
            call = channel.stream_stream(rpc.path, **kwargs)(
                iter(request), timeout=STREAM_DEADLINE_S * 5)
            for _ in range(3):  # the coordinator ends the stream when the agent's side ends
                if await call.read() is grpc.aio.EOF:
                    break
            call.cancel()
        elif rpc.server_streaming:
            call = channel.unary_stream(rpc.path, **kwargs)(request, timeout=STREAM_DEADLINE_S)
            await call.read()  # the first message, or the refusal
            call.cancel()
        else:
            await channel.unary_unary(rpc.path, **kwargs)(request, timeout=UNARY_DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def check(t: Target, rpc: Rpc, request: Message | list[Message]) -> None:
    streaming = rpc.client_streaming or rpc.server_streaming
    before = None if streaming else await t.g.snapshot()
    code, details = await send(t, rpc, request)
    shown = clip(repr(request), 300)
    if streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
        code = grpc.StatusCode.OK  # a bounded read of a stream with nothing more to say
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _size(request) > MAX_MESSAGE_BYTES:
        code = grpc.StatusCode.OK  # too big to send at all (tests/security/test_limits.py)
    assert code in ANSWERS, f"{rpc.name}: {code.name} {details!r} for {shown}"
    CODES.setdefault(rpc.name, Counter())[code.name] += 1
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert FIELD_FIRST.match(details), f"{rpc.name}: no field named in {details!r}"
    if before is not None and code != grpc.StatusCode.OK:
        after = await t.g.snapshot()
        kinds = await t.g.audit_kinds_since(before)
        # A refused sign-in or check-in counts towards its lockout: that write is the point.
        wrote = [k for k in before.changed(after) if not k.startswith(LOCKOUT_KEYS)]
        assert wrote == [], f"{rpc.name}: refused ({details}) yet wrote {wrote}"
        assert all(REFUSAL_KINDS.search(k) for k in kinds), \
            f"{rpc.name}: refused ({details}), audited {kinds}"
    assert not t.errors, f"{rpc.name}: server logged {t.errors[0].getMessage()[:500]}"
    if code == grpc.StatusCode.OK and AUTHORIZATION[rpc.name].writes:
        # What it set going (commands, seat passes, moves) ends before the next case is judged.
        await t.g.settle(polls=2, interval=0.05)


@dataclass(frozen=True)
class Shown:
    """A generated request whose repr stays short in a failure report."""

    request: Any

    def __repr__(self) -> str:
        return clip(repr(self.request), 600)


def _size(request: Message | list[Message]) -> int:
    def size(m: Message | bytes) -> int:
        return len(m) if isinstance(m, bytes) else m.ByteSize()

    return max(map(size, request), default=0) if isinstance(request, list) else size(request)


def run_fuzz(loop: asyncio.AbstractEventLoop, t: Target, rpc: Rpc) -> int:
    """Run hypothesis for one RPC in this (worker) thread; return the number of cases sent."""
    own = t.seat_ws if party_for(rpc, t)[1] == "workstation" else None
    strategy: st.SearchStrategy[Any] = requests(rpc, t.ids, own)
    if rpc.client_streaming:
        strategy = st.lists(strategy, max_size=5)
    sent = 0

    @settings(max_examples=FEWER.get(rpc.name, EXAMPLES), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(strategy.map(Shown))
    def case(shown: Shown) -> None:
        nonlocal sent
        sent += 1
        asyncio.run_coroutine_threadsafe(check(t, rpc, shown.request), loop).result(timeout=120)

    case()
    return sent


@ON_GRID
@pytest.mark.parametrize("name", ORDER)
async def test_fuzz(target: Target, name: str) -> None:
    rpc = RPCS[name]
    target.errors.clear()
    if name.split(".")[0] not in target.served:
        pytest.skip(f"{name}: its service is not served (the authorization test fails on it)")
    loop = asyncio.get_running_loop()
    sent = await asyncio.to_thread(run_fuzz, loop, target, rpc)
    assert sent >= FEWER.get(name, EXAMPLES) // 2, f"{name}: only {sent} cases generated"
    SENT[name] = sent


SENT: dict[str, int] = {}
CODES: dict[str, Counter[str]] = {}  # answers per RPC: how deep the cases reached


def test_thousands_of_cases_in_all() -> None:
    planned = sum(FEWER.get(name, EXAMPLES) for name in RPCS)
    assert planned >= 2000
    if len(SENT) == len(RPCS):  # the whole module ran: count what was really sent
        assert sum(SENT.values()) >= 2000, SENT
