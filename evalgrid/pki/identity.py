"""Who a party is: a role and an id, as its CA-signed certificate carries them.

The identity is written twice in a certificate, consistently: Subject O=evalgrid, OU=role,
CN=subject_id, and a URI SAN ``evalgrid://role/subject_id``; ``identity_from_pem`` insists
they agree. The id rules keep an identity safe to use as a path or a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard, get_args

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Role = Literal["coordinator", "site", "operator", "auditor", "workstation"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

ORGANIZATION: Final = "evalgrid"
URI_SCHEME: Final = "evalgrid"
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


def ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The certificate's EC public key (every CA and TLS key here is EC P-256)."""
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise PkiError("certificate key is not an EC key")
    return pub


def subject_attr(cert: x509.Certificate, oid: x509.ObjectIdentifier, label: str) -> str:
    """The one value of a subject attribute; PkiError when it is missing or repeated."""
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
    org = subject_attr(cert, NameOID.ORGANIZATION_NAME, "O")
    unit = subject_attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    common = subject_attr(cert, NameOID.COMMON_NAME, "CN")
    if (org, unit, common) != (ORGANIZATION, identity.role, identity.subject):
        raise PkiError(
            f"certificate subject O={org!r} OU={unit!r} CN={common!r} disagrees with its "
            f"identity URI {uris[0]!r}"
        )
    return identity
