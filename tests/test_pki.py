"""The provincial PKI: CA creation, issuing per role, and reading identities back."""

from __future__ import annotations

import ipaddress
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.directory import ca_paths, load_identity_files, paths_for
from evalgrid.pki.identity import ROLES, Identity, PkiError, Role, identity_from_pem

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

SUBJECTS: dict[Role, str] = {
    "coordinator": "coordinator-1",
    "site": "SITE_07",
    "operator": "alice.chen",
    "auditor": "audit-2",
    "workstation": "SITE_07/ws-03",
}


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    init_ca(d, now=NOW)
    return d


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _forge(
    pki_dir: Path,
    *,
    ou: str,
    cn: str,
    uris: list[str],
    org: str = "evalgrid",
) -> bytes:
    """A cert signed by the real CA but with a hand-picked subject and URI SANs."""
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = _load(pki_dir / "ca.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --- the CA ------------------------------------------------------------------------------------


def test_init_ca_writes_a_ca_with_a_private_key(tmp_path: Path) -> None:
    d = tmp_path / "new" / "pki"
    cert_path = init_ca(d, name="Test CA", now=NOW)

    key_path, expected_cert = ca_paths(d)
    assert cert_path == expected_cert
    assert _mode(key_path) == 0o600
    assert _mode(d) == 0o700
    cert = _load(cert_path)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc
    cert.verify_directly_issued_by(cert)  # self-signed with its own key


def test_init_ca_refuses_to_overwrite_an_existing_ca(pki_dir: Path) -> None:
    key_before = (pki_dir / "ca.key").read_bytes()
    cert_before = (pki_dir / "ca.pem").read_bytes()

    with pytest.raises(PkiError, match="already exists"):
        init_ca(pki_dir)

    assert (pki_dir / "ca.key").read_bytes() == key_before
    assert (pki_dir / "ca.pem").read_bytes() == cert_before


def test_init_ca_refuses_when_only_the_key_is_left(tmp_path: Path) -> None:
    init_ca(tmp_path)
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(PkiError, match="already exists"):
        init_ca(tmp_path)


def test_init_ca_force_replaces_the_ca(pki_dir: Path) -> None:
    old = (pki_dir / "ca.pem").read_bytes()
    init_ca(pki_dir, force=True)
    assert (pki_dir / "ca.pem").read_bytes() != old
    assert _mode(pki_dir / "ca.key") == 0o600


def test_issue_without_a_ca_says_so(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no CA"):
        issue(tmp_path, "site", "S1")


# --- issuing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_issue_each_role_round_trips_its_identity(pki_dir: Path, role: Role) -> None:
    subject = SUBJECTS[role]
    issued = issue(pki_dir, role, subject, now=NOW)

    assert (issued.key_path, issued.cert_path) == paths_for(pki_dir, role, subject)
    assert issued.key_path.is_relative_to(pki_dir / role)
    assert _mode(issued.key_path) == 0o600
    assert issued.identity == Identity(role, subject)
    assert identity_from_pem(issued.cert_path.read_bytes()) == Identity(role, subject)

    cert = _load(issued.cert_path)
    cert.verify_directly_issued_by(_load(pki_dir / "ca.pem"))
    assert cert.serial_number == issued.serial
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "evalgrid"
    ]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == subject

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"evalgrid://{role}/{subject}"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False

    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert key.public_key().public_numbers() == pub.public_numbers()

    files = load_identity_files(pki_dir, role, subject)
    assert files.cert == issued.cert_path.read_bytes()
    assert files.ca == (pki_dir / "ca.pem").read_bytes()


def test_issue_validity_follows_now_and_days(pki_dir: Path) -> None:
    issued = issue(pki_dir, "site", "S1", days=30, now=NOW)
    assert issued.not_before <= NOW
    assert NOW - issued.not_before <= timedelta(minutes=10)
    assert issued.not_after == NOW + timedelta(days=30)


def test_issue_never_outlives_the_ca(pki_dir: Path) -> None:
    ca_end = _load(pki_dir / "ca.pem").not_valid_after_utc
    issued = issue(pki_dir, "site", "S1", days=100_000, now=NOW)
    assert issued.not_after == ca_end


def test_issue_custom_hosts(pki_dir: Path) -> None:
    issued = issue(pki_dir, "coordinator", "c1", hosts=("coord.example.org", "10.0.0.5"))
    san = _load(issued.cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["coord.example.org"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]


def test_issue_rejects_a_single_string_as_hosts(pki_dir: Path) -> None:
    with pytest.raises(PkiError, match="hosts"):
        issue(pki_dir, "site", "S1", hosts="localhost")


@pytest.mark.parametrize("days", [0, -1])
def test_issue_rejects_bad_days(pki_dir: Path, days: int) -> None:
    with pytest.raises(PkiError, match="days"):
        issue(pki_dir, "site", "S1", days=days)


def test_reissue_replaces_the_files(pki_dir: Path) -> None:
    first = issue(pki_dir, "site", "S1")
    second = issue(pki_dir, "site", "S1")
    assert first.serial != second.serial
    assert _load(second.cert_path).serial_number == second.serial


def test_workstation_files_live_under_their_site(pki_dir: Path) -> None:
    key_path, cert_path = paths_for(pki_dir, "workstation", "S1/W1")
    assert key_path == pki_dir / "workstation" / "S1" / "W1.key"
    assert cert_path == pki_dir / "workstation" / "S1" / "W1.pem"
    # Ids that would collide under a flat encoding stay apart.
    left, _ = paths_for(pki_dir, "workstation", "A__B/C")
    right, _ = paths_for(pki_dir, "workstation", "A/B__C")
    assert left != right


@pytest.mark.parametrize(
    ("role", "subject", "field", "reason"),
    [
        ("admin", "x", "role", "expected one of"),
        ("", "x", "role", "expected one of"),
        ("Site", "x", "role", "expected one of"),
        ("site", "", "subject_id", "empty"),
        ("site", "a b", "subject_id", r"\[A-Za-z0-9._-\]"),
        ("site", "S1/W1", "subject_id", "only allowed in workstation"),
        ("site", "..", "subject_id", "starting with a letter or digit"),
        ("site", ".hidden", "subject_id", "starting with a letter or digit"),
        ("site", "x" * 65, "subject_id", "at most 64"),
        ("operator", "bob@example", "subject_id", r"\[A-Za-z0-9._-\]"),
        ("workstation", "S1", "subject_id", "SITE_ID/WS_ID"),
        ("workstation", "S1/W1/X", "subject_id", "SITE_ID/WS_ID"),
        ("workstation", "S1/", "subject_id", "empty"),
        ("workstation", "/W1", "subject_id", "empty"),
        ("workstation", "../W1", "subject_id", "starting with a letter or digit"),
        ("workstation", "S" * 40 + "/" + "W" * 30, "subject_id", "at most 64"),
    ],
)
def test_bad_role_or_subject_is_rejected_naming_the_field(
    pki_dir: Path, role: str, subject: str, field: str, reason: str
) -> None:
    with pytest.raises(PkiError, match=f"invalid {field} ") as excinfo:
        issue(pki_dir, role, subject)
    assert excinfo.match(reason)
    with pytest.raises(PkiError, match=f"invalid {field} "):
        paths_for(pki_dir, role, subject)
    # Nothing was written for the rejected party.
    assert sorted(p.name for p in pki_dir.iterdir()) == ["ca.key", "ca.pem"]


# --- Identity ----------------------------------------------------------------------------------


def test_identity_site_and_workstation_properties() -> None:
    ws = Identity("workstation", "S9/W2")
    assert (ws.site_id, ws.workstation_id) == ("S9", "W2")
    assert ws.uri == "evalgrid://workstation/S9/W2"
    site = Identity("site", "S9")
    assert (site.site_id, site.workstation_id) == ("S9", None)
    op = Identity("operator", "alice")
    assert (op.site_id, op.workstation_id) == (None, None)
    assert str(op) == "operator:alice"


def test_identity_refuses_invalid_values() -> None:
    with pytest.raises(PkiError, match="invalid role"):
        Identity("root", "x")  # type: ignore[arg-type]
    with pytest.raises(PkiError, match="invalid subject_id"):
        Identity("workstation", "no-slash")


def test_identity_from_pem_refuses_garbage() -> None:
    with pytest.raises(PkiError, match="not a PEM certificate"):
        identity_from_pem(b"hello")


def test_identity_from_pem_refuses_the_ca_cert(pki_dir: Path) -> None:
    with pytest.raises(PkiError, match="subjectAltName"):
        identity_from_pem((pki_dir / "ca.pem").read_bytes())


@pytest.mark.parametrize(
    ("ou", "cn", "uris", "org", "reason"),
    [
        ("site", "S1", ["evalgrid://site/S2"], "evalgrid", "disagrees"),
        ("operator", "S1", ["evalgrid://site/S1"], "evalgrid", "disagrees"),
        ("site", "S1", ["evalgrid://site/S1"], "other-org", "disagrees"),
        ("site", "S1", [], "evalgrid", "subjectAltName"),
        ("site", "S1", ["https://example.org/"], "evalgrid", "0 evalgrid:// URI"),
        ("site", "S1", ["evalgrid://site/S1", "evalgrid://site/S2"], "evalgrid", "2 evalgrid://"),
        ("site", "S1", ["evalgrid://site"], "evalgrid", "malformed"),
        ("admin", "S1", ["evalgrid://admin/S1"], "evalgrid", "invalid role"),
    ],
)
def test_identity_from_pem_refuses_inconsistent_certs(
    pki_dir: Path, ou: str, cn: str, uris: list[str], org: str, reason: str
) -> None:
    pem = _forge(pki_dir, ou=ou, cn=cn, uris=uris, org=org)
    with pytest.raises(PkiError, match=reason):
        identity_from_pem(pem)


# --- load_identity_files -----------------------------------------------------------------------


def test_load_identity_files_reports_missing_files(pki_dir: Path) -> None:
    with pytest.raises(PkiError, match=r"missing key .*site 'S1'"):
        load_identity_files(pki_dir, "site", "S1")


def test_load_identity_files_catches_a_cert_for_someone_else(pki_dir: Path) -> None:
    issue(pki_dir, "site", "S1")
    issued = issue(pki_dir, "site", "S2")
    shutil.copy(issued.cert_path, pki_dir / "site" / "S1.pem")
    with pytest.raises(PkiError, match="is for site:S2"):
        load_identity_files(pki_dir, "site", "S1")


def test_load_identity_files_catches_a_mismatched_key(pki_dir: Path) -> None:
    s1 = issue(pki_dir, "site", "S1")
    s2 = issue(pki_dir, "site", "S2")
    shutil.copy(s2.key_path, s1.key_path)
    with pytest.raises(PkiError, match="does not match"):
        load_identity_files(pki_dir, "site", "S1")


def test_load_identity_files_catches_a_cert_from_another_ca(pki_dir: Path, tmp_path: Path) -> None:
    issue(pki_dir, "site", "S1")
    other = tmp_path / "other"
    init_ca(other)  # same default CA name, different key
    foreign = issue(other, "site", "S1")
    shutil.copy(foreign.cert_path, pki_dir / "site" / "S1.pem")
    shutil.copy(foreign.key_path, pki_dir / "site" / "S1.key")
    with pytest.raises(PkiError, match="not signed by the CA"):
        load_identity_files(pki_dir, "site", "S1")
