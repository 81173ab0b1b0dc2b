"""The coordinator stores a draw's archive as text built around the canonical inputs; it must
be exactly the archive `make_archive` describes, and replay."""

from __future__ import annotations

import json

from domain_factories import inputs_for, seed_of, simple_province

from coordinator.domain.draw import DrawOutcome, commit, draw, make_archive, verify_replay
from coordinator.drawing import archive_json


def test_archive_text_is_make_archive_and_verifies() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    seed = seed_of(3)
    result = draw(inputs, seed)
    assert isinstance(result, DrawOutcome)
    commitment = commit(seed, inputs)
    text = archive_json(commitment, inputs, result, seed)
    expected = json.loads(json.dumps(make_archive(commitment, inputs, result, seed)))
    assert json.loads(text) == expected
    assert verify_replay(json.loads(text)) == []
