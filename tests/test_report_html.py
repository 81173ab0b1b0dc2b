"""The readable report as a trading centre files it, from a real evaluation by the domain:
criteria with maxima, committee scores per criterion, each member's scores by seat, bidder
names, invalid bids with reasons, warnings and how they were resolved, signatures, A4 print,
a chart that fits the method, and a failed tender stated plainly. User text escaped."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain.model import (
    Bid,
    Criterion,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Window,
)
from coordinator.domain.scoring import ExpertSheet, bid_codes, evaluate
from coordinator.report import render_html, verify_report, write_report
from evalgrid.trust import PinnedTrust

D = Decimal
CRITERIA = (Criterion("T1", "Technical plan", D(40)), Criterion("T2", "After-sales service", D(30)),
            Criterion("T3", "Certifications", D(10), objective=True))
NAMES = {"C1": "Ningbo <Harbour> Works & Co", "C2": "Wenzhou Roads Ltd", "C3": "Jinhua Build",
         "C4": "Shaoxing Bridge Group"}
SALT = b"salt"


def _project(method: ScoringMethodName = "comprehensive", *, valid: int = 3) -> Project:
    bids = (Bid("C1", D("900000.00")), Bid("C2", D("950000.00")), Bid("C3", D("990000.00")),
            Bid("C4", D("800000.00"), valid=False))
    bids = tuple(Bid(b.bidder_id, b.price, b.valid and i < valid) for i, b in enumerate(bids))
    return Project(
        id="P20260302-0001", name="Harbour <script>alert(1)</script> Road", host_site_id="S0003",
        city="Wenzhou", tenderer_id="T1", category="works" if method == "works" else "goods",
        committee_size=6, quotas=(Quota("G", 5),),
        window=Window(datetime(2026, 3, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, 4, tzinfo=UTC)),
        scoring=ScoringMethod(method=method, price_weight=D(30), criteria=CRITERIA,
                              deduction_per_point=D(1), deviation_threshold=D("0.30")),
        bids=bids, tenderer_reps=1)


def _sheets(project: Project) -> list[ExpertSheet]:
    """Five members; exp-3 far below the others on C1/T1 (a deviation warning)."""
    sheets = []
    for i in range(5):
        scores = {}
        for b, base in (("C1", D("0.8")), ("C2", D("0.7")), ("C3", D("0.6"))):
            for c in CRITERIA:
                share = D("0.1") if (i == 2 and b == "C1" and c.id == "T1") else base
                scores[(b, c.id)] = (c.max_score * share).quantize(D("0.01"))
        sheets.append(ExpertSheet(f"exp-{i + 1}", scores, signed=True))
    return sheets


def _alloc(project: Project) -> Allocation:
    seats = [SeatRecord(session_id=f"ses-{i}", expert_hold="h", expert_id=f"E{i}",
                        expert_ref=f"exp-{i}", site_id="S1", venue_id="V1", workstation_id="W",
                        room_id="R", quota_index=0, draw_id="d1", code="c", notice_id="n",
                        status="signed", signed_in_at="2026-03-02T01:05:00+00:00")
             for i in range(1, 6)]
    return Allocation(project.id, ["d1"], seats, leader_ref="exp-1", returns=[
        {"expert_ref": "exp-3", "by": "exp-1", "reason": "T1 at 10% <check>",
         "at": "2026-03-02T02:30:00+00:00"}])


def _report(tmp_path: Path, method: ScoringMethodName = "comprehensive",
            valid: int = 3) -> tuple[str, dict[str, Any]]:
    project = _project(method, valid=valid)
    sheets = _sheets(project)
    evaluation = evaluate(project, sheets, b"seed", code_salt=SALT)
    key = Ed25519PrivateKey.generate()
    path = write_report(
        tmp_path, project=project, evaluation=evaluation, alloc=_alloc(project), sheets=sheets,
        bid_codes=bid_codes(project, SALT), draws=[], signing_key=key,
        now=datetime(2026, 3, 2, 4, 10, tzinfo=UTC), bidder_names=NAMES,
        sheet_seals={s.expert_ref: {"digest": f"{i:064x}", "seal": "ab" * 32}
                     for i, s in enumerate(sheets)})
    assert verify_report(path, PinnedTrust(source="test key", key=key.public_key())) == []
    body = json.loads(path.read_text())["report"]
    return (tmp_path / f"{project.id}.html").read_text(encoding="utf-8"), body


def _cells(page: str) -> str:
    """The page's text with tags collapsed, to find values next to each other."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_filed_report_holds_what_a_trading_centre_needs(tmp_path: Path) -> None:
    page, body = _report(tmp_path)
    text = _cells(page)
    codes = body["bid_codes"]
    evaluation = body["evaluation"]
    # User text escaped: the project name and a bidder name, and the leader's reason.
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Ningbo &lt;Harbour&gt; Works &amp; Co" in page
    assert "&lt;check&gt;" in page
    # Criteria with names and maxima.
    for c in CRITERIA:
        assert f" {c.id} {c.name} {c.max_score} " in text
    # The committee score per criterion for each ranked bid, with its bidder's name.
    for bid in evaluation["bids"]:
        if not bid["valid"]:
            continue
        per = " ".join(bid["criteria"][c.id] for c in CRITERIA)
        assert f"{bid['rank']} {bid['code']} {NAMES[bid['bidder_id']]} ({bid['bidder_id']}) " \
            f"{bid['price']} {per} {bid['technical']} {bid['price_score']} {bid['total']}" \
            in text
    # Each member's scores by seat code, per bid, and the committee row under them.
    assert body["seat_codes"] == {f"exp-{i}": f"M0{i}" for i in range(1, 6)}
    c1 = next(b for b in evaluation["bids"] if b["bidder_id"] == "C1")
    assert " M03 4.00 24.00 8.00 36.00 " in text  # exp-3's low T1 on C1
    assert f" Committee {c1['criteria']['T1']} {c1['criteria']['T2']} " in text
    # The invalid bid, with its bidder and a reason.
    assert f"{codes['C4']} Shaoxing Bridge Group (C4) 800000.00 did not pass the " \
        "qualification review" in text
    # The warning on M03, with how it was resolved: returned by the leader at 10:30 (+08).
    assert re.search(r"score far from the committee's mean M03 " + codes["C1"] +
                     r" Technical plan 4\.00 \d+\.\d\d sheet of M03 returned by the leader "
                     r"10:30 \(\+08\)", text)
    # Signatures: each member's sheet, the leader, digests, the report's own signature.
    assert " M01 exp-1 leader signed 09:05 (+08) 0000000000000000 " in text
    assert "Report signed by the coordinator (Ed25519)" in text
    assert "Committee leader" in text and "Host site supervisor" in text
    # Local time everywhere: the window and the close.
    assert "2026-03-02 09:00 (+08) to 12:00 (+08)" in text
    assert "2026-03-02 12:10 (+08)" in text
    assert "T01:00:00+00:00" not in page
    # Printable on A4, and a chart of technical + price score out of 100.
    assert "@page { size: A4" in page and "@media print" in page
    assert "Total score out of 100: technical + price score" in page
    assert page.count('fill="#3b6ea8"/><rect') == 3  # one stacked bar per ranked bid
    assert "committee 6" in text.lower() and "5 drawn + 1 tenderer representative" in text


def test_lowest_price_charts_the_prices(tmp_path: Path) -> None:
    page, body = _report(tmp_path, "lowest_price")
    assert "Bid prices (lower wins)" in page
    assert "out of 100" not in page
    first = body["evaluation"]["ranking"][0]
    assert first == "C1"  # the lowest valid price (C4 is cheaper but invalid)
    assert page.count("<rect") == 3
    # Lowest price has no price score nor total: no empty columns for them.
    assert "<th class=n>Total</th>" not in page and "<th class=n>Price score</th>" not in page


def test_works_charts_the_total(tmp_path: Path) -> None:
    page, body = _report(tmp_path, "works")
    assert "Total score out of 100" in page
    assert f"benchmark price {body['evaluation']['benchmark_price']}" in page


def test_a_failed_tender_shows_no_empty_chart_but_says_so(tmp_path: Path) -> None:
    page, _ = _report(tmp_path, valid=2)
    text = _cells(page)
    assert "Tender failed: fewer than 3 valid bids (2 valid). No award is made." in text
    assert "<svg" not in page and "Chart" not in text
    assert "did not pass the qualification review" in text  # C3 and C4 listed as invalid
    assert "Not scored: the tender failed before detailed scoring." in text
    assert "Committee" not in text.split("Members' scores by seat")[1].split("Warnings")[0]


def test_an_older_report_body_still_renders() -> None:
    """A report written before the richer fields (no names, seats or criteria) still reads."""
    body = {
        "project": {"id": "P1", "name": "Bridge", "category": "works", "method": "comprehensive",
                    "window": ["2026-01-01T01:00:00+00:00", "2026-01-01T04:00:00+00:00"]},
        "evaluation": {"failed": False, "ranking": ["C2"], "warnings": [], "bids": [
            {"bidder_id": "C2", "code": "B-AAAA", "price": "90.00", "price_score": "30.00",
             "technical": "60.00", "total": "90.00", "rank": 1, "valid": True, "criteria": {}}]},
        "bid_codes": {"C2": "B-AAAA"}, "committee": [], "returned_sheets": [],
        "supplementary_draws": 0, "closed_at": "not a time",
    }
    page = render_html(body)
    assert "Recommended (rank 1): B-AAAA" in page and "not a time" in page


@pytest.mark.parametrize("method, valid", [("comprehensive", 3), ("lowest_price", 3),
                                           ("works", 3), ("comprehensive", 2)])
def test_the_report_prints_in_chinese_with_every_label_translated(
        tmp_path: Path, method: ScoringMethodName, valid: int) -> None:
    from evalgrid.i18n import catalogue

    english, body = _report(tmp_path, method, valid=valid)
    page = render_html(body, lang="zh_CN")
    assert '<html lang="zh-CN">' in page and '<html lang="en">' in english
    text = _cells(re.sub(r"(?s)<style>.*</style>", "", page))
    for name in ("Ningbo <Harbour> Works & Co", body["project"]["name"]):  # data stays as is
        assert name in text
    # Data of the signed body (names, and reasons the coordinator recorded) is not relabelled.
    data = " ".join(str(v) for v in (*NAMES.values(), body["project"]["name"],
                                      *(c["name"] for c in body["project"]["criteria"]),
                                      *(x.get("reason", "") for x in body["invalid_bids"])))

    left = [m for m, zh in catalogue("zh_CN").items() if isinstance(zh, str) and zh != m
            and len(m) > 3 and "{" not in m and m not in data
            and re.search(rf"(?<![\w-]){re.escape(html.unescape(m))}(?![\w-])", text)]
    assert left == []  # no English label left on the Chinese page
    assert ("招标失败" in text) == (valid < 3)
    assert "评标委员会与签名" in text and "所有时间均为本省当地时间（+08）" in text
    assert "Committee evaluation report" in render_html(body)  # the process stays English


def test_report_html_cli_prints_the_filed_report_in_chinese(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main as cli

    _report(tmp_path)
    report = next(tmp_path.glob("*.json"))
    out = tmp_path / "zh.html"
    assert cli.main(["--lang", "zh_CN", "report", "html", str(report), "-o", str(out)]) == 0
    assert "评标委员会评标报告" in out.read_text(encoding="utf-8")
    assert cli.main(["--lang", "en", "report", "html", str(report)]) == 0
    assert "Committee evaluation report" in capsys.readouterr().out
    assert cli.main(["report", "html", str(tmp_path / "missing.json")]) == 2
    assert "file: " in capsys.readouterr().err
