"""The PKI directory on disk: where each file lives, how one is written, and loading a
party's files back.

Layout of a PKI directory::

    ca.key  ca.pem                          # the CA (key mode 0600)
    <role>/<subject>.key  <role>/<subject>.pem
    workstation/<site_id>/<ws_id>.key ...   # a workstation's "SITE/WS" id becomes a sub-folder
    issued.jsonl                            # every certificate issued: serial and identity
    crl.pem                                 # the signed revocation list (``revoke``)

Keys are written unencrypted because gRPC cannot read encrypted PEM keys; the file mode (0600)
and the directory mode (0700) are what protect them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evalgrid.pki.identity import Identity, PkiError, ec_public, identity_from_pem, validate_subject

CA_KEY_NAME: Final = "ca.key"
CA_CERT_NAME: Final = "ca.pem"
CRL_NAME: Final = "crl.pem"
ISSUED_INDEX: Final = "issued.jsonl"


class IdentityFiles(NamedTuple):
    """PEM bytes of one party's key, certificate and the CA: what gRPC credentials need."""

    key: bytes
    cert: bytes
    ca: bytes


def ca_paths(pki_dir: Path) -> tuple[Path, Path]:
    """``(key_path, cert_path)`` of the CA inside ``pki_dir``."""
    pki_dir = Path(pki_dir)
    return pki_dir / CA_KEY_NAME, pki_dir / CA_CERT_NAME


def paths_for(pki_dir: Path, role: str, subject_id: str) -> tuple[Path, Path]:
    """``(key_path, cert_path)`` for one party; validates role and id first (no path tricks)."""
    validate_subject(role, subject_id)
    # Validated parts hold no "/" other than the workstation separator and never start with ".",
    # so the result always stays inside pki_dir/role.
    base = Path(pki_dir) / role / subject_id
    return base.with_name(base.name + ".key"), base.with_name(base.name + ".pem")


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file and rename, so a crash never leaves a half key, and mode is set
    before any byte lands (no window where a key is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_identity_files(pki_dir: Path, role: str, subject_id: str) -> IdentityFiles:
    """Load key, cert and CA for one party, checking they belong together.

    Catches the usual provisioning slips (wrong folder, a key from an older issue, a cert for
    another id) here, with a clear message, instead of as an opaque TLS handshake failure.
    """
    pki_dir = Path(pki_dir)
    key_path, cert_path = paths_for(pki_dir, role, subject_id)
    ca_path = ca_paths(pki_dir)[1]
    for path, what in ((ca_path, "CA certificate"), (key_path, "key"), (cert_path, "certificate")):
        if not path.is_file():
            raise PkiError(
                f"missing {what} {path} for {role} {subject_id!r}: issue it first "
                f"(issue / `evalgrid pki issue {role} {subject_id}`)"
            )
    key_pem, cert_pem, ca_pem = key_path.read_bytes(), cert_path.read_bytes(), ca_path.read_bytes()
    identity = identity_from_pem(cert_pem)
    if identity != Identity(validate_subject(role, subject_id), subject_id):
        raise PkiError(f"{cert_path} is for {identity}, not {role}:{subject_id}")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read key material for {role} {subject_id!r}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
        key.public_key().public_numbers() != ec_public(cert).public_numbers()
    ):
        raise PkiError(f"{key_path} does not match {cert_path}")
    if cert.issuer != ca.subject:
        raise PkiError(f"{cert_path} was not issued by the CA in {ca_path}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PkiError(f"{cert_path} was not signed by the CA in {ca_path}") from exc
    return IdentityFiles(key=key_pem, cert=cert_pem, ca=ca_pem)
