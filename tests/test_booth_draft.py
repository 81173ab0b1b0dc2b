"""The booth's draft on disk: kept per session, checked again on load, never trusted blindly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from site_agent.booth_draft import load_draft

BIDS = ["K7F2", "M3QX"]
MAXIMA = {"T1": Decimal(40), "T2": Decimal(10)}


def test_a_draft_comes_back_for_its_session_only(tmp_path: Path) -> None:
    path = tmp_path / "draft.json"
    draft = load_draft(path, "s-1", BIDS, MAXIMA)
    draft.put("K7F2", "T1", "12.5")
    assert load_draft(path, "s-1", BIDS, MAXIMA).scores == {("K7F2", "T1"): "12.5"}
    other = load_draft(path, "s-2", BIDS, MAXIMA)  # another expert's session: nothing shown
    assert other.scores == {} and not path.exists() and not path.with_suffix(".old").exists()


def test_forged_values_are_dropped_by_the_shared_rule(tmp_path: Path) -> None:
    path = tmp_path / "draft.json"
    path.write_text(json.dumps({"version": 1, "session_id": "s-1", "scores": [
        ["K7F2", "T1", "2.555"], ["K7F2", "T2", "11"], ["ZZZZ", "T1", "1"], ["M3QX", "T1", "7"],
        [1, 2, 3], "junk"]}))
    draft = load_draft(path, "s-1", BIDS, MAXIMA)
    assert draft.scores == {("M3QX", "T1"): "7"}
    assert "5 saved value(s) did not fit the sheet and were dropped" in draft.note


def test_an_undecodable_draft_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "draft.json"
    for junk in (b"\xff\xfe", b"[]", b'{"version": 9}', b'{"version": 1, "scores": 5}'):
        path.write_bytes(junk)
        draft = load_draft(path, "s-1", BIDS, MAXIMA)
        assert draft.scores == {} and "set aside" in draft.note, junk
        assert path.with_suffix(".old").read_bytes() == junk
