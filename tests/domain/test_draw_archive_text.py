"""The coordinator stores a draw's archive as text built around the canonical inputs; it must
be exactly the archive `make_archive` describes, and replay."""

from __future__ import annotations

import json

from domain_factories import inputs_for, seed_of, simple_province

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import commit, make_archive, verify_replay
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.registry_snapshot import canonical, record_anchor
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


def test_the_pool_record_encoded_once_gives_the_same_archive_and_anchor() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    seed = seed_of(4)
    result = draw(inputs, seed)
    assert isinstance(result, DrawOutcome)
    commitment = commit(seed, inputs)
    ascii_record = {"format": 1, "registry": "ab" * 32, "day": "2026-03-02",
                    "declared": {"overlap": ["E2", "E10"], "workload": [], "conduct": []}}
    other_record = {**ascii_record, "day": "二〇二六"}  # not ASCII: encoded as before
    for record in (ascii_record, other_record):
        text = canonical(record)
        assert archive_json(commitment, inputs, result, seed, record, text) == \
            archive_json(commitment, inputs, result, seed, record)
        assert record_anchor(record, text) == record_anchor(record)
    assert '"day":"\\u4e8c' in archive_json(commitment, inputs, result, seed, other_record,
                                            canonical(other_record))
