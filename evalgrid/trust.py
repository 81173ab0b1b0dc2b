"""Which key a verifier trusts: pinned from outside, never taken from the file under check.

A report, a draw archive or an audit entry says who signed it; a verifier believes that only
when it agrees with a key pinned beforehand: the coordinator's public key in the data dir, a key
file or a fingerprint handed over out of band, or the provincial CA (``ca.pem``), which vouches
for the coordinator's signing key in a certificate of role ``signer``
(evalgrid/pki/signer.py). A file signed by any other key is refused, naming the signer's
fingerprint and the expected one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evalgrid.pki.identity import PkiError
from evalgrid.pki.signer import key_fingerprint, signing_key_from_certificate

__all__ = ["PinnedTrust", "TrustError", "short"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Where a coordinator's data dir keeps the public half of its signing key.
DATA_DIR_KEY = Path("keys") / "audit-signing.pub.pem"


class TrustError(Exception):
    """No usable pinned key: the message says which option or file is wrong."""


def short(fingerprint: str) -> str:
    """A fingerprint as people compare it: the first 16 hex digits."""
    return fingerprint[:16]


def _raw_key(hex_text: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_text))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PinnedTrust:
    """One trust anchor: a key, a key fingerprint, or the provincial CA (exactly one is set)."""

    source: str
    key: Ed25519PublicKey | None = None
    fingerprint: str | None = None
    ca_pem: bytes | None = None

    # --- where the pin comes from ------------------------------------------------------------

    @classmethod
    def from_key_file(cls, path: Path) -> PinnedTrust:
        """A PEM public key (``*.pub.pem``) or a PEM certificate whose key is pinned by hand."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TrustError(f"--key: cannot read {path}: {exc.strerror}") from exc
        key: object
        try:
            if b"BEGIN CERTIFICATE" in data:
                key = x509.load_pem_x509_certificate(data).public_key()
            else:
                key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise TrustError(f"--key: {path} is not a PEM public key or certificate") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise TrustError(f"--key: {path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(source=f"the key in {path}", key=key)

    @classmethod
    def from_fingerprint(cls, text: str) -> PinnedTrust:
        value = text.strip().lower().replace(":", "")
        if not _HEX64.fullmatch(value):
            raise TrustError(
                f"--fingerprint: {text!r} is not 64 hex digits (SHA-256 of the raw public key)"
            )
        return cls(source=f"fingerprint {short(value)}", fingerprint=value)

    @classmethod
    def from_ca(cls, ca_path: Path, cert_path: Path | None = None) -> PinnedTrust:
        """The provincial CA; with ``cert_path`` the signing certificate is checked now."""
        try:
            ca_pem = Path(ca_path).read_bytes()
            x509.load_pem_x509_certificate(ca_pem)
        except OSError as exc:
            raise TrustError(f"--ca: cannot read {ca_path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise TrustError(f"--ca: {ca_path} is not a PEM certificate") from exc
        if cert_path is None:
            return cls(source=f"the CA in {ca_path}", ca_pem=ca_pem)
        try:
            key = signing_key_from_certificate(ca_pem, Path(cert_path).read_bytes())
        except OSError as exc:
            raise TrustError(f"--cert: cannot read {cert_path}: {exc.strerror}") from exc
        except PkiError as exc:
            raise TrustError(f"--cert: {cert_path}: {exc}") from exc
        return cls(source=f"the certificate {cert_path}, checked against {ca_path}", key=key)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> PinnedTrust:
        path = Path(data_dir) / DATA_DIR_KEY
        if not path.is_file():
            raise TrustError(
                f"no pinned key: {path} does not exist; give the coordinator's key with "
                "--key FILE, --fingerprint HEX or --ca ca.pem (the key inside the file under "
                "check is never trusted)"
            )
        pinned = cls.from_key_file(path)
        return cls(source=f"the data dir's key {path}", key=pinned.key)

    # --- using it ------------------------------------------------------------------------------

    def signer(
        self, *, carried_key: str | None = None, carried_cert: str | None = None
    ) -> tuple[Ed25519PublicKey | None, str]:
        """The key to check a file's signatures with, or None and why the file is refused.

        ``carried_key`` (raw hex) and ``carried_cert`` (PEM) are what the file says about its
        signer; they are believed only as far as they agree with the pin.
        """
        carried = _raw_key(carried_key) if carried_key else None
        if carried_key and carried is None:
            return None, f"signer: {carried_key[:20]!r}... is not an Ed25519 public key"
        if self.key is not None:
            expected = key_fingerprint(self.key)
            if carried is not None and key_fingerprint(carried) != expected:
                return None, (
                    f"signer: signed by key {short(key_fingerprint(carried))}, not by the "
                    f"pinned coordinator key {short(expected)} ({self.source})"
                )
            return self.key, ""
        if self.fingerprint is not None:
            if carried is None and carried_cert:
                try:
                    cert_key = x509.load_pem_x509_certificate(carried_cert.encode()).public_key()
                except ValueError:
                    return None, "signer: the carried certificate is not a PEM certificate"
                carried = cert_key if isinstance(cert_key, Ed25519PublicKey) else None
            if carried is None:
                return None, "signer: the file names no signing key to compare with the fingerprint"
            if key_fingerprint(carried) != self.fingerprint:
                return None, (
                    f"signer: signed by key {short(key_fingerprint(carried))}, the pinned "
                    f"fingerprint is {short(self.fingerprint)}"
                )
            return carried, ""
        assert self.ca_pem is not None
        if not carried_cert:
            named = f"signed by key {short(key_fingerprint(carried))}, but " if carried else ""
            return None, (
                f"signer: {named}the file carries no signing certificate to check against the "
                "CA; give --cert FILE or pin --key / --fingerprint"
            )
        try:
            certified = signing_key_from_certificate(self.ca_pem, carried_cert.encode())
        except PkiError as exc:
            named = f" (key {short(key_fingerprint(carried))})" if carried is not None else ""
            return None, f"signer{named}: not certified by {self.source}: {exc}"
        if carried is not None and key_fingerprint(carried) != key_fingerprint(certified):
            return None, (
                f"signer: signed by key {short(key_fingerprint(carried))}, but the CA "
                f"certifies {short(key_fingerprint(certified))}"
            )
        return certified, ""
