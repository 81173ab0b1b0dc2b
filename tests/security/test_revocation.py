"""Revocation: a CA-signed CRL, enforced on the next call and on streams already open.

On the in-process grid: an operator with an open Watch stream and a site agent with its
Connect stream are revoked; both streams end (UNAUTHENTICATED, "revoked"), new calls are
refused, everyone else carries on, and each revocation is on the audit trail. The CRL reaches
the other agents over their links (each agent has its own PKI folder in the grid), and a
revoked workstation is refused by its agent. Then the pieces on their own: the interceptor on
every handler kind, CRL verification (another CA, rollback, a damaged file) and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from evalgrid_wire.v1 import operator_pb2, site_link_pb2
from grid_fixture import OPERATOR, Grid, start_grid

from app.cli.main import main as cli_main
from evalgrid.ids import request_id
from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.crl import revoke
from evalgrid.pki.directory import CRL_NAME
from evalgrid.pki.identity import Identity, PkiError
from evalgrid.revocation import RevocationError, RevocationGuard, Revocations, install_crl
from evalgrid.tls import (
    KEEPALIVE_OPTIONS,
    IdentityInterceptor,
    channel_credentials,
    secure_channel,
    server_credentials,
)
from evalgrid.wire import UNARY_DEADLINE_S

# Safety nets only: every wait below ends on an event long before these.
END_OF_STREAM_S = 15.0


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def _stream_end(call: grpc.aio.UnaryStreamCall | grpc.aio.StreamStreamCall
                      ) -> grpc.aio.AioRpcError:
    """Read until the stream ends; return how it ended (it must end with an error)."""
    async def drain() -> grpc.aio.AioRpcError:
        try:
            while (await call.read()) is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc
        raise AssertionError("the stream ended cleanly instead of being closed as revoked")
    return await asyncio.wait_for(drain(), END_OF_STREAM_S)


async def _audit_until(grid: Grid, after: int, kinds: set[tuple[str, str]]
                       ) -> list[operator_pb2.Event]:
    """Audit entries after `after` until every (kind, subject) in `kinds` was seen."""
    seen: list[operator_pb2.Event] = []
    call = grid.operator.Watch(operator_pb2.WatchRequest(after_id=str(after)))
    try:
        async def until() -> None:
            async for event in call:
                seen.append(event)
                if kinds <= {(e.kind, e.subject) for e in seen}:
                    return
        await asyncio.wait_for(until(), END_OF_STREAM_S)
    finally:
        call.cancel()
    return seen


@pytest.fixture
async def grid() -> AsyncIterator[Grid]:
    async with start_grid(seed=17) as g:
        yield g


async def test_revoked_operator_and_site_lose_their_streams_and_calls(grid: Grid) -> None:
    sites = [s.id for s in grid.province.sites]
    victim_site, witness_site = sites[0], sites[1]
    await asyncio.to_thread(issue, grid.data.pki, "operator", "op-leaver")
    leaver = grid.operator_as("operator", "op-leaver")
    head = (await grid.operator.Status(operator_pb2.StatusRequest(),
                                       timeout=UNARY_DEADLINE_S))
    assert head.sites_online == len(sites)
    start = (await grid.operator.Watch(operator_pb2.WatchRequest(tail=1)).read()).id

    # Open streams: the leaver's audit feed and grid view, a colleague's audit feed, and a
    # booth that will be revoked at the witness site.
    leaver_watch = leaver.Watch(operator_pb2.WatchRequest(tail=1))
    leaver_grid = leaver.WatchGrid(operator_pb2.WatchGridRequest())
    colleague = grid.operator.Watch(operator_pb2.WatchRequest(tail=1))
    for call in (leaver_watch, leaver_grid, colleague):
        assert (await call.read()) is not grpc.aio.EOF
    ws_gone, ws_kept = grid.workstations_of(witness_site)[:2]
    gone = await grid.booth(witness_site, ws_gone)
    kept = await grid.booth(witness_site, ws_kept)
    await gone.enrol()
    await kept.enrol()

    first = await asyncio.to_thread(revoke, grid.data.pki,
                                    identity=Identity("operator", "op-leaver"),
                                    reason="affiliation_changed")
    second = await asyncio.to_thread(revoke, grid.data.pki,
                                     identity=Identity("site", victim_site),
                                     reason="key_compromise")
    third = await asyncio.to_thread(revoke, grid.data.pki,
                                    identity=Identity("workstation",
                                                      f"{witness_site}/{ws_gone}"))
    assert (first.crl_number, second.crl_number, third.crl_number) == (1, 2, 3)

    # The leaver's open streams are closed, naming the revocation.
    for call in (leaver_watch, leaver_grid):
        ended = await _stream_end(call)
        assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (ended.details() or "")
        assert "operator:op-leaver" in (ended.details() or "")
    # ... and so is the victim site's Connect: the coordinator audits the disconnection.
    events = await _audit_until(grid, int(start), {
        ("site.disconnected", victim_site),
        ("certificate.revoked", "operator:op-leaver"),
        ("certificate.revoked", f"site:{victim_site}"),
        ("certificate.revoked", f"workstation:{witness_site}/{ws_gone}"),
    })
    revoked = {e.subject: e for e in events if e.kind == "certificate.revoked"}
    assert f'"serial": "{first.serials[0]:x}"' in revoked["operator:op-leaver"].detail_json
    assert "keyCompromise" in revoked[f"site:{victim_site}"].detail_json

    # New calls with the revoked certificates are refused.
    for call in (leaver.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S),
                 grid.site_link(victim_site).RegisterSite(site_link_pb2.RegisterSiteRequest(
                     request_id=request_id(), inventory=grid.agents[victim_site].inventory),
                     timeout=UNARY_DEADLINE_S)):
        error = await _refused(call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (error.details() or "")

    # The witness agent got the list over its link (its own PKI folder), installed it, and
    # refuses the revoked booth; the other booth at that site carries on.
    witness = grid.agents[witness_site]
    assert witness.config.pki_dir != grid.data.pki
    await asyncio.wait_for(witness.revocations.wait_for(third.crl_number), END_OF_STREAM_S)
    installed = x509.load_pem_x509_crl((witness.config.pki_dir / CRL_NAME).read_bytes())
    assert {e.serial_number for e in installed} >= {*first.serials, *third.serials}
    error = await _refused(gone.heartbeat())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in str(error.details())
    assert (await kept.heartbeat()).state

    # Everyone else is unaffected: the colleague's stream still delivers, sites stay online.
    assert (await asyncio.wait_for(colleague.read(), END_OF_STREAM_S)) is not grpc.aio.EOF
    status = await grid.operator.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S)
    assert status.sites_online == len(sites) - 1
    board = await grid.board(witness_site)
    assert board.coordinator_connected
    colleague.cancel()


# --- the interceptor on its own, on every streaming handler kind -------------------------------


async def _forever(request: bytes, context: object) -> AsyncIterator[bytes]:
    yield b"open"
    await asyncio.Event().wait()


async def _writer(request: bytes, context: grpc.aio.ServicerContext) -> None:
    await context.write(b"open")
    await asyncio.Event().wait()


async def _chat(requests: AsyncIterator[bytes], context: object) -> AsyncIterator[bytes]:
    yield b"open"
    async for item in requests:
        yield item


async def _ping(request: bytes, context: object) -> bytes:
    return b"pong"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    init_ca(d)
    for role, subject in (("coordinator", "c"), ("operator", "alice"), ("operator", "bob")):
        issue(d, role, subject)
    return d


async def test_the_guard_closes_every_kind_of_stream_and_refuses_new_calls(pki: Path) -> None:
    revocations = Revocations(pki)
    server = grpc.aio.server(interceptors=[IdentityInterceptor(), RevocationGuard(revocations)],
                             options=KEEPALIVE_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Probe", {
        "Forever": grpc.unary_stream_rpc_method_handler(_forever),
        "Writer": grpc.unary_stream_rpc_method_handler(_writer),
        "Chat": grpc.stream_stream_rpc_method_handler(_chat),
        "Ping": grpc.unary_unary_rpc_method_handler(_ping),
    }),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki, "coordinator", "c"))
    await server.start()
    watcher = asyncio.create_task(revocations.watch(interval_s=0.05))
    alice = secure_channel(f"127.0.0.1:{port}", channel_credentials(pki, "operator", "alice"))
    bob = secure_channel(f"127.0.0.1:{port}", channel_credentials(pki, "operator", "bob"))
    quiet: asyncio.Queue[bytes] = asyncio.Queue()

    async def no_requests() -> AsyncIterator[bytes]:
        yield await quiet.get()

    try:
        streams = [alice.unary_stream("/t.Probe/Forever")(b""),
                   alice.unary_stream("/t.Probe/Writer")(b""),
                   alice.stream_stream("/t.Probe/Chat")(no_requests())]
        bobs = bob.unary_stream("/t.Probe/Forever")(b"")
        for call in [*streams, bobs]:
            assert await call.read() == b"open"
        assert revocations.view.number == 0
        await asyncio.to_thread(revoke, pki, identity=Identity("operator", "alice"))
        for call in streams:
            ended = await _stream_end(call)
            assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "operator:alice" in (ended.details() or "")
        error = await _refused(alice.unary_unary("/t.Probe/Ping")(b"", timeout=5))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await bob.unary_unary("/t.Probe/Ping")(b"", timeout=5) == b"pong"
        assert not bobs.done()
        bobs.cancel()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await alice.close()
        await bob.close()
        await server.stop(None)


# --- the list: verified, never rolled back, never lost to a damaged file ------------------------


def test_a_pushed_list_must_be_signed_by_our_ca_and_newer(pki: Path, tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.mkdir()
    shutil.copy(pki / "ca.pem", agent / "ca.pem")
    one = revoke(pki, identity=Identity("operator", "alice"))
    first = (pki / CRL_NAME).read_bytes()
    assert install_crl(agent, first) is not None
    revoke(pki, identity=Identity("operator", "bob"))
    second = (pki / CRL_NAME).read_bytes()
    assert install_crl(agent, second) is not None
    assert install_crl(agent, first) is None  # an older list never replaces a newer one
    assert (agent / CRL_NAME).read_bytes() == second

    other = tmp_path / "other"
    init_ca(other)
    issue(other, "operator", "mallory")
    revoke(other, identity=Identity("operator", "mallory"))
    with pytest.raises(RevocationError, match="not signed by this provincial CA"):
        install_crl(agent, (other / CRL_NAME).read_bytes())
    assert Revocations(agent).is_revoked(one.serials[0])


def test_a_damaged_list_keeps_the_revocations_in_force(pki: Path) -> None:
    done = revoke(pki, identity=Identity("operator", "alice"), reason="key_compromise")
    revocations = Revocations(pki)
    assert revocations.is_revoked(done.serials[0])
    (pki / CRL_NAME).write_bytes(b"-----BEGIN X509 CRL-----\nnot a list\n-----END X509 CRL-----\n")
    assert revocations.reload() == frozenset()
    assert revocations.is_revoked(done.serials[0])


def test_revoke_is_idempotent_and_names_what_is_missing(pki: Path) -> None:
    first = revoke(pki, identity=Identity("operator", "alice"))
    again = revoke(pki, identity=Identity("operator", "alice"))
    assert again.serials == () and again.already == first.serials
    issue(pki, "operator", "alice")  # re-issued: revoking alice covers both certificates
    both = revoke(pki, identity=Identity("operator", "alice"))
    assert len(both.serials) == 1 and both.already == first.serials
    with pytest.raises(PkiError, match="no certificate was issued to operator:nobody"):
        revoke(pki, identity=Identity("operator", "nobody"))
    with pytest.raises(PkiError, match="invalid reason"):
        revoke(pki, identity=Identity("operator", "bob"), reason="because")


def test_cli_pki_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    assert cli_main(["pki", "init", "--data-dir", str(data)]) == 0
    assert cli_main(["pki", "issue", "operator", OPERATOR, "--data-dir", str(data)]) == 0
    serial = x509.load_pem_x509_certificate(
        (data / "pki" / "operator" / f"{OPERATOR}.pem").read_bytes()).serial_number
    assert cli_main(["pki", "revoke", "operator", OPERATOR, "--reason", "key_compromise",
                     "--data-dir", str(data)]) == 0
    assert f"{serial:x}" in capsys.readouterr().out
    crl = x509.load_pem_x509_crl((data / "pki" / CRL_NAME).read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    assert cli_main(["pki", "revoke", "--serial", "zz", "--data-dir", str(data)]) == 2
    assert "--serial" in capsys.readouterr().err
    assert cli_main(["pki", "revoke", "auditor", "nobody", "--data-dir", str(data)]) == 2
    assert "no certificate was issued to auditor:nobody" in capsys.readouterr().err
    assert cli_main(["pki", "revoke", "--serial", f"{serial:x}", "--data-dir", str(data)]) == 0
