"""The hash-chained, signed audit trail: an intact chain passes, every kind of tampering fails."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coordinator.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditFormatError,
    ChainCheck,
    canonical_json,
    entry_from_json,
    entry_hash,
    entry_to_json,
    generate_signing_key,
    make_entry,
    verify_chain,
)


@cache
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


def stranger() -> Ed25519PrivateKey:
    return generate_signing_key()


def build(n: int = 5, signer: Ed25519PrivateKey | None = None) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            make_entry(
                entries[-1] if entries else None,
                at=f"2025-06-01T08:{i:02d}:00Z",
                kind="draw.committed" if i % 2 else "project.registered",
                subject=f"P-{i}",
                detail={"n": i, "who": "operator-1", "note": "评标 ok", "list": [1, 2.5, None]},
                key=signer or key(),
            )
        )
    return entries


def check(entries: list[AuditEntry], **kw: tuple[int, str]) -> ChainCheck:
    return verify_chain(entries, key().public_key(), **kw)


def assert_bad(result: ChainCheck, seq: int, position: int, words: str) -> None:
    assert not result.ok
    assert (result.first_bad_seq, result.position) == (seq, position), result.reason
    assert f"seq {seq}" in result.reason
    assert words in result.reason, result.reason


def test_intact_chain_verifies() -> None:
    chain = build()
    result = check(chain, expected_head=(chain[-1].seq, chain[-1].hash))
    assert result.ok and result.entries_checked == 5 and result.first_bad_seq is None
    assert chain[0].seq == 1 and chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    assert check([]).ok


def test_hash_is_sha256_of_canonical_body() -> None:
    entry = build(1)[0]
    body = {k: getattr(entry, k) for k in ("seq", "at", "kind", "subject", "detail", "prev_hash")}
    raw = canonical_json(body)
    assert b"\xe8\xaf\x84" in raw  # UTF-8, not \\u escapes
    assert hashlib.sha256(raw).hexdigest() == entry.hash == entry_hash(entry)


def test_json_round_trip() -> None:
    for entry in build():
        assert entry_from_json(entry_to_json(entry)) == entry
    assert check([entry_from_json(entry_to_json(e)) for e in build()]).ok


def test_detail_is_normalised_to_plain_json() -> None:
    entry = make_entry(None, at="t", kind="k", subject="s", detail={"t": (1, 2)}, key=key())
    assert entry.detail == {"t": [1, 2]}
    with pytest.raises(AuditFormatError):
        make_entry(None, at="t", kind="k", subject="s", detail={"x": {1, 2}}, key=key())
    with pytest.raises(AuditFormatError):
        make_entry(None, at="t", kind="k", subject="s", detail={"x": float("nan")}, key=key())


def test_edited_detail_is_caught() -> None:
    chain = build()
    chain[2] = dataclasses.replace(chain[2], detail={**chain[2].detail, "who": "intruder"})
    assert_bad(check(chain), 3, 2, "edited")


def test_edited_kind_is_caught() -> None:
    chain = build()
    chain[3] = dataclasses.replace(chain[3], kind="draw.revealed")
    assert_bad(check(chain), 4, 3, "edited")


def test_edited_and_rehashed_entry_is_caught_by_the_signature_and_the_next_link() -> None:
    chain = build()
    forged = dataclasses.replace(chain[1], subject="P-x")
    forged = dataclasses.replace(forged, hash=entry_hash(forged))
    assert_bad(check([*chain[:1], forged, *chain[2:]]), 2, 1, "signature")


def test_removed_middle_entry_is_caught() -> None:
    chain = build()
    del chain[2]
    assert_bad(check(chain), 4, 2, "entry 3 removed")


def test_removed_first_entry_is_caught() -> None:
    chain = build()
    assert_bad(check(chain[1:]), 2, 0, "entry 1 removed")


def test_removed_tail_is_caught_against_the_expected_head() -> None:
    chain = build()
    head = (chain[-1].seq, chain[-1].hash)
    assert check(chain[:-1]).ok  # without a head, a shorter chain looks fine
    result = check(chain[:-1], expected_head=head)
    assert_bad(result, 5, 4, "removed from the tail")
    assert_bad(check(chain[:-2], expected_head=head), 4, 3, "entries 4..5")


def test_rewritten_tail_is_caught_against_the_expected_head() -> None:
    chain = build()
    head = (chain[-1].seq, chain[-1].hash)
    redone = make_entry(chain[-2], at="later", kind="k", subject="s", detail={}, key=key())
    assert_bad(check([*chain[:-1], redone], expected_head=head), 5, 4, "forked")
    # A chain that grew after the head was taken is fine.
    grown = [*chain, make_entry(chain[-1], at="t", kind="k", subject="s", detail={}, key=key())]
    assert check(grown, expected_head=head).ok


def test_inserted_entry_with_valid_hash_but_no_valid_signature_is_caught() -> None:
    chain = build()
    forged = make_entry(chain[1], at="x", kind="k", subject="s", detail={}, key=stranger())
    # The forged entry links and hashes correctly; only the signature gives it away.
    assert entry_hash(forged) == forged.hash
    assert_bad(check([*chain[:2], forged, *chain[2:]]), 3, 2, "signature")
    # Without a signature at all.
    unsigned = dataclasses.replace(forged, signature="")
    assert_bad(check([*chain[:2], unsigned, *chain[2:]]), 3, 2, "signature")


def test_inserted_entry_renumbering_the_rest_is_caught() -> None:
    chain = build(3)
    forged = make_entry(chain[0], at="x", kind="k", subject="s", detail={}, key=stranger())
    # Even if the forger shifted all later entries' seq, the first forged one fails.
    assert_bad(check([chain[0], forged]), 2, 1, "signature")
    # Inserted with a duplicate seq: the original successor no longer fits.
    assert_bad(check([chain[0], forged, chain[1], chain[2]]), 2, 1, "signature")


def test_swapped_entries_are_caught() -> None:
    chain = build()
    chain[1], chain[3] = chain[3], chain[1]
    assert_bad(check(chain), 4, 1, "entry 2..3 removed")
    chain = build()
    chain[2], chain[3] = chain[3], chain[2]
    assert_bad(check(chain), 4, 2, "entry 3 removed")


def test_duplicated_entry_is_caught() -> None:
    chain = build()
    assert_bad(check([*chain[:3], chain[2], *chain[3:]]), 3, 3, "reordered or inserted")


def test_chain_signed_by_another_key_is_caught() -> None:
    other = generate_signing_key()
    chain = build(3, signer=other)
    assert_bad(check(chain), 1, 0, "signature")
    assert verify_chain(chain, other.public_key()).ok


def test_signature_spelling_variants_are_refused() -> None:
    chain = build(2)
    upper = dataclasses.replace(chain[1], signature=chain[1].signature.upper())
    assert_bad(check([chain[0], upper]), 2, 1, "signature")


def test_suffix_verifies_from_an_anchor() -> None:
    chain = build()
    anchor = (chain[1].seq, chain[1].hash)
    assert verify_chain(chain[2:], key().public_key(), anchor=anchor).ok
    assert not verify_chain(chain[3:], key().public_key(), anchor=anchor).ok


def test_strict_parsing() -> None:
    good = entry_to_json(build(1)[0])
    with pytest.raises(AuditFormatError):
        entry_from_json(good.replace('"seq":1', '"seq":true'))
    with pytest.raises(AuditFormatError):
        entry_from_json(good[:-1] + ',"extra":1}')
    with pytest.raises(AuditFormatError):
        entry_from_json("[1]")
    with pytest.raises(AuditFormatError):
        entry_from_json(b"\xff")


CHAIN = build(4)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_detected(data: st.DataObject) -> None:
    """Flip any byte of the stored form of any entry: it no longer parses, or it fails."""
    index = data.draw(st.integers(0, len(CHAIN) - 1), label="entry")
    raw = entry_to_json(CHAIN[index]).encode("utf-8")
    at = data.draw(st.integers(0, len(raw) - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="xor")
    mutated = raw[:at] + bytes([raw[at] ^ mask]) + raw[at + 1 :]
    try:
        changed = entry_from_json(mutated)
    except AuditFormatError:
        return  # refused at load
    assume(changed != CHAIN[index] or entry_to_json(changed) != entry_to_json(CHAIN[index]))
    chain = [*CHAIN[:index], changed, *CHAIN[index + 1 :]]
    head = (CHAIN[-1].seq, CHAIN[-1].hash)
    result = verify_chain(chain, key().public_key(), expected_head=head)
    # Caught at the changed entry itself, whichever field the byte was in.
    assert not result.ok and result.position == index, result.reason


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["at", "kind", "subject", "prev_hash", "hash", "signature"]),
    index=st.integers(0, 3),
    data=st.data(),
)
def test_any_single_byte_change_to_a_text_field_is_detected(
    field: str, index: int, data: st.DataObject
) -> None:
    """The same at the field level, including changes that are not valid in the JSON form."""
    original = CHAIN[index]
    value: str = getattr(original, field)
    raw = value.encode("utf-8")
    at = data.draw(st.integers(0, len(raw) - 1))
    mask = data.draw(st.integers(1, 255))
    mutated = (raw[:at] + bytes([raw[at] ^ mask]) + raw[at + 1 :]).decode("utf-8", "replace")
    assume(mutated != value)
    chain = list(CHAIN)
    kwargs: dict[str, Any] = {field: mutated}
    chain[index] = dataclasses.replace(original, **kwargs)
    result = verify_chain(chain, key().public_key())
    assert not result.ok and result.first_bad_seq == original.seq


def test_an_entry_spelling_a_lone_surrogate_is_refused_at_load() -> None:
    """Found by the byte-flip property: a flipped byte can turn text into a \\ud8xx escape."""
    text = entry_to_json(CHAIN[0]).replace('"kind":"', '"kind":"\\udbc4', 1)
    with pytest.raises(AuditFormatError, match="Unicode"):
        entry_from_json(text)
