"""The coordinator's signing certificate: the CA vouches for the Ed25519 key that signs
reports, draw archives and the audit chain, so an auditor needs only ``ca.pem``."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from evalgrid.pki.ca import ca_signed, utc
from evalgrid.pki.directory import ISSUED_INDEX, ca_paths, write_atomic
from evalgrid.pki.identity import URI_SCHEME, PkiError, subject_attr, validate_subject

#: The one role a signing certificate has: it names the key that signs audit entries, reports
#: and draw archives. It is no TLS identity (not one of ``ROLES``, no serverAuth/clientAuth), so
#: it can open no connection, and no TLS certificate passes as a signer.
SIGNER_ROLE: Final = "signer"
#: Extended key usage of a signing certificate (an OID under the UUID arc 2.25, no registry
#: needed); marked critical, so software that does not know it refuses the certificate outright.
SIGNER_EKU: Final = x509.ObjectIdentifier("2.25.204603328871306347451497624361862335716")
SIGNER_DIR: Final = "signer"


def signer_cert_path(pki_dir: Path, subject_id: str = "coordinator") -> Path:
    """Where the CA's certificate for a signing key is kept: ``signer/<subject>.pem``."""
    validate_subject("coordinator", subject_id)  # the same id rules, no path tricks
    return Path(pki_dir) / SIGNER_DIR / f"{subject_id}.pem"


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: what people compare, print and pin."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def certify_signing_key(
    pki_dir: Path,
    public_key: Ed25519PublicKey,
    *,
    subject_id: str = "coordinator",
    days: int = 3650,
    now: datetime | None = None,
) -> Path:
    """The CA certifies the coordinator's Ed25519 signing key; returns the certificate's path.

    Subject O=evalgrid, OU=signer, CN=subject_id, URI SAN ``evalgrid://signer/<subject>``; key
    usage digitalSignature and contentCommitment (non-repudiation); the critical EKU
    ``SIGNER_EKU`` only. An auditor holding ``ca.pem`` alone checks a signature with it
    (``signing_key_from_certificate``).
    """
    pki_dir = Path(pki_dir)
    path = signer_cert_path(pki_dir, subject_id)
    cert = ca_signed(
        pki_dir, public_key, SIGNER_ROLE, subject_id,
        [x509.UniformResourceIdentifier(f"{URI_SCHEME}://{SIGNER_ROLE}/{subject_id}")],
        days=days, now=now, eku=x509.ExtendedKeyUsage([SIGNER_EKU]), eku_critical=True,
        content_commitment=True, key_id=False)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    line = json.dumps(
        {
            "serial": format(cert.serial_number, "x"),
            "role": SIGNER_ROLE,
            "subject": subject_id,
            "not_after": cert.not_valid_after_utc.isoformat(),
        },
        sort_keys=True,
    )
    with open(pki_dir / ISSUED_INDEX, "a", encoding="utf-8") as index:
        index.write(line + "\n")
    return path


def ensure_signing_certificate(
    pki_dir: Path, public_key: Ed25519PublicKey, *, subject_id: str = "coordinator"
) -> str:
    """The PEM of a CA certificate for ``public_key``, issued now if none on file matches.

    Returns "" when there is no CA to issue one (a data dir without a PKI): the signatures are
    then checkable only against a key pinned by hand (``--key`` / ``--fingerprint``).
    """
    path = signer_cert_path(pki_dir, subject_id)
    if path.is_file():
        pem = path.read_bytes()
        try:
            cert = x509.load_pem_x509_certificate(pem)
            on_file = cert.public_key()
        except ValueError:
            on_file = None
        if isinstance(on_file, Ed25519PublicKey) and key_fingerprint(on_file) == key_fingerprint(
            public_key
        ):
            return pem.decode("ascii")
    if not all(p.is_file() for p in ca_paths(pki_dir)):
        return ""
    return certify_signing_key(pki_dir, public_key, subject_id=subject_id).read_text("ascii")


def signing_key_from_certificate(
    ca_pem: bytes, cert_pem: bytes, *, now: datetime | None = None
) -> Ed25519PublicKey:
    """The signing key a certificate vouches for, after checking it against the pinned CA.

    Checks: signed by that CA, valid at ``now``, role ``signer`` (subject OU and URI SAN), the
    signer EKU, an Ed25519 key. Raises PkiError naming the first thing wrong.
    """
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise PkiError(f"the CA file is not a PEM certificate: {exc}") from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"the signing certificate is not a PEM certificate: {exc}") from exc
    if cert.issuer != ca.subject:
        raise PkiError(
            f"the signing certificate was issued by {cert.issuer.rfc4514_string()!r}, "
            f"not by the pinned CA {ca.subject.rfc4514_string()!r}"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PkiError("the signing certificate's signature does not verify with the CA") from exc
    moment = utc(now)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise PkiError(
            f"the signing certificate is valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}, not at {moment.isoformat()}"
        )
    unit = subject_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    if unit != SIGNER_ROLE:
        raise PkiError(f"the certificate is for role {unit!r}, not a {SIGNER_ROLE!r} certificate")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise PkiError("the signing certificate has no extended key usage") from exc
    if list(eku) != [SIGNER_EKU]:
        raise PkiError("the certificate's key usage is not (only) evalgrid signing")
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise PkiError(f"the signing certificate holds a {type(public).__name__}, not Ed25519")
    return public
