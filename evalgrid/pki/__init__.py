"""The provincial PKI: one CA, and leaf certificates that carry who the holder is.

Every party in the grid (coordinator, site agents, workstations, operators, auditors) proves who
it is with a certificate from one provincial CA; the servers read the identity from the verified
peer certificate, never from a request field. This module makes and reads those certificates with
the ``cryptography`` library (no ``openssl`` subprocess, so it runs the same everywhere).

Layout of a PKI directory::

    ca.key  ca.pem                          # the CA (key mode 0600)
    <role>/<subject>.key  <role>/<subject>.pem
    workstation/<site_id>/<ws_id>.key ...   # a workstation's "SITE/WS" id becomes a sub-folder
    issued.jsonl                            # every certificate issued: serial and identity
    crl.pem                                 # the signed revocation list (``revoke``)

Keys are EC P-256: BoringSSL (inside gRPC) accepts them everywhere, which is not true of Ed25519.
Keys are written unencrypted because gRPC cannot read encrypted PEM keys; the file mode (0600) and
the directory mode (0700) are what protect them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, NamedTuple, TypeGuard, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT_NAME",
    "CA_KEY_NAME",
    "CRL_NAME",
    "DEFAULT_HOSTS",
    "ISSUED_INDEX",
    "ORGANIZATION",
    "REVOCATION_REASONS",
    "ROLES",
    "SIGNER_EKU",
    "SIGNER_ROLE",
    "URI_SCHEME",
    "Identity",
    "IdentityFiles",
    "IssuedCert",
    "PkiError",
    "Revoked",
    "Role",
    "ca_paths",
    "certify_signing_key",
    "ensure_signing_certificate",
    "identity_from_pem",
    "init_ca",
    "is_role",
    "issue",
    "issue_from_csr",
    "issued_serials",
    "key_fingerprint",
    "load_identity_files",
    "make_csr",
    "paths_for",
    "revoke",
    "serial_of_pem",
    "signer_cert_path",
    "signing_key_from_certificate",
    "validate_subject",
]

Role = Literal["coordinator", "site", "operator", "auditor", "workstation"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

ORGANIZATION: Final = "evalgrid"
URI_SCHEME: Final = "evalgrid"
CA_KEY_NAME: Final = "ca.key"
CA_CERT_NAME: Final = "ca.pem"
CRL_NAME: Final = "crl.pem"
ISSUED_INDEX: Final = "issued.jsonl"
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
DEFAULT_HOSTS: Final[tuple[str, ...]] = ("localhost", "127.0.0.1", "::1")
CA_DAYS: Final = 3650
# Backdate notBefore a little so a peer whose clock is slightly behind still accepts a fresh cert.
_CLOCK_SKEW: Final = timedelta(minutes=5)
# X.509 caps CN at 64 characters (ub-common-name); cryptography refuses longer ones.
_MAX_PART: Final = 64
# One id segment: must start with a letter or digit so "." and ".." can never name a path.
_PART_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PART_RULE: Final = (
    f"1-{_MAX_PART} characters from [A-Za-z0-9._-], starting with a letter or digit"
)


class PkiError(Exception):
    """A PKI operation failed for a reason the operator can fix (message says which)."""


def is_role(value: str) -> TypeGuard[Role]:
    """True when ``value`` is one of the five roles (narrows the type for mypy)."""
    return value in ROLES


def _check_part(field: str, part: str, whole: str) -> None:
    if not part:
        raise PkiError(f"invalid {field} {whole!r}: empty; expected {_PART_RULE}")
    if len(part) > _MAX_PART:
        raise PkiError(
            f"invalid {field} {whole!r}: {len(part)} characters, at most {_MAX_PART} allowed"
        )
    if not _PART_RE.fullmatch(part):
        raise PkiError(f"invalid {field} {whole!r}: expected {_PART_RULE}")


def validate_subject(role: str, subject_id: str) -> Role:
    """Check ``role`` and ``subject_id``; return the role typed as ``Role``.

    Raises ``PkiError`` naming the offending field (``role`` or ``subject_id``) and the reason.
    Workstation ids are ``SITE_ID/WS_ID`` (exactly one "/"); no other role may contain "/".
    """
    if not is_role(role):
        raise PkiError(f"invalid role {role!r}: expected one of {', '.join(ROLES)}")
    if not isinstance(subject_id, str):
        raise PkiError(f"invalid subject_id {subject_id!r}: expected a string")
    if role == "workstation":
        parts = subject_id.split("/")
        if len(parts) != 2:
            raise PkiError(
                f"invalid subject_id {subject_id!r}: a workstation id is SITE_ID/WS_ID "
                "with exactly one '/'"
            )
        _check_part("subject_id", parts[0], subject_id)
        _check_part("subject_id", parts[1], subject_id)
    else:
        if "/" in subject_id:
            raise PkiError(
                f"invalid subject_id {subject_id!r}: '/' is only allowed in workstation ids"
            )
        _check_part("subject_id", subject_id, subject_id)
    if len(subject_id) > _MAX_PART:
        raise PkiError(
            f"invalid subject_id {subject_id!r}: {len(subject_id)} characters, "
            f"at most {_MAX_PART} allowed"
        )
    return role


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a peer is, as its CA-signed certificate says: a role and an id within that role."""

    role: Role
    subject: str

    def __post_init__(self) -> None:
        # An Identity that exists is a valid one: servers can trust its fields for keys and paths.
        validate_subject(self.role, self.subject)

    @property
    def site_id(self) -> str | None:
        """The site this peer belongs to (site agents and workstations), else None."""
        if self.role == "site":
            return self.subject
        if self.role == "workstation":
            return self.subject.split("/", 1)[0]
        return None

    @property
    def workstation_id(self) -> str | None:
        """The workstation id within its site (workstations only), else None."""
        if self.role == "workstation":
            return self.subject.split("/", 1)[1]
        return None

    @property
    def uri(self) -> str:
        """The URI SAN that encodes this identity in a certificate."""
        return f"{URI_SCHEME}://{self.role}/{self.subject}"

    def __str__(self) -> str:
        return f"{self.role}:{self.subject}"


class IssuedCert(NamedTuple):
    """What ``issue`` wrote, so a caller can report or ship the files."""

    identity: Identity
    key_path: Path
    cert_path: Path
    ca_path: Path
    serial: int
    not_before: datetime
    not_after: datetime


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


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
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
    start = _utc(now)
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
        .not_valid_before(start - _CLOCK_SKEW)
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
    _write_atomic(key_path, _key_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def _load_ca(pki_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
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
    if key.public_key().public_numbers() != _ec_public(cert).public_numbers():
        raise PkiError(f"CA key {key_path} does not match CA certificate {cert_path}")
    return key, cert


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise PkiError("certificate key is not an EC key")
    return pub


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
    _write_atomic(key_path, _key_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
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
    return _ca_signed(
        pki_dir, public_key, identity.role, identity.subject, sans, days=days, now=now,
        eku=x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
        eku_critical=False, content_commitment=False, key_id=True)


def _ca_signed(
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
    ca_key, ca_cert = _load_ca(pki_dir)
    start = _utc(now)
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
        .not_valid_before(start - _CLOCK_SKEW)
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


# --- the record of issued certificates, and revocation -----------------------------------------


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
    ca_key, ca_cert = _load_ca(pki_dir)
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
        if not previous.is_signature_valid(_ec_public(ca_cert)):
            raise PkiError(f"the CRL {crl_path} is not signed by this CA: refusing to extend it")
    listed = {entry.serial_number for entry in previous} if previous is not None else set()
    fresh = tuple(s for s in targets if s not in listed)
    already = tuple(s for s in targets if s in listed)
    start = _utc(now)
    number = _crl_number(previous) + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start - _CLOCK_SKEW)
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
    _write_atomic(crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return Revoked(serials=fresh, already=already, crl_path=crl_path, crl_number=number)


def _crl_number(crl: x509.CertificateRevocationList | None) -> int:
    if crl is None:
        return 0
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _single_attr(cert: x509.Certificate, oid: x509.ObjectIdentifier, label: str) -> str:
    attrs = cert.subject.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        raise PkiError(f"certificate subject has {len(attrs)} {label} attributes, expected 1")
    value = attrs[0].value
    if not isinstance(value, str):
        raise PkiError(f"certificate subject {label} is not a string")
    return value


def identity_from_pem(pem: bytes) -> Identity:
    """Read the ``Identity`` out of a PEM certificate (the first one if several).

    Does NOT verify the signature: call it on a certificate the TLS layer has already verified
    against the CA (the server's ``auth_context``). Requires exactly one ``evalgrid://`` URI SAN
    and a subject O/OU/CN that agree with it; certificates not made by ``issue`` are refused.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise PkiError("certificate has no subjectAltName, so no evalgrid identity") from exc
    prefix = f"{URI_SCHEME}://"
    uris = [
        u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(prefix)
    ]
    if len(uris) != 1:
        raise PkiError(f"certificate has {len(uris)} {prefix} URI SANs, expected exactly 1")
    role, sep, subject = uris[0][len(prefix) :].partition("/")
    if not sep:
        raise PkiError(f"malformed identity URI {uris[0]!r}: expected {prefix}ROLE/SUBJECT")
    try:
        identity = Identity(validate_subject(role, subject), subject)
    except PkiError as exc:
        raise PkiError(f"bad identity URI {uris[0]!r}: {exc}") from exc
    org = _single_attr(cert, NameOID.ORGANIZATION_NAME, "O")
    unit = _single_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    common = _single_attr(cert, NameOID.COMMON_NAME, "CN")
    if (org, unit, common) != (ORGANIZATION, identity.role, identity.subject):
        raise PkiError(
            f"certificate subject O={org!r} OU={unit!r} CN={common!r} disagrees with its "
            f"identity URI {uris[0]!r}"
        )
    return identity


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
        key.public_key().public_numbers() != _ec_public(cert).public_numbers()
    ):
        raise PkiError(f"{key_path} does not match {cert_path}")
    if cert.issuer != ca.subject:
        raise PkiError(f"{cert_path} was not issued by the CA in {ca_path}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PkiError(f"{cert_path} was not signed by the CA in {ca_path}") from exc
    return IdentityFiles(key=key_pem, cert=cert_pem, ca=ca_pem)


# --- the coordinator's signing certificate (reports, draw archives, the audit chain) -----------

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
    cert = _ca_signed(
        pki_dir, public_key, SIGNER_ROLE, subject_id,
        [x509.UniformResourceIdentifier(f"{URI_SCHEME}://{SIGNER_ROLE}/{subject_id}")],
        days=days, now=now, eku=x509.ExtendedKeyUsage([SIGNER_EKU]), eku_critical=True,
        content_commitment=True, key_id=False)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    _write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
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
    moment = _utc(now)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise PkiError(
            f"the signing certificate is valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}, not at {moment.isoformat()}"
        )
    unit = _single_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
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
