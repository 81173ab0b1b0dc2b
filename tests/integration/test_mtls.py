"""Mutual TLS and roles against the real coordinator and agents of an in-process grid.

Who may call what is read from the verified client certificate only: no certificate, or one from
another CA, never gets past the handshake; a valid certificate of the wrong role is refused with
PERMISSION_DENIED naming the role; a site acts only for itself. Health and reflection stay behind
mutual TLS but need no particular role.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from evalgrid_wire.v1 import (
    booth_pb2,
    booth_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    site_link_pb2,
    site_link_pb2_grpc,
)
from grid_fixture import AUDITOR, OPERATOR, Grid
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from coordinator.province.codec.projects import project_to_dict
from evalgrid.ids import request_id
from evalgrid.pki.ca import init_ca, issue
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


@pytest.fixture(scope="module")
def foreign_pki() -> Iterator[Path]:
    """A second, unrelated CA with an operator certificate of its own."""
    root = Path(tempfile.mkdtemp(prefix="eg-ca-"))
    try:
        init_ca(root / "pki", name="Some Other CA")
        issue(root / "pki", "operator", OPERATOR)
        yield root / "pki"
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_a_channel_without_client_certificate_is_refused(shared_grid: Grid) -> None:
    ca = (shared_grid.data.pki / "ca.pem").read_bytes()
    channel = shared_grid.track(grpc.aio.secure_channel(
        shared_grid.target, grpc.ssl_channel_credentials(root_certificates=ca)))
    stub = operator_pb2_grpc.OperatorStub(channel)
    error = await _refused(stub.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    # Health is exempt from roles, not from mutual TLS.
    health = health_pb2_grpc.HealthStub(channel)
    error = await _refused(health.Check(health_pb2.HealthCheckRequest(service=""),
                                        timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(shared_grid: Grid,
                                                        foreign_pki: Path) -> None:
    # Trust the grid's CA (so the server is accepted) but present the foreign operator cert.
    key = (foreign_pki / "operator" / f"{OPERATOR}.key").read_bytes()
    cert = (foreign_pki / "operator" / f"{OPERATOR}.pem").read_bytes()
    ca = (shared_grid.data.pki / "ca.pem").read_bytes()
    channel = shared_grid.track(grpc.aio.secure_channel(
        shared_grid.target, grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert)))
    stub = operator_pb2_grpc.OperatorStub(channel)
    error = await _refused(stub.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    # And a client of the foreign CA does not trust the grid's server either.
    foreign = shared_grid.track(secure_channel(
        shared_grid.target, channel_credentials(foreign_pki, "operator", OPERATOR)))
    error = await _refused(operator_pb2_grpc.OperatorStub(foreign).Status(
        operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_roles_are_enforced_on_operator_rpcs(shared_grid: Grid) -> None:
    site_id = shared_grid.province.sites[0].id
    as_site = shared_grid.operator_as("site", site_id)
    project_id = shared_grid.province.projects[0].id
    calls = {
        "Status": as_site.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S),
        "Draw": as_site.Draw(operator_pb2.DrawRequest(request_id=request_id(),
                                                      project_id=project_id),
                             timeout=UNARY_DEADLINE_S),
        "AdvanceClock": as_site.AdvanceClock(operator_pb2.AdvanceClockRequest(),
                                             timeout=UNARY_DEADLINE_S),
        "StartEvaluation": as_site.StartEvaluation(operator_pb2.ProjectRequest(
            request_id=request_id(), project_id=project_id), timeout=UNARY_DEADLINE_S),
    }
    for name, call in calls.items():
        error = await _refused(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert "'site'" in (error.details() or "") and site_id in (error.details() or ""), name
        assert f"Operator.{name}" in (error.details() or ""), name

    # An auditor may look, not act.
    auditor = shared_grid.operator_as("auditor", AUDITOR)
    status = await auditor.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S)
    assert status.sites == len(shared_grid.province.sites)
    error = await _refused(auditor.Draw(operator_pb2.DrawRequest(
        request_id=request_id(), project_id=project_id), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'auditor'" in (error.details() or "")

    # An operator is not a site.
    as_operator = site_link_pb2_grpc.SiteLinkStub(
        shared_grid.channel(shared_grid.target, "operator", OPERATOR))
    error = await _refused(as_operator.RegisterProject(site_link_pb2.RegisterProjectRequest(
        request_id=request_id(), project_json="{}"), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'operator'" in (error.details() or "")


async def test_a_site_registers_only_its_own_projects(shared_grid: Grid) -> None:
    project = shared_grid.province.projects[0]
    other = next(s.id for s in shared_grid.province.sites if s.id != project.host_site_id)
    error = await _refused(shared_grid.site_link(other).RegisterProject(
        site_link_pb2.RegisterProjectRequest(
            request_id=request_id(), project_json=json.dumps(project_to_dict(project))),
        timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "host_site_id" in (error.details() or "") and other in (error.details() or "")
    listed = await shared_grid.operator.ListProjects(operator_pb2.ListProjectsRequest(),
                                                     timeout=UNARY_DEADLINE_S)
    assert project.id not in {p.project_id for p in listed.projects}


async def test_health_and_reflection_answer_behind_mtls(shared_grid: Grid) -> None:
    # Any role will do for health: here an auditor, and a site at its own agent.
    health = health_pb2_grpc.HealthStub(
        shared_grid.channel(shared_grid.target, "auditor", AUDITOR))
    for service in ("evalgrid.v1.Operator", "evalgrid.v1.SiteLink", ""):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service),
                                   timeout=UNARY_DEADLINE_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    error = await _refused(health.Check(health_pb2.HealthCheckRequest(service="no.Such"),
                                        timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    site_id = shared_grid.province.sites[0].id
    agent_health = health_pb2_grpc.HealthStub(
        shared_grid.channel(shared_grid.agent_target(site_id), "site", site_id))
    for service in ("evalgrid.v1.Booth", "evalgrid.v1.Desk"):
        reply = await agent_health.Check(health_pb2.HealthCheckRequest(service=service),
                                         timeout=UNARY_DEADLINE_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

    reflection = reflection_pb2_grpc.ServerReflectionStub(
        shared_grid.channel(shared_grid.target, "operator", OPERATOR))
    call = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        timeout=UNARY_DEADLINE_S)
    names = set()
    async for response in call:
        names |= {s.name for s in response.list_services_response.service}
    assert {"evalgrid.v1.Operator", "evalgrid.v1.SiteLink", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_agent_services_admit_only_their_own_parties(shared_grid: Grid) -> None:
    site_a, site_b = (s.id for s in shared_grid.province.sites[:2])
    ws_a = shared_grid.workstations_of(site_a)[0]
    agent_a = shared_grid.agent_target(site_a)

    # A workstation certificate cannot use the desk; another site's staff cannot either.
    await shared_grid.booth(site_a, ws_a)  # issues the workstation certificate
    for role, subject in (("workstation", f"{site_a}/{ws_a}"), ("site", site_b),
                          ("operator", OPERATOR)):
        desk = booth_pb2_grpc.DeskStub(shared_grid.channel(agent_a, role, subject))
        error = await _refused(desk.Board(booth_pb2.BoardRequest(), timeout=UNARY_DEADLINE_S))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (role, subject)

    # The booth service takes only this site's workstations, each acting only as itself.
    ws_b = shared_grid.workstations_of(site_b)[0]
    await shared_grid.booth(site_b, ws_b)
    for role, subject, ws in (("site", site_a, ws_a),
                              ("workstation", f"{site_b}/{ws_b}", ws_b),
                              ("workstation", f"{site_a}/{ws_a}",
                               shared_grid.workstations_of(site_a)[1])):
        booth = booth_pb2_grpc.BoothStub(shared_grid.channel(agent_a, role, subject))
        error = await _refused(booth.Enrol(booth_pb2.EnrolRequest(
            request_id=request_id(), workstation_id=ws), timeout=UNARY_DEADLINE_S))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (role, subject, ws)
    own = booth_pb2_grpc.BoothStub(shared_grid.channel(agent_a, "workstation", f"{site_a}/{ws_a}"))
    enrolled = await own.Enrol(booth_pb2.EnrolRequest(request_id=request_id(),
                                                      workstation_id=ws_a),
                               timeout=UNARY_DEADLINE_S)
    assert enrolled.workstation_id == ws_a


async def test_a_site_cannot_sign_in_on_another_sites_session(shared_grid: Grid) -> None:
    """Runs last in this module: it opens an evaluation on the shared grid."""
    project = min(shared_grid.province.projects, key=lambda p: (p.window.start, p.id))
    assert not (await shared_grid.register(project)).duplicate
    _, notices = await shared_grid.draw(project.id)
    for notice in notices:
        assert await shared_grid.reply(notice["notice_id"], True) == "accepted"
    await shared_grid.advance_to(project.window.start)
    assert await shared_grid.start(project.id) == "evaluating"

    notice = notices[0]
    expert = shared_grid.experts[notice["expert_id"]]
    home = shared_grid.site_of_venue(notice["venue_id"])
    other = next(s.id for s in shared_grid.province.sites if s.id != home)
    home_link, other_link = shared_grid.site_link(home), shared_grid.site_link(other)

    # Another site cannot check the expert in, even with the right identity and code.
    error = await _refused(other_link.CheckIn(site_link_pb2.CheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    seat = await home_link.CheckIn(site_link_pb2.CheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    assert seat.session_id and seat.workstation_id

    # Nor sign in on the home site's session, nor read its form.
    sign_in = site_link_pb2.SignInRequest(
        request_id=request_id(), session_id=seat.session_id,
        workstation_id=seat.workstation_id, id_number=expert.id_number, code=notice["code"])
    error = await _refused(other_link.SignIn(sign_in, timeout=UNARY_DEADLINE_S))
    assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    error = await _refused(other_link.GetSheetForm(site_link_pb2.SheetFormRequest(
        session_id=seat.session_id), timeout=UNARY_DEADLINE_S))
    assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)

    # The home site can, and the expert is who the notice was sent to.
    signed = await home_link.SignIn(sign_in, timeout=UNARY_DEADLINE_S)
    assert signed.session_id == seat.session_id and signed.expert_name == expert.name
