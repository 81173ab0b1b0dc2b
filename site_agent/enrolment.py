"""Device-bound workstation enrolment: the agent's enrolment port, and the workstation's side.

A new (or re-imaged) booth PC has no certificate, so it cannot pass the agent's mutual-TLS
port. The flow:

1. site staff ask for a one-time activation code for workstation W (``Desk.IssueActivationCode``,
   or ``evalgrid workstation activate``); the coordinator makes it and audits it;
2. the workstation generates its own EC P-256 key pair (the private key never leaves it), and
   sends a CSR with the code to the agent's *enrolment port* (``Enrolment.Activate``): TLS with
   the site's certificate, verified by the workstation against the provincial ``ca.pem`` it was
   installed with, and no client certificate asked, because the device has none yet;
3. the agent relays CSR and code (``SiteLink.EnrolWorkstation``); the coordinator checks the
   code and signs a certificate for "SITE/W", where SITE is the relaying agent's certificate;
4. the workstation checks what came back (its own key, the CA's signature, the identity it
   asked for) and writes key and certificate into its PKI directory; from then on it talks to
   the agent's main port like before.

The enrolment port serves only this one RPC; everything else there is refused for lack of an
identity. On the main port the same RPC lets an enrolled workstation renew its key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc, site_link_pb2, site_link_pb2_grpc

from evalgrid.ids import request_id
from evalgrid.limits import ENROLMENT_PER_SOURCE, ENROLMENT_TOTAL
from evalgrid.pki.ca import make_csr
from evalgrid.pki.directory import CA_CERT_NAME, paths_for
from evalgrid.pki.identity import Identity, PkiError, identity_from_pem, validate_subject
from evalgrid.tls import SERVER_OPTIONS, SourceLimitInterceptor, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S

__all__ = [
    "Enrolled",
    "EnrolmentPort",
    "EnrolmentService",
    "enrol_workstation",
    "start_enrolment_port",
]

# The CSR is a few hundred bytes; nothing legitimate on this port is larger.
_MAX_BYTES = 16 * 1024


class EnrolmentService(booth_pb2_grpc.EnrolmentServicer):
    """Relays a workstation's CSR and code to the coordinator, answers with cert and CA.

    ``check_caller`` is the main port's binding check (the caller must be that workstation);
    on the enrolment port it is None: there is no caller identity, the code is the credential.
    """

    def __init__(self, site_id: str, link: site_link_pb2_grpc.SiteLinkStub, ca_pem: bytes,
                 check_caller: Callable[[str], object] | None) -> None:
        self.site_id = site_id
        self.link = link
        self.ca_pem = ca_pem
        self.check_caller = check_caller

    async def Activate(self, request: booth_pb2.ActivateRequest,
                       context: grpc.aio.ServicerContext) -> booth_pb2.ActivateReply:
        try:
            if self.check_caller is not None:
                self.check_caller(request.workstation_id)
            if not request.workstation_id or not request.activation_code or not request.csr_pem:
                missing = next(f for f in ("workstation_id", "activation_code", "csr_pem")
                               if not getattr(request, f))
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"{missing}: required for an enrolment")
            reply = await self.link.EnrolWorkstation(
                site_link_pb2.EnrolWorkstationRequest(
                    request_id=request.request_id or request_id(),
                    workstation_id=request.workstation_id,
                    activation_code=request.activation_code, csr_pem=request.csr_pem),
                timeout=UNARY_DEADLINE_S)
        except PermissionError as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc)[:500])
            raise
        except grpc.aio.AioRpcError as exc:
            # The coordinator's refusal (wrong, used or expired code) reaches the device as is.
            await context.abort(exc.code(), (exc.details() or "coordinator error")[:500])
            raise
        return booth_pb2.ActivateReply(workstation_id=reply.workstation_id,
                                       certificate_pem=reply.certificate_pem,
                                       ca_pem=self.ca_pem, serial=reply.serial)


@dataclass
class EnrolmentPort:
    server: grpc.aio.Server
    port: int


async def start_enrolment_port(*, bind: str, pki_dir: Path, site_id: str,
                               link: site_link_pb2_grpc.SiteLinkStub) -> EnrolmentPort:
    """Serve ``Enrolment.Activate`` with server-only TLS (the site's certificate)."""
    key_path, cert_path = paths_for(pki_dir, "site", site_id)
    credentials = grpc.ssl_server_credentials(
        [(key_path.read_bytes(), cert_path.read_bytes())], require_client_auth=False)
    options = [o for o in SERVER_OPTIONS if "message_length" not in o[0]]
    # Anyone on the site's network can reach this port: each source address, and the port as
    # a whole, has a small budget, spent before a byte is decoded or relayed.
    server = grpc.aio.server(
        interceptors=[SourceLimitInterceptor(ENROLMENT_PER_SOURCE, ENROLMENT_TOTAL)],
        options=[*options, ("grpc.max_receive_message_length", _MAX_BYTES),
                 ("grpc.max_send_message_length", _MAX_BYTES)])
    ca_pem = (Path(pki_dir) / CA_CERT_NAME).read_bytes()
    booth_pb2_grpc.add_EnrolmentServicer_to_server(
        EnrolmentService(site_id, link, ca_pem, check_caller=None), server)
    port = server.add_secure_port(bind, credentials)
    if port == 0:
        raise RuntimeError(f"could not bind the enrolment port {bind}")
    await server.start()
    return EnrolmentPort(server, port)


# --- the workstation's side ----------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    identity: Identity
    key_path: Path
    cert_path: Path
    serial: str


async def enrol_workstation(*, pki_dir: Path, site_id: str, workstation_id: str, agent: str,
                            activation_code: str) -> Enrolled:
    """Make a key pair here, enrol it at ``agent``'s enrolment port, store key and cert.

    ``pki_dir`` must hold the provincial ``ca.pem`` (installed with the workstation): it is what
    the workstation trusts the agent by. Raises ``grpc.aio.AioRpcError`` with the coordinator's
    reason when the code is refused, ``PkiError`` when what came back is not right.
    """
    subject = f"{site_id}/{workstation_id}"
    validate_subject("workstation", subject)
    pki_dir = Path(pki_dir)
    ca_path = pki_dir / CA_CERT_NAME
    if not ca_path.is_file():
        raise PkiError(f"missing {ca_path}: install the provincial CA certificate first")
    ca_pem = ca_path.read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    channel = secure_channel(agent, grpc.ssl_channel_credentials(root_certificates=ca_pem))
    try:
        reply = await booth_pb2_grpc.EnrolmentStub(channel).Activate(
            booth_pb2.ActivateRequest(request_id=request_id(), workstation_id=workstation_id,
                                      activation_code=activation_code,
                                      csr_pem=make_csr(key, "workstation", subject)),
            timeout=UNARY_DEADLINE_S)
    finally:
        await channel.close()
    cert_pem = bytes(reply.certificate_pem)
    _check_issued(cert_pem, key, ca_pem, Identity("workstation", subject))
    key_path, cert_path = paths_for(pki_dir, "workstation", subject)
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert_pem, 0o644)
    return Enrolled(Identity("workstation", subject), key_path, cert_path, reply.serial)


def _check_issued(cert_pem: bytes, key: ec.EllipticCurvePrivateKey, ca_pem: bytes,
                  wanted: Identity) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except Exception as exc:
        raise PkiError(f"certificate_pem: not a certificate of the provincial CA ({exc})") from exc
    if cert.public_key() != key.public_key():
        raise PkiError("certificate_pem: it is not for the key this workstation made")
    if identity_from_pem(cert_pem) != wanted:
        raise PkiError(f"certificate_pem: it is not for {wanted}")


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
