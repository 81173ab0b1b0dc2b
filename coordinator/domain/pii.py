"""Personal data at rest: experts' ID and phone numbers sealed, looked up by a keyed hash.

An expert's ID number and phone number are the two fields that identify and reach a person;
a Redis dump, a backup or the append-only file must not give them away. So the store keeps
them only inside a sealed box (``coordinator.domain.seal``: AES-256-GCM under a fresh data key,
wrapped by a key derived from the master key for purpose "pii", bound to the expert's id), and
the desk's lookup by ID number goes through ``id_lookup``: HMAC-SHA256 under a second derived
key, over the normalised number. Without the master key neither the box nor the index says
anything; with it, the index answers "which expert holds this ID" and nothing more.

Keys are derived with HKDF-SHA256 from the master key, one per purpose, so a key used for
the index can never open a box, and rotating the master key rotates both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from coordinator.domain.seal import KEY_BYTES, SealedBox, SealError, seal, unseal

__all__ = [
    "PII_FIELDS",
    "PURPOSE",
    "PersonalData",
    "PiiKeys",
    "derive_key",
    "normalise_id_number",
]

PURPOSE: Final = "pii"
#: The expert fields that never reach the store in clear.
PII_FIELDS: Final[tuple[str, ...]] = ("id_number", "phone")
_CONTEXT: Final = b"evalgrid.kdf.v1:"


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the master key (HKDF-SHA256)."""
    if len(master_key) != KEY_BYTES:
        raise ValueError(f"a master key is {KEY_BYTES} bytes, got {len(master_key)}")
    if not purpose:
        raise ValueError("purpose: a derived key needs a purpose")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=_CONTEXT + purpose.encode("utf-8")).derive(master_key)


def normalise_id_number(id_number: str) -> str:
    """The form the index is keyed on: no surrounding or inner spaces, upper-case check letter
    (a Chinese resident ID ends in a digit or "X"; desks type "x" as often as "X")."""
    return "".join(id_number.split()).upper()


@dataclass(frozen=True)
class PersonalData:
    id_number: str
    phone: str


@dataclass(frozen=True)
class PiiKeys:
    """The two derived keys: one seals, one indexes. Never logged, never stored."""

    seal_key: bytes
    index_key: bytes

    @classmethod
    def from_master(cls, master_key: bytes) -> PiiKeys:
        return cls(derive_key(master_key, PURPOSE), derive_key(master_key, PURPOSE + "-index"))

    def __repr__(self) -> str:  # keys never end up in a log line or a traceback
        return "PiiKeys(<derived keys>)"

    def id_lookup(self, id_number: str) -> str:
        """The index key for an ID number: hex HMAC-SHA256 of its normalised form."""
        digest = hmac.new(self.index_key, normalise_id_number(id_number).encode("utf-8"),
                          hashlib.sha256)
        return digest.hexdigest()

    def seal(self, expert_id: str, data: PersonalData) -> str:
        """The sealed box (JSON text) holding one expert's personal data, bound to the id."""
        # Not padded (unlike allocations): both fields have fixed public formats, so the length
        # tells nothing, and a national pool of 300,000 boxes stays small.
        raw = json.dumps([data.id_number, data.phone], ensure_ascii=False).encode("utf-8")
        return seal(self.seal_key, expert_id, PURPOSE, raw).to_json()

    def unseal(self, expert_id: str, sealed: str) -> PersonalData:
        """Open an expert's box; ``SealError`` if it is not this expert's or was changed."""
        raw = unseal(self.seal_key, SealedBox.from_json(sealed), project_id=expert_id,
                     purpose=PURPOSE)
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SealError("the personal data box is not JSON") from exc
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, str) for v in value)):
            raise SealError("the personal data box lacks id_number or phone")
        return PersonalData(value[0], value[1])
