"""The readable report: ranking, warnings and returns shown, user text escaped."""

from __future__ import annotations

from coordinator.report import render_html


def test_report_page_escapes_names_and_shows_ranking_and_warnings() -> None:
    body = {
        "project": {"id": "P1", "name": "<script>alert(1)</script> Bridge", "category": "works",
                    "method": "comprehensive", "window": ["2026-01-01T01:00", "2026-01-01T04:00"]},
        "evaluation": {
            "failed": False, "ranking": ["C2", "C1"],
            "bids": [
                {"bidder_id": "C2", "code": "B-AAAA", "price": "90.00", "price_score": "30.00",
                 "technical": "60.00", "total": "90.00", "rank": 1},
                {"bidder_id": "C1", "code": "B-BBBB", "price": "100.00", "price_score": "27.00",
                 "technical": "55.00", "total": "82.00", "rank": 2},
            ],
            "warnings": [{"kind": "deviation", "expert_ref": "exp-1", "bidder_id": "C1",
                          "criterion_id": "Q", "score": "10.00", "mean": "40.00",
                          "scores": []}],
        },
        "bid_codes": {"C1": "B-BBBB", "C2": "B-AAAA"},
        "committee": [{"expert_ref": "exp-1", "status": "signed", "signed_in_at": "t"}],
        "returned_sheets": [{"expert_ref": "exp-1", "reason": "check <Q>", "at": "t2"}],
        "supplementary_draws": 1, "closed_at": "t3",
    }
    page = render_html(body)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index("B-AAAA") < page.index("B-BBBB")  # rank 1 first
    assert "Recommended: C2" in page
    assert "<td>deviation</td><td>exp-1</td><td>B-BBBB</td>" in page
    assert "check &lt;Q&gt;" in page
    assert "<svg" in page
