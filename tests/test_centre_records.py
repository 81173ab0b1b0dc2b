"""The centres' records on a real demo of two days with a planted no-show (issue 19).

One demo run (real Redis, coordinator, agents over mTLS); then, as the operator and the
auditors would, the conduct report, the conduct bars in later draws, the service report
against counts taken straight from the audit trail, an inspection draw that replays with
`draw verify`, and a sanction by hand.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from coordinator.domain import inspection
from coordinator.domain.audit import AuditEntry
from coordinator.domain.eligibility import PoolIndex
from coordinator.domain.rules import load_rules
from coordinator.offline import (
    NoClock,
    export_draws,
    master_key,
    open_store,
    pseudonym,
    signing_key,
    verify_draw_file,
)
from coordinator.store.audit_log import AuditLog
from coordinator.store.conduct import ConductStore
from coordinator.store.registry import Registry
from evalgrid.trust import PinnedTrust
from tests.test_cli import evalgrid, short_dir

OPERATOR = "demo-operator"


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Path, dict[str, Any]]]:
    root = short_dir()
    try:
        data = root / "d"
        done = evalgrid("demo", "--sites", "6", "--projects", "5", "--days", "2",
                        "--plant-no-show", "--json", "--data-dir", data, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        yield data, json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _entries(data: Path) -> list[AuditEntry]:
    async with open_store(data, None) as redis:
        return await AuditLog(redis, signing_key=signing_key(data), clock=NoClock()).entries()


def _days(data: Path) -> list[date]:
    """The demo's days, from its project ids (PYYYYMMDD-NNNN)."""
    return sorted({date(int(p.stem[1:5]), int(p.stem[5:7]), int(p.stem[7:9]))
                   for p in (data / "reports").glob("*.json")})


def _read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))


def test_the_planted_no_show_is_reported_with_its_evidence(
        demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, summary = demo
    planted = summary["planted_no_show"]
    assert summary["days"] == 2 and summary["projects_reported"] == summary["projects"] == 10
    quarter = f"{_days(data)[0].year}Q{(_days(data)[0].month + 2) // 3}"
    done = evalgrid("report", "conduct", "--quarter", quarter, "--data-dir", data,
                    "--out", tmp_path / "anon")
    assert done.returncode == 0, done.stderr
    rows = _read_csv(next((tmp_path / "anon").glob("conduct-*.csv")))
    header = rows[0]
    assert "缺席 No-show" in header and "依据 Evidence (audit seq)" in header
    alias = pseudonym(master_key(data), planted)
    mine = next(r for r in rows[1:] if r[0] == alias)
    assert int(mine[header.index("缺席 No-show")]) >= 1
    assert "no_show_cool_off" in mine[header.index("限制抽取 Barred (kind: from - until)")]
    assert not any(planted in cell for row in rows for cell in row)  # pseudonyms only
    # The evidence is the trail's own no-show entries.
    entries = {e.seq: e for e in asyncio.run(_entries(data))}
    evidence = [int(s) for s in mine[header.index("依据 Evidence (audit seq)")].split()]
    assert evidence and all(entries[s].kind == "seat.no_show" for s in evidence)
    html = next((tmp_path / "anon").glob("conduct-*.html")).read_text(encoding="utf-8")
    assert alias in html and "专家行为记录 Expert conduct" in html

    named = evalgrid("report", "conduct", "--quarter", quarter, "--data-dir", data,
                     "--out", tmp_path / "named", "--operator", OPERATOR)
    assert named.returncode == 0, named.stderr
    rows = _read_csv(next((tmp_path / "named").glob("conduct-*.csv")))
    assert any(r[0].split()[0] == planted for r in rows[1:])
    refused = evalgrid("report", "conduct", "--quarter", quarter, "--data-dir", data,
                       "--operator", "mallory")
    assert refused.returncode == 2 and "operator" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = evalgrid("report", "conduct", "--quarter", "2026Q5", "--data-dir", data)
    assert bad.returncode == 2 and "quarter" in bad.stderr and "Traceback" not in bad.stderr


def test_the_bar_keeps_the_planted_expert_out_of_later_draws(
        demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, summary = demo
    planted = summary["planted_no_show"]
    assert summary["planted_later_seats"] == 0
    first, second = _days(data)

    async def look() -> tuple[dict[str, list[str]], list[Any], Any]:
        archives = {}
        for path in sorted((data / "reports").glob("*.json")):
            archive = await export_draws(path.stem, data, None)
            archives[path.stem] = [json.dumps(d["inputs"]) for d in archive["draws"]]
            replay = tmp_path / f"{path.stem}.json"
            replay.write_text(json.dumps(archive), encoding="utf-8")
            # Draws under bars still replay.
            assert verify_draw_file(replay, PinnedTrust.from_data_dir(data))[0] == []
        async with open_store(data, None) as redis:
            _, bars = await ConductStore(redis, master_key(data)).read_bars()
            province = await Registry(redis).load_province()
        return archives, bars, province

    archives, bars, province = asyncio.run(look())
    day1 = {p: a for p, a in archives.items() if p[1:9] == f"{first:%Y%m%d}"}
    day2 = {p: a for p, a in archives.items() if p[1:9] == f"{second:%Y%m%d}"}
    assert day1 and day2
    assert any(planted in inputs for a in day1.values() for inputs in a)  # drawn on day 1
    assert not any(planted in inputs for a in day2.values() for inputs in a)  # never again
    assert any(b.expert_id == planted and b.kind == "no_show_cool_off" for b in bars)
    # No one ran `conduct update`: the coordinator followed the trail and audited the new bar
    # (under the expert's pseudonym, on the no-show's evidence) before day 2's first draw.
    entries = asyncio.run(_entries(data))
    no_shows = {e.seq for e in entries if e.kind == "seat.no_show"}
    alias = pseudonym(master_key(data), planted)
    followed = next(e for e in entries if e.kind == "conduct.bars_followed" and any(
        a["expert"] == alias and a["kind"] == "no_show_cool_off" for a in e.detail["added"]))
    added = next(a for a in followed.detail["added"] if a["expert"] == alias)
    assert set(added["evidence"]) <= no_shows and added["evidence"]
    day2_draws = [e.seq for e in entries if e.kind.startswith("draw.")
                  and e.subject[1:9] == f"{second:%Y%m%d}"]
    assert day2_draws and followed.seq < min(day2_draws)
    assert not any(e.kind in ("conduct.bars_recorded", "conduct.sanction_recorded")
                   for e in entries if e.seq < min(day2_draws))

    # The bar is why: on day 2 the pool's day rules bar the planted expert for "conduct" with
    # the stored bars, and not without them.
    rules = load_rules()
    pool = PoolIndex.build(province.experts, rules)
    assert "conduct" not in {r.code for r in pool.day_reasons(rules, second).get(planted, ())}
    pool.set_conduct_bars(bars)
    assert "conduct" in {r.code for r in pool.day_reasons(rules, second).get(planted, ())}


def test_service_figures_match_the_audit_trail(demo: tuple[Path, dict[str, Any]]) -> None:
    data, _ = demo
    first, second = _days(data)
    done = evalgrid("report", "service", "--from", str(first - timedelta(days=1)),
                    "--to", str(second), "--data-dir", data, "--json")
    assert done.returncode == 0, done.stderr
    figures = {s["site"]: s for s in json.loads(done.stdout.strip().splitlines()[-1])["sites"]}
    # Counted straight from the trail: a session's site from its desk check-in.
    entries = asyncio.run(_entries(data))
    site_of = {e.detail["session"]: e.subject for e in entries if e.kind == "expert.checked_in"}
    services: Counter[str] = Counter()
    projects: dict[str, set[str]] = defaultdict(set)
    hosts: Counter[str] = Counter()
    for e in entries:
        if e.kind == "expert.signed_in":
            site = site_of[e.detail["session"]]
            services[site] += 1
            projects[site].add(e.subject)
        elif e.kind == "project.registered":
            hosts[str(e.detail["host"])] += 1
    assert sum(services.values()) > 0
    for site, row in figures.items():
        assert row["seat_services"] == services[site], site
        assert row["guest_projects"] == len(projects[site]), site
        assert row["host_projects"] == hosts[site], site
        assert sum(row["half_days"].values()) >= (1 if services[site] else 0)
    html = next((data / "records").glob("service-*.html")).read_text(encoding="utf-8")
    assert "<svg" in html and "专家席位服务 Expert-seat services" in html
    bad = evalgrid("report", "service", "--from", str(second), "--to", str(first),
                   "--data-dir", data)
    assert bad.returncode == 2 and "to" in bad.stderr and "Traceback" not in bad.stderr


def test_an_inspection_draw_is_committed_first_and_replays(
        demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    data, _ = demo
    first, second = _days(data)
    roster = tmp_path / "roster.txt"
    roster.write_text("# auditors\nwang\nli\nzhao\n", encoding="utf-8")
    out = tmp_path / "inspection.json"
    done = evalgrid("audit", "inspect", "--period", f"{first}..{second}", "--sample", "3",
                    "--inspectors", "2", "--roster", roster, "--out", out, "--data-dir", data,
                    timeout=180)
    assert done.returncode == 0, done.stderr
    assert "weights:" in done.stdout and "collusion_signal 4" in done.stdout
    record = json.loads(out.read_text(encoding="utf-8"))
    assert len(record["result"]) == 3 and len(record["inputs"]["projects"]) == 10
    verified = evalgrid("draw", "verify", out, "--data-dir", data)
    assert verified.returncode == 0, verified.stdout
    assert "anchored in the signed audit trail" in verified.stdout
    # The commitment was in the trail before the draw, and the revealed seed matches it.
    entries = asyncio.run(_entries(data))
    committed = next(e for e in entries if e.seq == record["commitment"]["audit_seq"])
    drawn = next(e for e in entries if e.kind == "inspection.drawn"
                 and e.detail["commitment_seq"] == committed.seq)
    assert committed.kind == "inspection.committed" and committed.seq < drawn.seq
    assert committed.detail["seed_hash"] == hashlib.sha256(
        bytes.fromhex(str(drawn.detail["seed"]))).hexdigest()
    assert drawn.detail["projects"] == [r["project_id"] for r in record["result"]]
    # Altered: refused, naming what.
    record["result"][0]["inspector"] = "mallory"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(record), encoding="utf-8")
    refused = evalgrid("draw", "verify", forged, "--data-dir", data)
    assert refused.returncode == 1 and "result" in refused.stdout
    too_many = evalgrid("audit", "inspect", "--period", f"{first}..{second}", "--sample", "99",
                        "--roster", roster, "--data-dir", data, timeout=180)
    assert too_many.returncode == 2 and "sample" in too_many.stderr
    assert evalgrid("audit", "verify", "--data-dir", data).returncode == 0


def test_a_tampered_inspection_record_is_refused(
        demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """A record rewritten to agree with itself (a fresh seed, its hash, the replayed sample)
    replays; the signed trail entries it carries are what refuse it."""
    data, _ = demo
    first, second = _days(data)
    roster = tmp_path / "roster.txt"
    roster.write_text("wang\nli\nzhao\n", encoding="utf-8")
    out = tmp_path / "inspection.json"
    done = evalgrid("audit", "inspect", "--period", f"{first}..{second}", "--sample", "2",
                    "--inspectors", "1", "--roster", roster, "--out", out, "--data-dir", data,
                    timeout=180)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text(encoding="utf-8"))
    assert [e["kind"] for e in record["audit"]] == ["inspection.committed", "inspection.drawn"]
    inputs = inspection.inputs_from_json(record["inputs"])
    chosen = next(seed for seed in (bytes([n]) * 32 for n in range(256))
                  if inspection.make_record(inputs, seed, 0)["result"] != record["result"])

    def write(name: str, body: dict[str, Any]) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(body), encoding="utf-8")
        return path

    # 1. Self-consistent rewrite: a sample chosen after the fact, with its seed and hash.
    rewritten = {**record, **{k: v for k, v in inspection.make_record(
        inputs, chosen, record["commitment"]["audit_seq"]).items() if k != "format"}}
    assert inspection.verify_inspection(rewritten) == []  # it agrees with itself
    refused = evalgrid("draw", "verify", write("rewritten.json", rewritten), "--data-dir", data)
    assert refused.returncode == 1, refused.stdout
    assert "commitment.seed_hash: not the one signed" in refused.stdout
    assert "seed: not the seed revealed" in refused.stdout
    # 2. ... with the carried entries edited to match: their hashes and signatures break.
    edited = json.loads(json.dumps(rewritten))
    edited["audit"][0]["detail"]["seed_hash"] = rewritten["commitment"]["seed_hash"]
    edited["audit"][1]["detail"]["seed"] = rewritten["seed"]
    edited["audit"][1]["detail"]["projects"] = [r["project_id"] for r in rewritten["result"]]
    refused = evalgrid("draw", "verify", write("edited.json", edited), "--data-dir", data)
    assert refused.returncode == 1 and "its hash does not match its content" in refused.stdout
    # 3. Unanchored (format /1, no entries): refused unless accepted as replay-only.
    bare = {k: v for k, v in record.items() if k not in ("audit", "signer")}
    bare["format"] = "evalgrid-inspection/1"
    path = write("bare.json", bare)
    refused = evalgrid("draw", "verify", path, "--data-dir", data)
    assert refused.returncode == 1 and "not anchored" in refused.stdout
    accepted = evalgrid("draw", "verify", path, "--data-dir", data, "--accept-unanchored")
    assert accepted.returncode == 0 and "unanchored, accepted" in accepted.stdout
    # 4. Carrying another signer's key: refused against the pinned one.
    other = {**record, "signer": {"key": "11" * 32, "certificate": ""}}
    refused = evalgrid("draw", "verify", write("other.json", other), "--data-dir", data)
    assert refused.returncode == 1 and "signer" in refused.stdout


def test_a_sanction_by_hand_is_audited_and_bad_ones_store_nothing(
        demo: tuple[Path, dict[str, Any]]) -> None:
    data, _ = demo

    async def state() -> tuple[int, list[Any]]:
        async with open_store(data, None) as redis:
            store = ConductStore(redis, master_key(data))
            return len(await store.read_sanctions()), (await store.read_bars())[1]

    n0, _ = asyncio.run(state())
    common: list[str | Path] = ["--operator", OPERATOR, "--data-dir", data]
    for args, word in ((["E0001", "--from", "2026-12-10", "--until", "2026-12-01"], "until"),
                       (["E9999", "--from", "2026-12-01", "--until", "2026-12-10"], "expert"),
                       (["E0001", "--from", "tomorrow", "--until", "2026-12-10"], "--from")):
        bad = evalgrid("conduct", "sanction", *args, "--reason", "r", *common)
        assert bad.returncode == 2 and word in bad.stderr and "Traceback" not in bad.stderr
    assert asyncio.run(state())[0] == n0
    ok = evalgrid("conduct", "sanction", "E0001", "--from", "2026-12-01", "--until",
                  "2026-12-31", "--reason", "offered gifts to staff", *common)
    assert ok.returncode == 0, ok.stderr
    n1, bars = asyncio.run(state())
    assert n1 == n0 + 1
    bar = next(b for b in bars if b.expert_id == "E0001" and b.kind == "sanction")
    entries = {e.seq: e for e in asyncio.run(_entries(data))}
    assert entries[bar.evidence[0]].kind == "conduct.sanction_recorded"
    assert "E0001" not in json.dumps(dict(entries[bar.evidence[0]].detail))  # pseudonym
    unknown = evalgrid("conduct", "sanction", "E0001", "--from", "2026-12-01", "--until",
                       "2026-12-02", "--reason", "x", "--operator", "nobody", "--data-dir", data)
    assert unknown.returncode == 2 and "operator" in unknown.stderr


def test_only_a_valid_unrevoked_operator_certificate_names_experts(tmp_path: Path) -> None:
    from coordinator.centre_records import holds_operator_role
    from coordinator.offline import OfflineError
    from evalgrid.pki.ca import init_ca, issue
    from evalgrid.pki.crl import revoke
    from evalgrid.pki.identity import Identity

    pki = tmp_path / "pki"
    init_ca(pki)
    issue(pki, "operator", "alice")
    issue(pki, "auditor", "bob")
    assert holds_operator_role(tmp_path, "alice")
    for name in ("bob", "carol"):  # an auditor, nobody
        with pytest.raises(OfflineError, match="operator"):
            holds_operator_role(tmp_path, name)
    revoke(pki, identity=Identity("operator", "alice"), reason="key_compromise")
    with pytest.raises(OfflineError, match="revoked"):
        holds_operator_role(tmp_path, "alice")
