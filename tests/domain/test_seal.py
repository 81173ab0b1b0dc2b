"""Sealed allocations: they open only for their project and purpose, under the right key."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.domain.seal import (
    PAD_TO,
    SealedBox,
    SealError,
    associated_data,
    rewrap,
    seal,
    seal_json,
    unseal,
    unseal_json,
)

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
ALLOCATION = {
    "project": "P-2025-0042",
    "seats": [
        {"expert": "EXP-330102-7781", "venue": "V-HZ-03", "workstation": "WS-HZ-03-17"},
        {"expert": "EXP-330203-1142", "venue": "V-NB-01", "workstation": "WS-NB-01-02"},
    ],
}
FIELDS = ("wrapped_key", "nonce", "ciphertext", "aad")


def changed(sealed: SealedBox, field: str, value: bytes) -> SealedBox:
    kwargs: dict[str, Any] = {field: value}
    return dataclasses.replace(sealed, **kwargs)


def box() -> SealedBox:
    return seal_json(MASTER, "P-2025-0042", "allocation", ALLOCATION)


def open_(b: SealedBox, project: str = "P-2025-0042", purpose: str = "allocation") -> bytes:
    return unseal(MASTER, b, project_id=project, purpose=purpose)


def test_round_trip() -> None:
    sealed = box()
    assert unseal_json(MASTER, sealed, project_id="P-2025-0042", purpose="allocation") == ALLOCATION
    assert sealed.project_id == "P-2025-0042" and sealed.purpose == "allocation"
    again = SealedBox.from_json(sealed.to_json())
    assert again == sealed and json.loads(open_(again)) == ALLOCATION
    raw = seal(MASTER, "P-1", "notes", b"\x00\xffbinary")
    assert unseal(MASTER, raw, project_id="P-1", purpose="notes") == b"\x00\xffbinary"


def test_every_box_has_its_own_data_key_and_nonce() -> None:
    a, b = box(), box()
    assert a.wrapped_key != b.wrapped_key and a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_json_is_padded() -> None:
    assert len(box().ciphertext) % PAD_TO == 16  # GCM tag on a padded body
    small = seal_json(MASTER, "P", "allocation", {"seats": []})
    assert len(small.ciphertext) == len(box().ciphertext) == PAD_TO + 16


@pytest.mark.parametrize("field", FIELDS)
def test_tampering_with_any_field_is_refused(field: str) -> None:
    sealed = box()
    value = bytearray(getattr(sealed, field))
    value[len(value) // 2] ^= 0x01
    with pytest.raises(SealError):
        open_(changed(sealed, field, bytes(value)))


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), data=st.data())
def test_any_single_byte_change_is_refused(field: str, data: st.DataObject) -> None:
    sealed = box()
    value = bytearray(getattr(sealed, field))
    at = data.draw(st.integers(0, len(value) - 1))
    value[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SealError):
        open_(changed(sealed, field, bytes(value)))


def test_truncated_or_extended_fields_are_refused() -> None:
    sealed = box()
    for field in FIELDS:
        value: bytes = getattr(sealed, field)
        for variant in (value[:-1], value + b"\x00", b""):
            with pytest.raises(SealError):
                open_(changed(sealed, field, variant))


def test_wrong_project_or_purpose_is_refused() -> None:
    sealed = box()
    with pytest.raises(SealError, match="another project"):
        open_(sealed, project="P-2025-0043")
    with pytest.raises(SealError, match="another purpose"):
        open_(sealed, purpose="notice")
    # Without expectations the box's own (authenticated) label is used.
    assert json.loads(unseal(MASTER, sealed)) == ALLOCATION
    assert unseal_json(MASTER, sealed, project_id="P-2025-0042") == ALLOCATION


def test_box_moved_to_another_project_does_not_open() -> None:
    """Relabelling a box with another project's associated data breaks its tag."""
    sealed = box()
    relabelled = dataclasses.replace(sealed, aad=associated_data("P-2025-0043", "allocation"))
    with pytest.raises(SealError, match="tampered"):
        open_(relabelled, project="P-2025-0043")


def test_wrong_master_key_is_refused() -> None:
    with pytest.raises(SealError, match="master key"):
        unseal(OTHER_MASTER, box(), project_id="P-2025-0042", purpose="allocation")
    with pytest.raises(ValueError):
        seal(b"short", "P", "allocation", b"x")


def test_rewrap_under_a_new_master_key() -> None:
    sealed = box()
    moved = rewrap(MASTER, OTHER_MASTER, sealed)
    assert moved.ciphertext == sealed.ciphertext
    assert unseal(OTHER_MASTER, moved, project_id="P-2025-0042", purpose="allocation") == (
        open_(sealed)
    )
    with pytest.raises(SealError):
        open_(moved)


@pytest.mark.parametrize("field", FIELDS)
def test_tampering_is_refused_without_expectations_too(field: str) -> None:
    sealed = box()
    value = bytearray(getattr(sealed, field))
    value[-1] ^= 0x40
    with pytest.raises(SealError):
        unseal(MASTER, changed(sealed, field, bytes(value)))


def test_non_canonical_label_is_refused() -> None:
    sealed = box()
    spaced = b'["evalgrid.seal.v1", "P-2025-0042", "allocation"]'
    with pytest.raises(SealError, match="canonical"):
        unseal(MASTER, changed(sealed, "aad", spaced), project_id="P-2025-0042")


def test_a_dump_reveals_nothing() -> None:
    sealed = box()
    stored = sealed.to_json().encode()
    secrets = [
        "EXP-330102-7781",
        "EXP-330203-1142",
        "WS-HZ-03-17",
        "V-NB-01",
        "expert",
        "workstation",
    ]
    for secret in secrets:
        raw = secret.encode()
        assert raw not in sealed.ciphertext and raw not in sealed.wrapped_key
        assert raw not in stored
        assert base64.b64encode(raw)[:8] not in stored
    assert MASTER not in stored and MASTER.hex().encode() not in stored


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"v":1}',
        '{"v":2,"wrapped_key":"","nonce":"","ciphertext":"","aad":""}',
        '{"v":1,"wrapped_key":"@@","nonce":"","ciphertext":"","aad":""}',
        '{"v":1,"wrapped_key":5,"nonce":"","ciphertext":"","aad":""}',
    ],
)
def test_malformed_boxes_are_refused(text: str) -> None:
    with pytest.raises(SealError):
        SealedBox.from_json(text)


def test_the_stored_form_is_canonical_json() -> None:
    sealed = box()
    raw = {"wrapped_key": sealed.wrapped_key, "nonce": sealed.nonce,
           "ciphertext": sealed.ciphertext, "aad": sealed.aad}
    fields: dict[str, object] = {k: base64.b64encode(v).decode() for k, v in raw.items()}
    expected = json.dumps({**fields, "v": sealed.version}, sort_keys=True,
                          separators=(",", ":"))
    assert sealed.to_json() == expected


def test_the_binary_form_round_trips_and_is_smaller() -> None:
    sealed = seal(MASTER, "D-1", "draw", b"x" * 4096)
    raw = sealed.to_bytes()
    assert SealedBox.from_bytes(raw) == sealed == SealedBox.parse(raw)
    assert SealedBox.parse(sealed.to_json()) == sealed  # the JSON form still reads
    assert SealedBox.parse(sealed.to_json().encode()) == sealed  # as Redis gives it back
    assert unseal(MASTER, SealedBox.parse(raw), project_id="D-1", purpose="draw") == b"x" * 4096
    assert len(raw) < 0.8 * len(sealed.to_json())


@settings(max_examples=60)
@given(st.data())
def test_a_binary_box_cut_grown_or_changed_anywhere_is_refused(data: st.DataObject) -> None:
    """Cut short, extended, or one byte changed: refused as malformed, or it does not open."""
    raw = box().to_bytes()
    how = data.draw(st.sampled_from(["cut", "grow", "flip"]))
    if how == "cut":
        bad = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif how == "grow":
        bad = raw + data.draw(st.binary(min_size=1, max_size=8))
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        bad = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:]
    with pytest.raises(SealError):
        open_(SealedBox.parse(bad))
