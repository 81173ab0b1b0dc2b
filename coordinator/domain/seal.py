"""Sealing the allocation at rest: envelope encryption with AES-256-GCM under a master key.

Who sits where for which project must be unreadable in a Redis dump or a backup until it is
unsealed at evaluation start. Each box gets a fresh 32-byte data key that encrypts the content
with AES-256-GCM; the data key is stored wrapped by the coordinator's master key.

Choices, and why:
- Wrapping is AES key wrap (RFC 3394, NIST SP 800-38F): made for wrapping keys, deterministic
  with its own integrity check, so there is no second nonce to manage. Rotating the master key
  rewraps the small wrapped key only (``rewrap``), never re-encrypts the content.
- A fresh data key per box (so per project and purpose, and again on every re-seal) means a GCM
  nonce is used once under its key: random 96-bit nonces can never collide where it matters.
- The associated data binds the box to its project and purpose: relabelling a box breaks its tag.
  ``unseal`` also takes the project and purpose the caller expects and refuses a box made for any
  other, so a box copied intact into another project's slot does not open there.
- ``seal_json`` pads the JSON with spaces to a multiple of ``PAD_TO`` bytes so the length of the
  ciphertext does not give away the size of a committee to the byte.
- Two stored forms: canonical JSON with base64 fields (``to_json``, most boxes) and a binary
  form (``to_bytes``, draw archives, 70 KB at national size: a third fewer bytes, no base64);
  ``SealedBox.parse`` reads either, both parsed strictly.

The only impurity is ``secrets.token_bytes`` for data keys and nonces: encryption needs fresh
randomness, and replays of the draw never depend on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

__all__ = [
    "BINARY_MAGIC",
    "KEY_BYTES",
    "NONCE_BYTES",
    "PAD_TO",
    "SEAL_VERSION",
    "SealError",
    "SealedBox",
    "associated_data",
    "rewrap",
    "seal",
    "seal_json",
    "unseal",
    "unseal_json",
]

SEAL_VERSION: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
WRAPPED_BYTES: Final = KEY_BYTES + 8  # RFC 3394 adds one 64-bit block
PAD_TO: Final = 256
BINARY_MAGIC: Final = b"\x00EGSB"  # a NUL first: never the start of JSON text
_BINARY_HEAD: Final = struct.Struct(">5sBHHHI")  # magic, version, field lengths
_CONTEXT: Final = "evalgrid.seal.v1"


class SealError(ValueError):
    """A box does not open: tampered, for another project or purpose, or the wrong master key."""


def associated_data(project_id: str, purpose: str) -> bytes:
    """The bytes a box is bound to: unambiguous (JSON), versioned, per project and purpose."""
    if not project_id or not purpose:
        raise ValueError("a sealed box needs a project id and a purpose")
    return json.dumps(
        [_CONTEXT, project_id, purpose], ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def _check_master(master_key: bytes) -> None:
    if len(master_key) != KEY_BYTES:
        raise ValueError(f"a master key is {KEY_BYTES} bytes, got {len(master_key)}")


@dataclass(frozen=True, slots=True)
class SealedBox:
    """Everything needed to open a box, except the master key. Safe to store anywhere."""

    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    aad: bytes
    version: int = SEAL_VERSION

    @property
    def project_id(self) -> str:
        return self._aad_parts()[1]

    @property
    def purpose(self) -> str:
        return self._aad_parts()[2]

    def _aad_parts(self) -> list[str]:
        try:
            parts = json.loads(self.aad)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SealError("associated data is not readable") from exc
        if not (isinstance(parts, list) and len(parts) == 3 and parts[0] == _CONTEXT):
            raise SealError("associated data is not an evalgrid seal label")
        return [str(p) for p in parts]

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces), spelled out: base64 needs no escaping, and
        a day plan seals a dozen boxes per project."""
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode("ascii")

        return (f'{{"aad":"{b64(self.aad)}","ciphertext":"{b64(self.ciphertext)}",'
                f'"nonce":"{b64(self.nonce)}","v":{int(self.version)},'
                f'"wrapped_key":"{b64(self.wrapped_key)}"}}')

    def to_bytes(self) -> bytes:
        """The binary form: `BINARY_MAGIC`, the version, then each field with its length
        (2-byte big-endian; the ciphertext's 4-byte): wrapped key, nonce, associated data,
        ciphertext. For large boxes (a national draw's archive is 70 KB): no base64 to encode
        and a third fewer bytes to store than `to_json`."""
        head = _BINARY_HEAD.pack(BINARY_MAGIC, self.version, len(self.wrapped_key),
                                 len(self.nonce), len(self.aad), len(self.ciphertext))
        return b"".join((head, self.wrapped_key, self.nonce, self.aad, self.ciphertext))

    @classmethod
    def from_bytes(cls, raw: bytes) -> SealedBox:
        """Parse the binary form strictly; any malformation is a ``SealError``."""
        if len(raw) < _BINARY_HEAD.size or raw[:len(BINARY_MAGIC)] != BINARY_MAGIC:
            raise SealError("sealed box is not in the binary form")
        _, version, n_key, n_nonce, n_aad, n_text = _BINARY_HEAD.unpack_from(raw)
        if version != SEAL_VERSION:
            raise SealError(f"unknown sealed box version {version!r}")
        at = _BINARY_HEAD.size
        if len(raw) != at + n_key + n_nonce + n_aad + n_text:
            raise SealError("sealed box is cut short or has bytes past its end")
        key_end = at + n_key
        nonce_end = key_end + n_nonce
        aad_end = nonce_end + n_aad
        return cls(wrapped_key=raw[at:key_end], nonce=raw[key_end:nonce_end],
                   ciphertext=raw[aad_end:], aad=raw[nonce_end:aad_end])

    @classmethod
    def parse(cls, stored: str | bytes) -> SealedBox:
        """A box as stored, in either form (JSON text, or the binary form of `to_bytes`)."""
        if isinstance(stored, bytes) and stored.startswith(BINARY_MAGIC):
            return cls.from_bytes(stored)
        return cls.from_json(stored)

    @classmethod
    def from_json(cls, text: str | bytes) -> SealedBox:
        """Parse strictly; any malformed field is a ``SealError``, like any tamper."""
        try:
            raw = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SealError("sealed box is not JSON") from exc
        fields = {"v", "wrapped_key", "nonce", "ciphertext", "aad"}
        if not isinstance(raw, dict) or set(raw) != fields:
            raise SealError(f"sealed box needs exactly the fields {sorted(fields)}")
        if raw["v"] != SEAL_VERSION or isinstance(raw["v"], bool):
            raise SealError(f"unknown sealed box version {raw['v']!r}")
        decoded: dict[str, bytes] = {}
        for name in ("wrapped_key", "nonce", "ciphertext", "aad"):
            value = raw[name]
            if not isinstance(value, str):
                raise SealError(f"{name} must be base64 text")
            try:
                decoded[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SealError(f"{name} is not valid base64") from exc
        return cls(decoded["wrapped_key"], decoded["nonce"], decoded["ciphertext"], decoded["aad"])


def seal(master_key: bytes, project_id: str, purpose: str, plaintext: bytes) -> SealedBox:
    """Encrypt ``plaintext`` for one project and purpose under a fresh data key."""
    _check_master(master_key)
    aad = associated_data(project_id, purpose)
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
    return SealedBox(aes_key_wrap(master_key, data_key), nonce, ciphertext, aad)


def _data_key(master_key: bytes, box: SealedBox) -> bytes:
    _check_master(master_key)
    if box.version != SEAL_VERSION:
        raise SealError(f"unknown sealed box version {box.version}")
    if len(box.wrapped_key) != WRAPPED_BYTES:
        raise SealError("wrapped key has the wrong length")
    try:
        return aes_key_unwrap(master_key, box.wrapped_key)
    except InvalidUnwrap as exc:
        raise SealError("the data key does not unwrap: wrong master key or tampered") from exc


def unseal(
    master_key: bytes,
    box: SealedBox,
    *,
    project_id: str | None = None,
    purpose: str | None = None,
) -> bytes:
    """Open a box; ``SealError`` if anything about it was changed or the key is wrong.

    Pass the project and purpose the caller expects: they are then checked against the box, so
    a box copied into another project's slot (intact, and authentic for its own project) does
    not open there. Left out, the box's own label is only authenticated, not checked.
    """
    parts = box._aad_parts()
    if project_id is not None and parts[1] != project_id:
        raise SealError("the box is sealed for another project")
    if purpose is not None and parts[2] != purpose:
        raise SealError("the box is sealed for another purpose")
    expected = associated_data(parts[1], parts[2])
    if box.aad != expected:
        raise SealError("associated data is not in canonical form: tampered")
    if len(box.nonce) != NONCE_BYTES:
        raise SealError("nonce has the wrong length")
    data_key = _data_key(master_key, box)
    try:
        return AESGCM(data_key).decrypt(box.nonce, box.ciphertext, expected)
    except InvalidTag as exc:
        raise SealError("the content does not authenticate: tampered") from exc


def rewrap(old_master: bytes, new_master: bytes, box: SealedBox) -> SealedBox:
    """The same box under a new master key (key rotation), content untouched."""
    data_key = _data_key(old_master, box)
    _check_master(new_master)
    return SealedBox(aes_key_wrap(new_master, data_key), box.nonce, box.ciphertext, box.aad)


def seal_json(
    master_key: bytes, project_id: str, purpose: str, value: Mapping[str, object]
) -> SealedBox:
    """Seal a JSON object, padded so its exact size does not show."""
    text = json.dumps(dict(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return seal_json_text(master_key, project_id, purpose, text)


def seal_json_text(master_key: bytes, project_id: str, purpose: str, text: str) -> SealedBox:
    """Seal JSON the caller already encoded (a large archive need not be encoded twice)."""
    raw = text.encode("utf-8")
    raw += b" " * (-len(raw) % PAD_TO)
    return seal(master_key, project_id, purpose, raw)


def unseal_json(
    master_key: bytes,
    box: SealedBox,
    *,
    project_id: str | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    """Open a box made by ``seal_json`` (see ``unseal`` for the expected project and purpose)."""
    raw = unseal(master_key, box, project_id=project_id, purpose=purpose)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SealError("the sealed content is not JSON") from exc
    if not isinstance(value, dict):
        raise SealError("the sealed content is not a JSON object")
    return value
