"""The provincial CA: created once, it signs every party's certificate and keeps a record.

Keys are EC P-256: BoringSSL (inside gRPC) accepts them everywhere, which is not true of
Ed25519. A party's key is made here (``issue``) or on its device (``make_csr`` then
``issue_from_csr``: the private key never moves). Every certificate issued is recorded in
``issued.jsonl``, so revoking an identity revokes every certificate it got.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evalgrid.pki.directory import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    ISSUED_INDEX,
    ca_paths,
    paths_for,
    write_atomic,
)
from evalgrid.pki.identity import ORGANIZATION, Identity, PkiError, ec_public, validate_subject

DEFAULT_HOSTS: Final[tuple[str, ...]] = ("localhost", "127.0.0.1", "::1")
CA_DAYS: Final = 3650
# Backdate notBefore a little so a peer whose clock is slightly behind still accepts a fresh cert.
CLOCK_SKEW: Final = timedelta(minutes=5)


class IssuedCert(NamedTuple):
    """What ``issue`` wrote, so a caller can report or ship the files."""

    identity: Identity
    key_path: Path
    cert_path: Path
    ca_path: Path
    serial: int
    not_before: datetime
    not_after: datetime


def utc(now: datetime | None) -> datetime:
    """`now` as an aware UTC time (naive counts as UTC; None reads the clock)."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_ca(
    pki_dir: Path,
    *,
    name: str = "Evalgrid Provincial CA",
    now: datetime | None = None,
    force: bool = False,
) -> Path:
    """Create the provincial CA in ``pki_dir``; return the path of ``ca.pem``.

    Refuses when a CA (key or cert) is already there unless ``force``: replacing the CA silently
    would orphan every certificate already handed to sites.
    """
    pki_dir = Path(pki_dir)
    key_path, cert_path = ca_paths(pki_dir)
    if not force and (key_path.exists() or cert_path.exists()):
        raise PkiError(
            f"a CA already exists in {pki_dir} ({CA_KEY_NAME}/{CA_CERT_NAME}); refusing to "
            "overwrite it (every issued certificate depends on it); pass force=True to replace"
        )
    if not name.strip():
        raise PkiError("invalid name '': the CA needs a non-empty common name")
    start = utc(now)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Key first: a cert without its key is useless, a key without a cert is merely re-runnable.
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def load_ca(pki_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA's key and certificate, checked to belong together."""
    key_path, cert_path = ca_paths(pki_dir)
    if not key_path.exists() or not cert_path.exists():
        raise PkiError(f"no CA in {pki_dir}: create one first (init_ca / `evalgrid pki init`)")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the CA in {pki_dir}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"CA key {key_path} is not an EC key")
    if key.public_key().public_numbers() != ec_public(cert).public_numbers():
        raise PkiError(f"CA key {key_path} does not match CA certificate {cert_path}")
    return key, cert


def _san_for_hosts(hosts: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hosts, str):
        raise PkiError(f"invalid hosts {hosts!r}: expected a sequence of names, not one string")
    names: list[x509.GeneralName] = []
    for host in hosts:
        if not host or not isinstance(host, str):
            raise PkiError(f"invalid hosts entry {host!r}: expected a DNS name or an IP address")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            try:
                names.append(x509.DNSName(host))
            except ValueError as exc:
                raise PkiError(f"invalid hosts entry {host!r}: {exc}") from exc
    return names


def issue(
    pki_dir: Path,
    role: str,
    subject_id: str,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 825,
    now: datetime | None = None,
) -> IssuedCert:
    """Issue (or re-issue, replacing files) a key and certificate for one party.

    The identity is written twice, consistently: Subject O=evalgrid, OU=role, CN=subject_id, and
    a URI SAN ``evalgrid://role/subject_id``; ``identity_from_pem`` insists they agree. Every cert
    has serverAuth and clientAuth, because site agents serve workstations and dial the
    coordinator, and the DNS/IP SANs in ``hosts`` so loopback grids need no name override.
    """
    pki_dir = Path(pki_dir)
    typed_role = validate_subject(role, subject_id)
    identity = Identity(typed_role, subject_id)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign_leaf(pki_dir, identity, key.public_key(), hosts=hosts, days=days, now=now)
    key_path, cert_path = paths_for(pki_dir, typed_role, subject_id)
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _record_issued(pki_dir, identity, cert)
    return IssuedCert(
        identity=identity,
        key_path=key_path,
        cert_path=cert_path,
        ca_path=ca_paths(pki_dir)[1],
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _sign_leaf(
    pki_dir: Path,
    identity: Identity,
    public_key: ec.EllipticCurvePublicKey,
    *,
    hosts: Sequence[str],
    days: int,
    now: datetime | None,
) -> x509.Certificate:
    """The CA's signature on one party's public key, with the identity in subject and SAN."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    sans += _san_for_hosts(hosts)
    return ca_signed(
        pki_dir, public_key, identity.role, identity.subject, sans, days=days, now=now,
        eku=x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
        eku_critical=False, content_commitment=False, key_id=True)


def ca_signed(
    pki_dir: Path,
    public_key: ec.EllipticCurvePublicKey | Ed25519PublicKey,
    role: str,
    subject: str,
    sans: list[x509.GeneralName],
    *,
    days: int,
    now: datetime | None,
    eku: x509.ExtendedKeyUsage,
    eku_critical: bool,
    content_commitment: bool,
    key_id: bool,
) -> x509.Certificate:
    """One certificate the CA signs (a TLS leaf or the signer's): O=evalgrid, OU=role,
    CN=subject, never a CA, valid from a little before `now` and never past the CA."""
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise PkiError(f"invalid days {days!r}: expected a positive number of days")
    ca_key, ca_cert = load_ca(pki_dir)
    start = utc(now)
    # A leaf outliving its CA would fail verification anyway; say so in the cert itself.
    not_after = min(start + timedelta(days=days), ca_cert.not_valid_after_utc)
    if not_after <= start:
        raise PkiError(f"the CA in {pki_dir} has expired; create a new one")
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=content_commitment,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(eku, critical=eku_critical)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    if key_id:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
    ).sign(ca_key, hashes.SHA256())


# --- device-generated keys: certificate signing requests -------------------------------------


def make_csr(key: ec.EllipticCurvePrivateKey, role: str, subject_id: str) -> bytes:
    """A PEM CSR for ``role``/``subject_id`` signed by ``key`` (the device keeps the key)."""
    typed_role = validate_subject(role, subject_id)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, typed_role),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject_id),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def issue_from_csr(
    pki_dir: Path,
    csr_pem: bytes,
    role: str,
    subject_id: str,
    *,
    days: int = 825,
    now: datetime | None = None,
) -> x509.Certificate:
    """Sign a device's own public key for ``role``/``subject_id``; the private key never moves.

    The identity is the CALLER's decision (the coordinator binds it to the enrolling site and
    workstation), not the CSR's: a CSR that names anyone else is refused rather than trusted.
    The CSR must be well formed, self-signed by its key, and carry an EC P-256 key (what gRPC's
    BoringSSL accepts everywhere). The certificate is recorded in ``issued.jsonl``.
    """
    pki_dir = Path(pki_dir)
    typed_role = validate_subject(role, subject_id)
    identity = Identity(typed_role, subject_id)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PkiError(f"csr: not a PEM certificate signing request ({exc})") from exc
    if not csr.is_signature_valid:
        raise PkiError("csr: its signature does not verify with its own key")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise PkiError("csr: the key must be EC P-256")
    named = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if named and named != [subject_id]:
        raise PkiError(f"csr: it names {named[0]!r}, but this enrolment is for {subject_id!r}")
    cert = _sign_leaf(pki_dir, identity, public, hosts=DEFAULT_HOSTS, days=days, now=now)
    _record_issued(pki_dir, identity, cert)
    return cert


def serial_of_pem(pem: bytes) -> int:
    """The serial number of a PEM certificate (what a CRL lists)."""
    try:
        return x509.load_pem_x509_certificate(pem).serial_number
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc


# --- the record of issued certificates ------------------------------------------------------


def _record_issued(pki_dir: Path, identity: Identity, cert: x509.Certificate) -> None:
    """Append one line to ``issued.jsonl``: revoking an identity revokes every cert it got.

    One ``write`` of one short line to a file opened with O_APPEND: concurrent issuers never
    interleave inside a line. Only public facts are recorded (serial, identity, validity).
    """
    line = json.dumps(
        {
            "serial": format(cert.serial_number, "x"),
            "role": identity.role,
            "subject": identity.subject,
            "not_after": cert.not_valid_after_utc.isoformat(),
        },
        sort_keys=True,
    )
    fd = os.open(pki_dir / ISSUED_INDEX, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def issued_serials(pki_dir: Path, identity: Identity) -> list[int]:
    """Serials of every certificate recorded for ``identity`` (oldest first).

    A certificate file issued before the record existed is found from its file as well.
    """
    pki_dir = Path(pki_dir)
    serials: list[int] = []
    index = pki_dir / ISSUED_INDEX
    if index.exists():
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if (row["role"], row["subject"]) == (identity.role, identity.subject):
                    serials.append(int(row["serial"], 16))
            except (ValueError, KeyError, TypeError) as exc:
                raise PkiError(f"{index}:{number}: unreadable record ({exc})") from exc
    cert_path = paths_for(pki_dir, identity.role, identity.subject)[1]
    if cert_path.is_file():
        on_file = serial_of_pem(cert_path.read_bytes())
        if on_file not in serials:
            serials.append(on_file)
    return serials
