"""Mutual TLS over real grpc.aio sockets on loopback, and the identity interceptor."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.identity import PkiError, Role
from evalgrid.tls import (
    AUTH_CONTEXT_CERT_KEY,
    KEEPALIVE_OPTIONS,
    IdentityInterceptor,
    NoIdentityError,
    PermissionDeniedError,
    channel_credentials,
    current_identity,
    new_server,
    require_role,
    secure_channel,
    server_credentials,
)

TIMEOUT = 5.0
SERVICE = "evalgrid.test.Probe"


def _who() -> bytes:
    return str(current_identity()).encode()


# One method per handler kind grpc.aio dispatches on; each reports the identity it saw.
async def who(request: bytes, context: Any) -> bytes:
    return _who()


def who_sync(request: bytes, context: Any) -> bytes:
    return _who()


async def stream_gen(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for _ in range(2):
        yield _who()


def stream_sync(request: bytes, context: Any) -> Iterator[bytes]:
    for _ in range(2):
        yield _who()


async def stream_writer(request: bytes, context: Any) -> None:
    await context.write(_who())
    await context.write(_who())


async def collect(requests: AsyncIterator[bytes], context: Any) -> bytes:
    count = sum([1 async for _ in requests])
    return _who() + b"#" + str(count).encode()


async def chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for item in requests:
        yield item + b"@" + _who()


async def draw(request: bytes, context: Any) -> bytes:
    identity = require_role("operator", action="start a draw")
    return identity.subject.encode()


def _probe_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Who": grpc.unary_unary_rpc_method_handler(who),
            "WhoSync": grpc.unary_unary_rpc_method_handler(who_sync),
            "StreamGen": grpc.unary_stream_rpc_method_handler(stream_gen),
            "StreamSync": grpc.unary_stream_rpc_method_handler(stream_sync),
            "StreamWriter": grpc.unary_stream_rpc_method_handler(stream_writer),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Draw": grpc.unary_unary_rpc_method_handler(draw),
        },
    )


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    init_ca(d)
    issue(d, "coordinator", "coord")
    issue(d, "site", "S1")
    issue(d, "operator", "alice")
    issue(d, "workstation", "S1/W7")
    return d


@pytest.fixture
def other_pki(tmp_path: Path) -> Path:
    """A second CA with the same names: only the keys differ, as with an impostor."""
    d = tmp_path / "other"
    init_ca(d)
    issue(d, "coordinator", "coord")
    issue(d, "site", "S1")
    return d


@asynccontextmanager
async def serving(
    creds: grpc.ServerCredentials, *, allowed_roles: tuple[Role, ...] | None = None
) -> AsyncIterator[str]:
    """A coordinator-like server on an ephemeral loopback port; yields its target."""
    pool = ThreadPoolExecutor(max_workers=2)
    server = new_server(allowed_roles=allowed_roles, migration_thread_pool=pool)
    server.add_generic_rpc_handlers((_probe_handler(),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    assert port > 0
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        pool.shutdown(wait=True)


async def _health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    status: int = reply.status
    return status


async def _call_who(channel: grpc.aio.Channel) -> bytes:
    reply: bytes = await channel.unary_unary(f"/{SERVICE}/Who")(b"", timeout=TIMEOUT)
    return reply


async def _expect_error(
    call: Callable[[], Any], code: grpc.StatusCode
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await call()
    assert excinfo.value.code() == code, excinfo.value.details()
    return excinfo.value


def _ca_signed_cert_without_identity(pki_dir: Path) -> tuple[bytes, bytes]:
    """A client cert the CA really signed, but with no evalgrid identity in it."""
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate((pki_dir / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "S1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


# --- happy path --------------------------------------------------------------------------------


async def test_site_client_is_served_and_identified(pki_dir: Path) -> None:
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        creds = channel_credentials(pki_dir, "site", "S1")
        async with secure_channel(target, creds) as channel:
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert await _call_who(channel) == b"site:S1"


async def test_every_handler_kind_sees_the_identity(pki_dir: Path) -> None:
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        creds = channel_credentials(pki_dir, "workstation", "S1/W7")
        async with secure_channel(target, creds) as channel:
            me = b"workstation:S1/W7"
            sync_reply = await channel.unary_unary(f"/{SERVICE}/WhoSync")(b"", timeout=TIMEOUT)
            assert sync_reply == me
            for name in ("StreamGen", "StreamSync", "StreamWriter"):
                call = channel.unary_stream(f"/{SERVICE}/{name}")(b"", timeout=TIMEOUT)
                assert [m async for m in call] == [me, me], name
            collected = await channel.stream_unary(f"/{SERVICE}/Collect")(
                iter([b"a", b"b", b"c"]), timeout=TIMEOUT
            )
            assert collected == me + b"#3"
            chat = channel.stream_stream(f"/{SERVICE}/Chat")
            chat_call = chat(iter([b"x", b"y"]), timeout=TIMEOUT)
            assert [m async for m in chat_call] == [b"x@" + me, b"y@" + me]


async def test_the_server_sees_the_identity_not_a_request_field(pki_dir: Path) -> None:
    """Whatever the request says, the answer is the certificate's identity."""
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        creds = channel_credentials(pki_dir, "operator", "alice")
        async with secure_channel(target, creds) as channel:
            reply = await channel.unary_unary(f"/{SERVICE}/Who")(b"site:S1", timeout=TIMEOUT)
            assert reply == b"operator:alice"


# --- refused at the TLS handshake --------------------------------------------------------------


async def test_client_without_a_certificate_is_refused(pki_dir: Path) -> None:
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        creds = grpc.ssl_channel_credentials(root_certificates=(pki_dir / "ca.pem").read_bytes())
        async with secure_channel(target, creds) as channel:
            await _expect_error(lambda: _call_who(channel), grpc.StatusCode.UNAVAILABLE)
            await _expect_error(lambda: _health(channel), grpc.StatusCode.UNAVAILABLE)


async def test_client_cert_from_another_ca_is_refused(pki_dir: Path, other_pki: Path) -> None:
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        foreign = channel_credentials(other_pki, "site", "S1")
        # Same identity, same names; the client even trusts the right CA for the server.
        mixed = grpc.ssl_channel_credentials(
            root_certificates=(pki_dir / "ca.pem").read_bytes(),
            private_key=(other_pki / "site" / "S1.key").read_bytes(),
            certificate_chain=(other_pki / "site" / "S1.pem").read_bytes(),
        )
        for creds in (foreign, mixed):
            async with secure_channel(target, creds) as channel:
                await _expect_error(lambda: _call_who(channel), grpc.StatusCode.UNAVAILABLE)


async def test_server_cert_from_another_ca_is_refused_by_the_client(
    pki_dir: Path, other_pki: Path
) -> None:
    # An impostor coordinator that even trusts our CA, so only the client's check can stop it.
    impostor = grpc.ssl_server_credentials(
        [
            (
                (other_pki / "coordinator" / "coord.key").read_bytes(),
                (other_pki / "coordinator" / "coord.pem").read_bytes(),
            )
        ],
        root_certificates=(pki_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    async with serving(impostor) as target:
        creds = channel_credentials(pki_dir, "site", "S1")
        async with secure_channel(target, creds) as channel:
            await _expect_error(lambda: _call_who(channel), grpc.StatusCode.UNAVAILABLE)


# --- refused by the interceptor ----------------------------------------------------------------


async def test_no_certificate_is_unauthenticated_when_tls_does_not_require_one(
    pki_dir: Path,
) -> None:
    """A misconfigured server (client auth optional) still refuses anonymous calls."""
    lax = grpc.ssl_server_credentials(
        [
            (
                (pki_dir / "coordinator" / "coord.key").read_bytes(),
                (pki_dir / "coordinator" / "coord.pem").read_bytes(),
            )
        ],
        root_certificates=(pki_dir / "ca.pem").read_bytes(),
        require_client_auth=False,
    )
    async with serving(lax) as target:
        creds = grpc.ssl_channel_credentials(root_certificates=(pki_dir / "ca.pem").read_bytes())
        async with secure_channel(target, creds) as channel:
            err = await _expect_error(lambda: _call_who(channel), grpc.StatusCode.UNAUTHENTICATED)
            assert "no client certificate" in (err.details() or "")
            # Health is exempt from the identity check.
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_ca_signed_cert_without_identity_is_unauthenticated(pki_dir: Path) -> None:
    key_pem, cert_pem = _ca_signed_cert_without_identity(pki_dir)
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        creds = grpc.ssl_channel_credentials(
            root_certificates=(pki_dir / "ca.pem").read_bytes(),
            private_key=key_pem,
            certificate_chain=cert_pem,
        )
        async with secure_channel(target, creds) as channel:
            for method in ("Who", "WhoSync"):
                call = functools.partial(
                    channel.unary_unary(f"/{SERVICE}/{method}"), b"", timeout=TIMEOUT
                )
                err = await _expect_error(call, grpc.StatusCode.UNAUTHENTICATED)
                assert "no usable evalgrid identity" in (err.details() or ""), method
            stream = channel.unary_stream(f"/{SERVICE}/StreamGen")
            err = await _expect_error(
                lambda: _drain(stream(b"", timeout=TIMEOUT)), grpc.StatusCode.UNAUTHENTICATED
            )
            assert "no usable evalgrid identity" in (err.details() or "")
            # Any CA-signed cert may still ask for health.
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def _drain(call: Any) -> list[bytes]:
    return [m async for m in call]


async def test_require_role_denies_with_role_and_action(pki_dir: Path) -> None:
    async with serving(server_credentials(pki_dir, "coordinator", "coord")) as target:
        async with secure_channel(target, channel_credentials(pki_dir, "site", "S1")) as channel:
            call = channel.unary_unary(f"/{SERVICE}/Draw")
            err = await _expect_error(
                lambda: call(b"", timeout=TIMEOUT), grpc.StatusCode.PERMISSION_DENIED
            )
            details = err.details() or ""
            assert "'site'" in details
            assert "start a draw" in details
            assert "operator" in details
        op = channel_credentials(pki_dir, "operator", "alice")
        async with secure_channel(target, op) as channel:
            reply = await channel.unary_unary(f"/{SERVICE}/Draw")(b"", timeout=TIMEOUT)
            assert reply == b"alice"


async def test_allowed_roles_refuses_other_roles_at_the_door(pki_dir: Path) -> None:
    creds = server_credentials(pki_dir, "coordinator", "coord")
    async with serving(creds, allowed_roles=("site", "operator")) as target:
        ws = channel_credentials(pki_dir, "workstation", "S1/W7")
        async with secure_channel(target, ws) as channel:
            err = await _expect_error(
                lambda: _call_who(channel), grpc.StatusCode.PERMISSION_DENIED
            )
            assert "'workstation'" in (err.details() or "")
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
        site = channel_credentials(pki_dir, "site", "S1")
        async with secure_channel(target, site) as channel:
            assert await _call_who(channel) == b"site:S1"


# --- units -------------------------------------------------------------------------------------


def test_current_identity_outside_an_rpc_raises() -> None:
    with pytest.raises(NoIdentityError):
        current_identity()


def test_require_role_outside_an_rpc_is_denied() -> None:
    with pytest.raises(PermissionDeniedError, match="unauthenticated caller may not seal") as exc:
        require_role("operator", action="seal")
    assert exc.value.action == "seal"
    assert exc.value.identity is None


def test_credentials_need_issued_files(pki_dir: Path) -> None:
    with pytest.raises(PkiError, match="missing"):
        server_credentials(pki_dir, "site", "S404")
    with pytest.raises(PkiError, match="invalid role"):
        channel_credentials(pki_dir, "root", "x")


def test_keepalive_options_are_consistent() -> None:
    opts = dict(KEEPALIVE_OPTIONS)
    assert len(opts) == len(KEEPALIVE_OPTIONS)
    # The server must accept pings at least as often as the client sends them, or it GOAWAYs.
    assert opts["grpc.http2.min_ping_interval_without_data_ms"] <= opts["grpc.keepalive_time_ms"]
    assert opts["grpc.keepalive_permit_without_calls"] == 1
    assert opts["grpc.max_send_message_length"] == 4 * 1024 * 1024
    assert opts["grpc.max_receive_message_length"] == 4 * 1024 * 1024


def test_interceptor_and_cert_key_are_public() -> None:
    assert AUTH_CONTEXT_CERT_KEY == "x509_pem_cert"
    assert isinstance(IdentityInterceptor(), grpc.aio.ServerInterceptor)
