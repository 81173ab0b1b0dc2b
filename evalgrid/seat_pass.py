"""A seat's pass: what a guest agent needs to admit a member while the coordinator is away.

At evaluation start the coordinator sends each guest agent, per seat, the member's opaque
reference, name and sheet form sealed with AES-256-GCM under a key stretched (scrypt) from the
member's ID number and the notice's one-time code, with the session as associated data. The
agent holds neither: it can open a pass only when the member types them at the booth, which
is the local sign-in check. Wrong input fails authentication; the code itself never leaves
the coordinator. The scrypt cost is recorded in the pass so it can be raised later.

Shared by the coordinator (seals) and the agent (opens): neither imports the other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT: Final = 1
# scrypt n=2^12, r=8: about 20 ms per try on one core; a pass exists only from evaluation
# start, when the member is minutes away from signing in anyway.
COST: Final = 12


class SeatPassError(ValueError):
    """The pass does not open with this input (or is not a pass)."""


def _key(id_number: str, code: str, salt: bytes, cost: int) -> bytes:
    secret = id_number.strip().encode() + b"\x00" + code.strip().encode()
    return hashlib.scrypt(secret, salt=salt, n=2 ** cost, r=8, p=1, dklen=32,
                          maxmem=2 ** (cost + 11))


def seal(payload: bytes, *, session_id: str, id_number: str, code: str,
         cost: int = COST) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    box = AESGCM(_key(id_number, code, salt, cost)).encrypt(
        nonce, payload, b"seat-pass\x00" + session_id.encode())
    record = {"v": FORMAT, "cost": cost, "salt": salt.hex(), "nonce": nonce.hex(),
              "box": base64.b64encode(box).decode("ascii")}
    return json.dumps(record, sort_keys=True).encode()


def open_pass(sealed: bytes, *, session_id: str, id_number: str, code: str) -> bytes:
    try:
        record = json.loads(sealed)
        if record.get("v") != FORMAT:
            raise SeatPassError(f"pass: unknown format {record.get('v')!r}")
        cost = int(record["cost"])
        if not 10 <= cost <= 20:
            raise SeatPassError(f"pass: cost {cost} out of range")
        key = _key(id_number, code, bytes.fromhex(record["salt"]), cost)
        return AESGCM(key).decrypt(bytes.fromhex(record["nonce"]),
                                   base64.b64decode(record["box"]),
                                   b"seat-pass\x00" + session_id.encode())
    except InvalidTag:
        raise SeatPassError("code: identity or code does not match this session") from None
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, SeatPassError):
            raise
        raise SeatPassError(f"pass: malformed ({exc})") from None
