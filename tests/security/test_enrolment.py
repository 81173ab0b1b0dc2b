"""Device-bound workstation enrolment on the in-process grid.

The desk issues a one-time code; the workstation makes its own key, enrols over the agent's
enrolment port (TLS without a client certificate) and gets a "SITE/WS" certificate signed by
the provincial CA for exactly that key. Wrong, used and expired codes are refused clearly and
audited, never with the code; a code is for one workstation of one site. An enrolled
workstation acts only at its own site, only as itself, and only for its signed-in expert.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc, operator_pb2
from grid_fixture import EVENING_BEFORE, Grid, start_grid

from coordinator.enrolment import MAX_WRONG, VALID_FOR
from evalgrid.ids import request_id
from evalgrid.pki.ca import make_csr
from evalgrid.pki.directory import paths_for
from evalgrid.pki.identity import identity_from_pem
from evalgrid.tls import secure_channel
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.booth_terminal import BoothTerminal
from site_agent.enrolment import enrol_workstation

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def grid() -> AsyncIterator[Grid]:
    async with start_grid(seed=19) as g:
        yield g


def device(grid: Grid, name: str) -> Path:
    """A fresh workstation disk: only the provincial CA certificate is installed on it."""
    pki = grid.root / "devices" / name
    pki.mkdir(parents=True)
    shutil.copy(grid.data.pki / "ca.pem", pki / "ca.pem")
    return pki


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _enrol(grid: Grid, pki: Path, site: str, ws: str, code: str,
                 at: str | None = None) -> object:
    return await enrol_workstation(pki_dir=pki, site_id=site, workstation_id=ws,
                                   agent=at or grid.enrol_target(site), activation_code=code)


async def _audit(grid: Grid, after: int) -> list[operator_pb2.Event]:
    """The audit entries after `after`, up to the head now."""
    head = await _head(grid)
    call = grid.operator.Watch(operator_pb2.WatchRequest(after_id=str(after)))
    events = []
    async for event in call:
        events.append(event)
        if int(event.id) >= head:
            break
    call.cancel()
    return events


async def _head(grid: Grid) -> int:
    return int((await grid.operator.Watch(operator_pb2.WatchRequest(tail=1)).read()).id)


async def test_a_workstation_enrols_its_own_key_with_a_one_time_code(grid: Grid) -> None:
    site = grid.province.sites[0].id
    ws = grid.workstations_of(site)[0]
    pki = device(grid, "first")
    start = await _head(grid)
    code = await grid.activation_code(site, ws)
    await _enrol(grid, pki, site, ws, code)

    key_path, cert_path = paths_for(pki, "workstation", f"{site}/{ws}")
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()  # the key made on the device, nowhere else
    assert key_path.stat().st_mode & 0o077 == 0
    assert str(identity_from_pem(cert_path.read_bytes())) == f"workstation:{site}/{ws}"
    cert.verify_directly_issued_by(
        x509.load_pem_x509_certificate((grid.data.pki / "ca.pem").read_bytes()))

    booth = BoothTerminal(pki_dir=pki, site_id=site, workstation_id=ws,
                          agent=grid.agent_target(site))
    try:
        assert (await booth.enrol()).workstation_id == ws
    finally:
        await booth.close()

    # The code is single-use.
    error = await _refused(_enrol(grid, device(grid, "again"), site, ws, code))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no activation code is pending" in (error.details() or "")

    events = await _audit(grid, start)
    kinds = [(e.kind, json.loads(e.detail_json).get("reason")) for e in events]
    assert ("workstation.activation_issued", None) in kinds
    assert ("workstation.enrolled", None) in kinds
    assert ("workstation.enrol_refused", "no code") in kinds
    enrolled = next(e for e in events if e.kind == "workstation.enrolled")
    assert json.loads(enrolled.detail_json)["serial"] == f"{cert.serial_number:x}"
    bare = code.replace("-", "")
    assert not any(bare in e.detail_json or code in e.detail_json for e in events)


async def test_wrong_codes_are_counted_and_burn_the_code(grid: Grid) -> None:
    site = grid.province.sites[1].id
    ws = grid.workstations_of(site)[0]
    pki = device(grid, "guesser")
    code = await grid.activation_code(site, ws)
    wrong = "AAAA-AAAA" if code != "AAAA-AAAA" else "BBBB-BBBB"
    start = await _head(grid)
    for attempt in range(1, MAX_WRONG + 1):
        error = await _refused(_enrol(grid, pki, site, ws, wrong))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "wrong activation code" in (error.details() or ""), attempt
    assert "no longer valid" in (error.details() or "")
    # Burned: even the right code is gone now.
    error = await _refused(_enrol(grid, pki, site, ws, code))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not paths_for(pki, "workstation", f"{site}/{ws}")[1].exists()
    # Audited in aggregate: the 1st, 2nd, 4th... refusal of a window, with the count so far.
    refused = [json.loads(e.detail_json) for e in await _audit(grid, start)
               if e.kind == "workstation.enrol_refused"]
    assert 0 < len(refused) < MAX_WRONG + 1
    counts = [r["refusals_in_window"] for r in refused]
    assert counts == sorted(counts) and all(c & (c - 1) == 0 for c in counts)


async def test_a_code_is_for_one_workstation_of_one_site(grid: Grid) -> None:
    site, other = (s.id for s in grid.province.sites[2:4])
    ws, ws2 = grid.workstations_of(site)[:2]
    code = await grid.activation_code(site, ws)
    # Not for another workstation of the same site, not at another site's agent.
    error = await _refused(_enrol(grid, device(grid, "twin"), site, ws2, code))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = await _refused(_enrol(grid, device(grid, "abroad"), site, ws, code,
                                  at=grid.enrol_target(other)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # Staff of another site cannot ask for this site's codes; a workstation elsewhere is refused.
    error = await _refused(grid.desk(other).IssueActivationCode(booth_pb2.DeskActivationRequest(
        request_id=request_id(), workstation_id=ws), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not at site" in (error.details() or "")
    foreign = booth_pb2_grpc.DeskStub(grid.channel(grid.agent_target(site), "site", other))
    error = await _refused(foreign.IssueActivationCode(booth_pb2.DeskActivationRequest(
        request_id=request_id(), workstation_id=ws), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # A CSR that names another workstation is refused whatever the code.
    key = ec.generate_private_key(ec.SECP256R1())
    bootstrap = grid.track(secure_channel(  # server-only TLS, as a device without a cert
        grid.enrol_target(site),
        grpc.ssl_channel_credentials((grid.data.pki / "ca.pem").read_bytes())))
    stub = booth_pb2_grpc.EnrolmentStub(bootstrap)
    error = await _refused(stub.Activate(booth_pb2.ActivateRequest(
        request_id=request_id(), workstation_id=ws, activation_code=code,
        csr_pem=make_csr(key, "workstation", f"{site}/{ws2}")), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "csr_pem" in (error.details() or "") and ws2 in (error.details() or "")
    # The enrolment port answers nothing else: no identity there.
    error = await _refused(booth_pb2_grpc.BoothStub(bootstrap).Heartbeat(
        booth_pb2.HeartbeatRequest(workstation_id=ws), timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    # The right code still works for the right workstation afterwards.
    await _enrol(grid, device(grid, "rightful"), site, ws, code)


async def test_an_expired_code_is_refused(grid: Grid) -> None:
    site = grid.province.sites[4].id
    ws = grid.workstations_of(site)[0]
    code = await grid.activation_code(site, ws)
    await grid.advance_to(EVENING_BEFORE + VALID_FOR + timedelta(minutes=1))
    error = await _refused(_enrol(grid, device(grid, "late"), site, ws, code))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (error.details() or "")


async def test_an_enrolled_workstation_acts_only_here_as_itself_for_its_expert(
        grid: Grid) -> None:
    site, other = (s.id for s in grid.province.sites[:2])
    ws, ws2 = grid.workstations_of(site)[:2]
    await grid.enrol(site, ws)
    mine = booth_pb2_grpc.BoothStub(grid.channel(grid.agent_target(site), "workstation",
                                                 f"{site}/{ws}"))
    abroad = booth_pb2_grpc.BoothStub(grid.channel(grid.agent_target(other), "workstation",
                                                   f"{site}/{ws}"))
    error = await _refused(abroad.Heartbeat(booth_pb2.HeartbeatRequest(workstation_id=ws),
                                            timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await _refused(mine.Heartbeat(booth_pb2.HeartbeatRequest(workstation_id=ws2),
                                          timeout=UNARY_DEADLINE_S))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nobody is signed in here: nothing of any expert's session is reachable.
    for call in (mine.GetSheetForm(booth_pb2.BoothFormRequest(workstation_id=ws),
                                   timeout=UNARY_DEADLINE_S),
                 mine.Review(booth_pb2.BoothFormRequest(workstation_id=ws),
                             timeout=UNARY_DEADLINE_S)):
        error = await _refused(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await mine.Heartbeat(booth_pb2.HeartbeatRequest(workstation_id=ws),
                                 timeout=UNARY_DEADLINE_S)).state
