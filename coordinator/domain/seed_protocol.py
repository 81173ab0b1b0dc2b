"""Seeds no single party controls: commit-reveal between coordinator and supervisor (pure).

A seed chosen by the coordinator alone lets whoever runs it try seeds until a draw pleases, then
commit. Here the seed of a day (its seed round: every draw of the day derives from it) combines
two secrets, each committed (SHA-256) before the
other is revealed, and optionally a public value named in advance (RFC 3797 style, e.g. a
lottery result or beacon round that does not exist yet when the commitments are made):

1. the supervisor (an auditor certificate) commits to its secret S: ``H_s = SHA-256(S)``;
2. the coordinator then makes its secret C and publishes ``H_c = SHA-256(C)``; both go into the
   signed audit chain, H_c after H_s;
3. the supervisor reveals S (checked against H_s) after H_c is published; the public value, if
   named, is entered then;
4. ``seed = HMAC-SHA256(key=C, msg=TAG || 0 || len(S) as 1 byte || S || public value UTF-8)``;
   each draw's seed is ``HMAC-SHA256(seed, label)``, the label fixed by the draw
   (``domain.day_plan.draw_label``: the project id for a first draw, planned or single);
5. after the awards C is revealed (checked against H_c) and anyone recomputes every seed.

Who can bias what: the coordinator fixes C before it learns S, so trying many C is useless (it
cannot tell which C gives which draw); the supervisor fixes S before it learns C (never revealed
until the awards), so it cannot aim either. Either party can *withhold* (not reveal): the draw
then waits, and after the configured timeout falls back to C alone, an audited, visible event.
Biasing a draw takes the coordinator and the supervisor together (and, with a public value, a
value that is not yet known when both commit is out of either's reach).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SECRET_BYTES", "SeedRefused", "check_reveal", "commitment", "final_seed"]

SECRET_BYTES = 32
_TAG = b"evalgrid-seed-v1"


class SeedRefused(ValueError):
    """A reveal does not match its commitment, or a secret is malformed."""


def commitment(secret: bytes) -> str:
    """SHA-256 hex of a secret: what a party publishes before the other reveals."""
    return hashlib.sha256(secret).hexdigest()


def check_reveal(who: str, secret: bytes, committed: str) -> None:
    """Raise SeedRefused unless ``secret`` is the one ``who`` committed to."""
    if len(secret) != SECRET_BYTES:
        raise SeedRefused(f"{who}: the secret must be {SECRET_BYTES} bytes, not {len(secret)}")
    if not hmac.compare_digest(commitment(secret), committed):
        raise SeedRefused(f"{who}: the revealed secret does not hash to the commitment "
                          f"{committed[:16]}")


def final_seed(coordinator: bytes, supervisor: bytes | None, public_value: str = "") -> bytes:
    """The seed of a day's round from both secrets (supervisor None: the audited fallback)."""
    if len(coordinator) != SECRET_BYTES:
        raise SeedRefused(f"coordinator: the secret must be {SECRET_BYTES} bytes")
    part = b"" if supervisor is None else supervisor
    if supervisor is not None and len(part) != SECRET_BYTES:
        raise SeedRefused(f"supervisor: the secret must be {SECRET_BYTES} bytes")
    message = _TAG + b"\0" + bytes([len(part)]) + part + public_value.encode("utf-8")
    return hmac.new(coordinator, message, hashlib.sha256).digest()
