"""Revocation: the CA-signed list (``crl.pem``) of certificates no server may accept.

Servers load and enforce it (evalgrid/revocation.py); this module writes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from evalgrid.pki.ca import CLOCK_SKEW, issued_serials, load_ca, utc
from evalgrid.pki.directory import CRL_NAME, write_atomic
from evalgrid.pki.identity import Identity, PkiError, ec_public

#: Reasons ``revoke`` records in the CRL (RFC 5280 CRLReason), by their command-line names.
REVOCATION_REASONS: Final[dict[str, x509.ReasonFlags]] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
}
#: How long a CRL says it is good for. Servers keep enforcing an older CRL past it (a stale
#: list still refuses what it lists); ``revoke`` re-signs a fresh one each time.
CRL_DAYS: Final = 30


class Revoked(NamedTuple):
    """What ``revoke`` did: the serials newly listed, and the CRL it signed."""

    serials: tuple[int, ...]
    already: tuple[int, ...]
    crl_path: Path
    crl_number: int


def revoke(
    pki_dir: Path,
    *,
    identity: Identity | None = None,
    serial: int | None = None,
    reason: str = "unspecified",
    now: datetime | None = None,
) -> Revoked:
    """Add an identity's certificates (or one serial) to the CA-signed CRL in ``pki_dir``.

    The CRL is rebuilt from the previous one plus the new entries, its number one higher, and
    signed by the CA key; it is written atomically so a server reloading it never reads half.
    Revoking what is already listed changes nothing but is not an error (a retry is harmless).
    """
    pki_dir = Path(pki_dir)
    if (identity is None) == (serial is None):
        raise PkiError("revoke: give exactly one of an identity or a serial")
    if reason not in REVOCATION_REASONS:
        known = ", ".join(REVOCATION_REASONS)
        raise PkiError(f"invalid reason {reason!r}: expected one of {known}")
    if serial is not None and (isinstance(serial, bool) or serial <= 0):
        raise PkiError(f"invalid serial {serial!r}: expected a positive number")
    ca_key, ca_cert = load_ca(pki_dir)
    if serial is not None:
        targets = [serial]
    else:
        assert identity is not None
        targets = issued_serials(pki_dir, identity)
    if not targets:
        raise PkiError(f"no certificate was issued to {identity} in {pki_dir}: nothing to revoke")
    crl_path = pki_dir / CRL_NAME
    previous: x509.CertificateRevocationList | None = None
    if crl_path.exists():
        try:
            previous = x509.load_pem_x509_crl(crl_path.read_bytes())
        except ValueError as exc:
            raise PkiError(f"cannot read the CRL {crl_path}: {exc}") from exc
        if not previous.is_signature_valid(ec_public(ca_cert)):
            raise PkiError(f"the CRL {crl_path} is not signed by this CA: refusing to extend it")
    listed = {entry.serial_number for entry in previous} if previous is not None else set()
    fresh = tuple(s for s in targets if s not in listed)
    already = tuple(s for s in targets if s in listed)
    start = utc(now)
    number = _crl_number(previous) + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start - CLOCK_SKEW)
        .next_update(start + timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in previous or ():
        builder = builder.add_revoked_certificate(entry)
    for s in fresh:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(s)
            .revocation_date(start)
            .add_extension(x509.CRLReason(REVOCATION_REASONS[reason]), critical=False)
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    write_atomic(crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return Revoked(serials=fresh, already=already, crl_path=crl_path, crl_number=number)


def _crl_number(crl: x509.CertificateRevocationList | None) -> int:
    if crl is None:
        return 0
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0
