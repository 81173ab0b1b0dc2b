"""The audit trail as a hash chain of Ed25519-signed entries (pure: no I/O, no clock).

Auditors must be able to show afterwards that nothing was altered, removed, inserted or
reordered. Each entry commits to its predecessor's hash, so changing or dropping one breaks every
link after it; each hash is signed with the coordinator's key, so a forger who recomputes hashes
still cannot produce valid signatures. A truncated tail leaves a valid prefix, so it is caught only
against a head (seq, hash) kept elsewhere (a published or exported head, or the store's).

Canonical form: the hash is SHA-256 over the JSON of ``{seq, at, kind, subject, detail,
prev_hash}`` with sorted keys, compact separators, no ASCII escaping, UTF-8. The signature is
Ed25519 over ``SIGNING_CONTEXT + digest`` (the 32 raw hash bytes behind a fixed prefix): the
prefix keeps a signature made by this key for any other purpose from passing as an audit one.
Hashes and signatures are lowercase hex and checked as such, so no two spellings verify alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "GENESIS_HASH",
    "SIGNING_CONTEXT",
    "AuditEntry",
    "AuditFormatError",
    "ChainCheck",
    "ChainHead",
    "canonical_json",
    "entry_from_json",
    "entry_hash",
    "entry_to_json",
    "generate_signing_key",
    "make_entry",
    "verify_chain",
]

GENESIS_HASH: Final = "0" * 64
SIGNING_CONTEXT: Final = b"evalgrid.audit.v1\x00"

_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_SIG_RE: Final = re.compile(r"[0-9a-f]{128}")
_FIELDS: Final = ("seq", "at", "kind", "subject", "detail", "prev_hash", "hash", "signature")


class AuditFormatError(ValueError):
    """An entry could not be read: malformed JSON, a missing field, a wrong type."""


def canonical_json(value: object) -> bytes:
    """The one byte spelling of a JSON value that hashes are taken over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class ChainHead(NamedTuple):
    """The last entry of a chain, by seq and hash; ``(0, GENESIS_HASH)`` for an empty one."""

    seq: int
    hash: str


GENESIS: Final = ChainHead(0, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One signed link of the chain. ``detail`` holds plain JSON values only."""

    seq: int
    at: str
    kind: str
    subject: str
    detail: Mapping[str, object] = field(hash=False)
    prev_hash: str
    hash: str
    signature: str

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.hash)


def _body(
    seq: int, at: str, kind: str, subject: str, detail: Mapping[str, object], prev_hash: str
) -> dict[str, object]:
    return {
        "seq": seq,
        "at": at,
        "kind": kind,
        "subject": subject,
        "detail": detail,
        "prev_hash": prev_hash,
    }


def entry_hash(entry: AuditEntry) -> str:
    """Recompute what ``entry.hash`` should be from the entry's content."""
    body = _body(entry.seq, entry.at, entry.kind, entry.subject, entry.detail, entry.prev_hash)
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _signed_bytes(hash_hex: str) -> bytes:
    return SIGNING_CONTEXT + bytes.fromhex(hash_hex)


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh coordinator signing key (storing it is the store's business)."""
    return Ed25519PrivateKey.generate()


def _plain_json(detail: Mapping[str, object]) -> dict[str, Any]:
    """Detail as the plain dict a JSON round trip gives back, so hashes survive storage."""
    try:
        plain = json.loads(canonical_json(dict(detail)))
    except (TypeError, ValueError) as exc:
        raise AuditFormatError(f"detail is not plain JSON: {exc}") from exc
    if not isinstance(plain, dict):  # pragma: no cover - dict(detail) always dumps a dict
        raise AuditFormatError("detail must be a JSON object")
    return plain


def make_entry(
    prev: AuditEntry | ChainHead | None,
    *,
    at: str,
    kind: str,
    subject: str,
    detail: Mapping[str, object],
    key: Ed25519PrivateKey,
) -> AuditEntry:
    """The entry that follows ``prev`` (None: the first), hashed and signed with ``key``."""
    head = GENESIS if prev is None else ChainHead(prev.seq, prev.hash)
    if not kind:
        raise ValueError("an audit entry needs a kind")
    plain = _plain_json(detail)
    seq = head.seq + 1
    digest = hashlib.sha256(
        canonical_json(_body(seq, at, kind, subject, plain, head.hash))
    ).hexdigest()
    signature = key.sign(_signed_bytes(digest)).hex()
    return AuditEntry(seq, at, kind, subject, plain, head.hash, digest, signature)


def entry_to_json(entry: AuditEntry) -> str:
    """The entry as one line of canonical JSON (storage and export form)."""
    return canonical_json({name: getattr(entry, name) for name in _FIELDS}).decode("utf-8")


def entry_from_json(text: str | bytes) -> AuditEntry:
    """Parse an entry strictly: exactly the expected fields, each of the expected type.

    Parsing does not verify anything; ``verify_chain`` does.
    """
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditFormatError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict) or set(raw) != set(_FIELDS):
        raise AuditFormatError(f"expected exactly the fields {sorted(_FIELDS)}")
    seq = raw["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise AuditFormatError("seq must be an integer")
    for name in ("at", "kind", "subject", "prev_hash", "hash", "signature"):
        if not isinstance(raw[name], str):
            raise AuditFormatError(f"{name} must be a string")
    if not isinstance(raw["detail"], dict):
        raise AuditFormatError("detail must be an object")
    try:  # JSON escapes can spell lone surrogates, which no hash input may contain
        canonical_json(raw)
    except UnicodeEncodeError as exc:
        raise AuditFormatError(f"not valid Unicode text: {exc.reason}") from exc
    return AuditEntry(
        seq,
        raw["at"],
        raw["kind"],
        raw["subject"],
        raw["detail"],
        raw["prev_hash"],
        raw["hash"],
        raw["signature"],
    )


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The verdict on a chain; on failure, the first bad entry by seq and position (0-based)."""

    ok: bool
    first_bad_seq: int | None
    position: int | None
    reason: str
    entries_checked: int


def _check_entry(entry: AuditEntry, expected: ChainHead, public_key: Ed25519PublicKey) -> str:
    """What is wrong with ``entry`` as the successor of ``expected``; "" when nothing."""
    want = expected.seq + 1
    if entry.seq < want:
        return f"seq {entry.seq} where {want} was expected: entries reordered or inserted"
    if entry.seq > want:
        missing = f"{want}" if entry.seq == want + 1 else f"{want}..{entry.seq - 1}"
        return f"seq {entry.seq} where {want} was expected: entry {missing} removed"
    if entry.prev_hash != expected.hash:
        return f"prev_hash does not link to entry {expected.seq}: an entry was replaced or inserted"
    if not _HASH_RE.fullmatch(entry.hash) or entry.hash != entry_hash(entry):
        return "hash does not match the content: the entry was edited"
    if not _SIG_RE.fullmatch(entry.signature):
        return "signature is malformed"
    try:
        public_key.verify(bytes.fromhex(entry.signature), _signed_bytes(entry.hash))
    except InvalidSignature:
        return "signature does not verify with the coordinator key: forged or re-signed"
    return ""


def verify_chain(
    entries: Iterable[AuditEntry],
    public_key: Ed25519PublicKey,
    *,
    expected_head: tuple[int, str] | None = None,
    anchor: tuple[int, str] | None = None,
) -> ChainCheck:
    """Check a chain link by link and stop at the first bad entry.

    ``anchor`` is the (seq, hash) just before the first entry given (default: genesis), so a
    suffix read from a store can be checked alone. ``expected_head`` is a (seq, hash) the chain
    must reach and contain, such as a head published or exported earlier: without one, a
    truncated tail cannot be told from a shorter chain. Entries after it (the chain grew since)
    are verified like any other.
    """
    start = prev = GENESIS if anchor is None else ChainHead(*anchor)
    head = None if expected_head is None else ChainHead(*expected_head)
    checked = 0
    for position, entry in enumerate(entries):
        problem = _check_entry(entry, prev, public_key)
        if not problem and head is not None and entry.seq == head.seq and entry.hash != head.hash:
            problem = (
                f"hash {entry.hash[:16]}… differs from the expected head's {head.hash[:16]}…: "
                "the chain was forked or rewritten from here"
            )
        if problem:
            reason = f"entry seq {entry.seq} at position {position}: {problem}"
            return ChainCheck(False, entry.seq, position, reason, position)
        prev = entry.head
        checked = position + 1
    if head is not None and prev.seq < head.seq:
        return ChainCheck(
            False,
            prev.seq + 1,
            checked,
            f"entry seq {prev.seq + 1} at position {checked} is missing: the chain ends at seq "
            f"{prev.seq} but the expected head is seq {head.seq}: entries "
            f"{prev.seq + 1}..{head.seq} removed from the tail",
            checked,
        )
    if head is not None and head.seq == start.seq and head.hash != start.hash:
        reason = f"the expected head seq {head.seq} differs from the chain's start at that seq"
        return ChainCheck(False, head.seq, 0, reason, checked)
    return ChainCheck(True, None, None, f"{checked} entries verified, head seq {prev.seq}", checked)
