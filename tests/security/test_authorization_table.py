"""The authorization table against the wire contract and the running grid, both ways.

Every RPC of the generated descriptors has a row and every row names an RPC; every RPC is
called as every kind of party on the real in-process grid: a role the row admits is never
refused for its role, any other party is refused with PERMISSION_DENIED naming its role and the
action, and a refused call changes nothing (a digest of Redis and the agents' booths).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evalgrid_wire.v1
import grpc
import pytest
from google.protobuf.message import Message
from grid_fixture import AUDITOR, OPERATOR
from security_grid import SecurityGrid

from evalgrid.authorization import (
    AUTHORIZATION,
    BINDINGS,
    PACKAGE,
    Rule,
    denial,
    markdown_table,
    rpc_name,
)
from evalgrid.pki.ca import issue
from evalgrid.pki.identity import Identity

README = Path(__file__).resolve().parents[2] / "README.md"
MODULES = [importlib.import_module(f"evalgrid_wire.v1.{m.name}")
           for m in pkgutil.iter_modules(evalgrid_wire.v1.__path__) if m.name.endswith("_pb2")]
STREAM_DEADLINE_S = 1.0  # an admitted stream may have nothing to say: its deadline ends it
ADMITTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION}


@dataclass(frozen=True)
class Rpc:
    name: str          # "Service.Method"
    path: str          # "/evalgrid.v1.Service/Method"
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool


def wire_rpcs() -> dict[str, Rpc]:
    """Every RPC in the generated descriptors of the wire contract."""
    found: dict[str, Rpc] = {}
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            assert service.full_name.startswith(PACKAGE + "."), service.full_name
            for method in service.methods:
                name = f"{service.name}.{method.name}"
                found[name] = Rpc(
                    name=name, path=f"/{service.full_name}/{method.name}",
                    request=_message_class(method.input_type),
                    response=_message_class(method.output_type),
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming)
    return found


def _message_class(descriptor: Any) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)  # type: ignore[no-any-return]


RPCS = wire_rpcs()


def test_every_rpc_has_exactly_one_row_and_every_row_an_rpc() -> None:
    assert sorted(set(RPCS) - set(AUTHORIZATION)) == [], "RPCs without a row (refused)"
    assert sorted(set(AUTHORIZATION) - set(RPCS)) == [], "rows naming no RPC"
    for name, rpc in RPCS.items():
        assert rpc_name(rpc.path) == name


def test_the_auditor_only_reads_and_rows_are_well_formed() -> None:
    for name, rule in AUTHORIZATION.items():
        assert rule.binding in BINDINGS, name
        if "auditor" in rule.roles:  # it writes its own seed share only, nothing else
            assert not rule.writes or rule.binding == "own seed share", name
    with pytest.raises(ValueError, match="auditor"):
        Rule(("operator", "auditor"), "any", True, "a writing call")
    with pytest.raises(ValueError, match="binding"):
        Rule(("operator",), "nearby", False, "")  # type: ignore[arg-type]


def test_an_rpc_without_a_row_is_refused_by_default() -> None:
    who = Identity("operator", "alice")
    reason = denial(who, f"/{PACKAGE}.Operator/Unlisted")
    assert reason is not None and "no row" in reason and "'operator'" in reason
    assert denial(who, f"/{PACKAGE}.Operator/Draw") is None
    refused = denial(Identity("site", "S0003"), f"/{PACKAGE}.Operator/Draw")
    assert refused == "role 'site' (S0003) may not call Operator.Draw (requires operator)"


def test_the_readme_shows_the_current_table() -> None:
    assert markdown_table() in README.read_text(encoding="utf-8"), \
        "README.md's authorization table is stale: python -m evalgrid.authorization README.md"


# --- every RPC as every party on the real grid --------------------------------------------


@dataclass(frozen=True)
class Party:
    label: str
    role: str
    subject: str          # at the coordinator
    agent_subject: str    # at the home site's agent (differs only for "site, own")

    @property
    def site(self) -> str | None:
        return Identity(self.role, self.agent_subject).site_id  # type: ignore[arg-type]


def parties(g: SecurityGrid) -> list[Party]:
    return [
        Party("coordinator", "coordinator", "coordinator", "coordinator"),
        # At the coordinator "own site" is a site without a live agent (its streams compete
        # with nobody); at the agent it is the agent's own site.
        Party("site, own", "site", g.spare, g.home),
        Party("site, another", "site", g.spare_other, g.other),
        Party("operator", "operator", OPERATOR, OPERATOR),
        Party("auditor", "auditor", AUDITOR, AUDITOR),
        Party("workstation, this site", "workstation", f"{g.home}/{g.home_ws}",
              f"{g.home}/{g.home_ws}"),
        Party("workstation, another site", "workstation", f"{g.other}/{g.other_ws}",
              f"{g.other}/{g.other_ws}"),
    ]


def expected_refusal(rpc: Rpc, party: Party, g: SecurityGrid, at_agent: bool) -> bool:
    """Whether the table (role, then binding to the home agent's site) refuses `party`."""
    rule = AUTHORIZATION[rpc.name]
    if party.role not in rule.roles:
        return True
    return at_agent and party.site != g.home


def dummy_request(rpc: Rpc, party: Party) -> Message:
    """The empty request, acting as the caller's own workstation where the field exists."""
    request = rpc.request()
    fields = rpc.request.DESCRIPTOR.fields_by_name
    if "workstation_id" in fields and party.role == "workstation":
        request.workstation_id = party.agent_subject.split("/", 1)[1]  # type: ignore[attr-defined]
    return request


async def call(g: SecurityGrid, rpc: Rpc, party: Party, at_agent: bool
               ) -> tuple[grpc.StatusCode, str]:
    """Call `rpc` as `party`; the status code and details (streams: the first message)."""
    grid = g.grid
    if at_agent:
        channel = grid.channel(grid.agent_target(g.home), party.role, party.agent_subject)
    else:
        channel = grid.channel(grid.target, party.role, party.subject)
    request = dummy_request(rpc, party)
    kwargs: dict[str, Any] = {"request_serializer": rpc.request.SerializeToString,
                              "response_deserializer": rpc.response.FromString}
    try:
        if rpc.client_streaming:
            async def one() -> AsyncIterator[Message]:
                yield request
                await asyncio.sleep(STREAM_DEADLINE_S * 2)  # keep the stream open

            stream = channel.stream_stream(rpc.path, **kwargs)(
                one(), timeout=STREAM_DEADLINE_S)
            await stream.read()
            stream.cancel()
        elif rpc.server_streaming:
            stream = channel.unary_stream(rpc.path, **kwargs)(
                request, timeout=STREAM_DEADLINE_S)
            await stream.read()
            stream.cancel()
        else:
            await channel.unary_unary(rpc.path, **kwargs)(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.asyncio(loop_scope="module")
async def test_every_rpc_as_every_party(security_grid: SecurityGrid) -> None:
    g = security_grid
    for party in parties(g):
        if party.role == "workstation":
            await asyncio.to_thread(issue, g.grid.data.pki, "workstation", party.subject)
    served = await g.served()
    unserved = sorted({name.split(".")[0] for name in RPCS} - set(served))
    agent = {name: served[name.split(".")[0]] != g.grid.target
             for name in RPCS if name.split(".")[0] in served}
    cases = [(RPCS[name], party) for name in agent for party in parties(g)]
    refused = [(r, p) for r, p in cases if expected_refusal(r, p, g, agent[r.name])]
    admitted = [(r, p) for r, p in cases if not expected_refusal(r, p, g, agent[r.name])]
    assert refused and admitted

    before = await g.snapshot()
    problems = []
    for rpc, party in refused:
        code, details = await call(g, rpc, party, agent[rpc.name])
        role = f"'{party.role}'"
        if code != grpc.StatusCode.PERMISSION_DENIED or role not in details \
                or rpc.name not in details:
            problems.append(f"{party.label} -> {rpc.name}: {code.name} {details!r}")
    assert problems == [], "refusals that do not name role and action:\n" + "\n".join(problems)
    assert before.changed(await g.snapshot()) == [], "a refused call changed the state"
    assert await g.audit_kinds_since(before) == [], "a refused call was audited as an act"

    for rpc, party in admitted:
        code, details = await call(g, rpc, party, agent[rpc.name])
        ok = code in ADMITTED or (code == grpc.StatusCode.DEADLINE_EXCEEDED
                                  and (rpc.client_streaming or rpc.server_streaming))
        if not ok:
            problems.append(f"{party.label} -> {rpc.name}: {code.name} {details!r}")
    assert problems == [], "admitted roles refused or failing:\n" + "\n".join(problems)
    assert unserved == [], "services in the wire contract that no server offers"
