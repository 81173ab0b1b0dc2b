"""Files written by earlier versions stay verifiable (tests/fixtures/formats, never regenerated)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.offline import verify_draw_file
from coordinator.report import verify_report
from evalgrid.trust import PinnedTrust

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
KEY_1 = FIXTURES / "coordinator-signing-1.pub.pem"


def test_a_format_1_export_replays_under_its_pinned_key_but_is_not_anchored() -> None:
    path = FIXTURES / "draw-export-1.json"
    assert json.loads(path.read_text())["format"] == "evalgrid-draw-archive/1"
    trust = PinnedTrust.from_key_file(KEY_1)
    assert verify_draw_file(path, trust, accept_unanchored=True) == ([], 2)
    problems, _ = verify_draw_file(path, trust)
    assert problems == ["format: evalgrid-draw-archive/1 carries no signed audit entries, so "
                        "its commitments are not anchored in the chain (replayed only; pass "
                        "--accept-unanchored to accept that)"]


def test_a_format_1_export_with_a_changed_seat_fails_its_replay(tmp_path: Path) -> None:
    body = json.loads((FIXTURES / "draw-export-1.json").read_text())
    seats = body["draws"][0]["result"]["seats"]
    seats[0]["expert_id"], seats[1]["expert_id"] = seats[1]["expert_id"], seats[0]["expert_id"]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(body))
    problems, _ = verify_draw_file(path, PinnedTrust.from_key_file(KEY_1),
                                   accept_unanchored=True)
    assert any("result.seats[0].expert_id" in p for p in problems)


def test_a_report_of_the_first_format_verifies_under_its_pinned_key_only() -> None:
    report = FIXTURES / "report-1.json"
    assert "signer_certificate" not in json.loads(report.read_text())
    assert verify_report(report, PinnedTrust.from_key_file(KEY_1)) == []
    other = PinnedTrust(source="another key", key=Ed25519PrivateKey.generate().public_key())
    problems = verify_report(report, other)
    assert len(problems) == 1 and problems[0].startswith("signer: signed by key")
