"""The coordinator's own secrets on disk: the audit signing key and the sealing master key.

Both live in the coordinator's data directory (``DataDir.keys``, mode 0700) as files of mode 0600.
A key file that others may read is refused rather than used, as ssh does: a leaked master key
unseals every allocation, a leaked signing key lets anyone forge the audit trail.

Creation is race-free: the key is written to a private temporary file, fsynced, then hard-linked
into place, which fails if another process got there first; the loser then loads the winner's key,
so two coordinators started at once on one data directory still share one key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "MASTER_KEY_BYTES",
    "KeyFileError",
    "load_or_create_master_key",
    "load_or_create_signing_key",
    "load_public_key",
    "public_key_from_hex",
    "public_key_hex",
    "public_key_path",
]

MASTER_KEY_BYTES: Final = 32


class KeyFileError(RuntimeError):
    """A key file is unreadable, malformed, or readable by others."""


def public_key_path(private_path: Path) -> Path:
    """Where the public half of a signing key is written: ``x.pem`` -> ``x.pub.pem``."""
    stem = private_path.name.removesuffix(".pem")
    return private_path.with_name(f"{stem}.pub.pem")


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key in hex: short enough to print, publish or pin in config."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise KeyFileError(f"not a hex Ed25519 public key: {exc}") from exc


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` only if it does not exist yet; False when another writer won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible to others (mode {stat.S_IMODE(mode):o}); "
            "chmod 600 it or replace the key"
        )
    return data


def _load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    if not path.exists():
        _create_exclusive(path, make(), 0o600)
    return _read_private(path)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The audit signing key at ``path`` (PKCS#8 PEM, 0600), created on first use.

    The public key is (re)written beside it as ``*.pub.pem`` for auditors, who verify the chain
    with it and need nothing secret.
    """

    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    pem = _load_or_create(path, make)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = public_key_path(path)
    if not pub_path.exists() or pub_path.read_bytes() != public_pem:
        pub_path.unlink(missing_ok=True)
        _create_exclusive(pub_path, public_pem, 0o644)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's view: the public key from a ``*.pub.pem`` file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot load public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_or_create_master_key(path: Path) -> bytes:
    """The 32-byte sealing master key at ``path`` (raw bytes, 0600), created on first use."""
    key = _load_or_create(path, lambda: secrets.token_bytes(MASTER_KEY_BYTES))
    if len(key) != MASTER_KEY_BYTES:
        raise KeyFileError(f"{path} holds {len(key)} bytes, a master key is {MASTER_KEY_BYTES}")
    return key
