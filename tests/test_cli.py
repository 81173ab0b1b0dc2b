"""The `evalgrid` command line, run as a user runs it: one subprocess per command.

Data directories are short (under /tmp, `tempfile.mkdtemp(prefix="eg-")`) because the embedded
Redis listens on a unix socket inside them, and socket paths are limited to ~100 bytes.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordinator.offline import open_store
from coordinator.province.files import FILE_NAMES
from coordinator.store.registry import Registry
from evalgrid.pki.identity import identity_from_pem
from tests.six_site_demo import PROJECTS, SixSiteDemo

REPO = Path(__file__).resolve().parents[1]
# The subprocesses import the same tree as the tests.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "proto")]),
       "PYTHONUNBUFFERED": "1"}
DAY = "2026-03-02"
TINY = ["--cities", "3", "--sites", "6", "--workstations", "120", "--experts", "1200",
        "--companies", "200", "--projects", "4"]
SUMMARY_KEYS = {"sites", "workstations", "experts", "projects", "projects_reported",
                "double_bookings", "rule_violations", "elapsed_s"}


def evalgrid(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout,
                          check=False)


def short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="eg-"))


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    root = short_dir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- pki --------------------------------------------------------------------------------------


def test_pki_init_creates_the_ca_and_refuses_to_overwrite(tmp_short: Path) -> None:
    data = tmp_short / "d"
    first = evalgrid("pki", "init", "--data-dir", data)
    assert first.returncode == 0, first.stderr
    ca = data / "pki" / "ca.pem"
    assert ca.exists() and (data / "pki" / "ca.key").exists()
    assert (data / "pki" / "ca.key").stat().st_mode & 0o077 == 0
    before = ca.read_bytes()

    again = evalgrid("pki", "init", "--data-dir", data)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    assert ca.read_bytes() == before


def test_pki_issue_writes_certificates_for_each_role(tmp_short: Path) -> None:
    data = tmp_short / "d"
    assert evalgrid("pki", "init", "--data-dir", data).returncode == 0
    for role, subject, stem in (("site", "S1", "site/S1"), ("operator", "alice", "operator/alice"),
                                ("workstation", "S1/W1", "workstation/S1/W1")):
        done = evalgrid("pki", "issue", role, subject, "--data-dir", data)
        assert done.returncode == 0, done.stderr
        cert = data / "pki" / f"{stem}.pem"
        key = data / "pki" / f"{stem}.key"
        assert cert.exists() and key.exists(), stem
        identity = identity_from_pem(cert.read_bytes())
        assert (identity.role, identity.subject) == (role, subject)
        assert f"{role}:{subject}" in done.stdout


@pytest.mark.parametrize(("args", "field"), [
    (["wizard", "x"], "role"),
    (["site", "bad/id"], "subject_id"),
    (["site", "S 1"], "subject_id"),
    (["workstation", "S1"], "subject_id"),
    (["workstation", "S1/W1/X"], "subject_id"),
    (["operator"], "id"),
])
def test_pki_issue_refuses_a_bad_role_or_id(tmp_short: Path, args: list[str],
                                            field: str) -> None:
    data = tmp_short / "d"
    assert evalgrid("pki", "init", "--data-dir", data).returncode == 0
    done = evalgrid("pki", "issue", *args, "--data-dir", data)
    assert done.returncode == 2
    assert field in done.stderr and "Traceback" not in done.stderr
    issued = [p for p in (data / "pki").rglob("*.pem") if p.name != "ca.pem"]
    assert issued == []


# --- province -----------------------------------------------------------------------------


def test_province_generate_is_deterministic(tmp_short: Path) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_short / name
        done = evalgrid("province", "generate", "--scale", "small", "--out", out, "--seed", "1",
                        "--day", DAY)
        assert done.returncode == 0, done.stderr
        runs.append(out)
    for name in FILE_NAMES:
        assert (runs[0] / name).stat().st_size > 0
        assert filecmp.cmp(runs[0] / name, runs[1] / name, shallow=False), name
    other = tmp_short / "c"
    assert evalgrid("province", "generate", "--scale", "small", "--out", other, "--seed", "2",
                    "--day", DAY).returncode == 0
    assert not filecmp.cmp(runs[0] / "experts.jsonl", other / "experts.jsonl", shallow=False)


def _rewrite_line(path: Path, line_no: int, change: dict[str, object]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[line_no - 1])
    record.update(change)
    lines[line_no - 1] = json.dumps(record, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


async def _counts(data: Path) -> dict[str, int]:
    async with open_store(data, None) as redis:
        return await Registry(redis).counts()


def test_province_import_is_all_or_nothing(tmp_short: Path) -> None:
    good, bad, data = tmp_short / "good", tmp_short / "bad", tmp_short / "d"
    assert evalgrid("province", "generate", "--scale", "small", *TINY, "--seed", "1",
                    "--day", DAY, "--out", good).returncode == 0
    done = evalgrid("province", "import", good, "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert "1200 experts" in done.stdout
    stored = asyncio.run(_counts(data))
    assert stored == {"sites": 6, "experts": 1200, "companies": 200, "projects": 4}

    # A bigger province (it would change every count) with two bad rows.
    bigger = [*TINY]
    bigger[bigger.index("--experts") + 1] = "1300"
    bigger[bigger.index("--companies") + 1] = "250"
    assert evalgrid("province", "generate", "--scale", "small", *bigger, "--seed", "2",
                    "--day", DAY, "--out", bad).returncode == 0
    _rewrite_line(bad / "experts.jsonl", 5, {"birth_date": "1970-02-30"})
    _rewrite_line(bad / "projects.jsonl", 2, {"tenderer_id": "C9999"})
    refused = evalgrid("province", "import", bad, "--data-dir", data)
    assert refused.returncode != 0
    assert "experts.jsonl:5: birth_date:" in refused.stderr, refused.stderr
    assert "projects.jsonl:2: tenderer_id:" in refused.stderr, refused.stderr
    assert "C9999" in refused.stderr and "Traceback" not in refused.stderr
    assert asyncio.run(_counts(data)) == stored  # nothing from the bad import was stored


# --- a whole demo, then the auditors' tools on its data dir ---------------------------------


def _demo(sites: int, data: Path) -> subprocess.CompletedProcess[str]:
    return evalgrid("demo", "--sites", str(sites), "--projects", "4", "--json",
                    "--data-dir", data, timeout=240)


def _assert_demo_ok(done: subprocess.CompletedProcess[str], sites: int) -> dict[str, object]:
    assert done.returncode == 0, done.stderr[-3000:]
    return _assert_summary(json.loads(done.stdout.strip().splitlines()[-1]), sites, 4)


def _assert_summary(summary: dict[str, Any], sites: int, projects: int) -> dict[str, object]:
    assert set(summary) >= SUMMARY_KEYS
    assert summary["sites"] == sites and summary["projects"] == projects
    assert summary["projects_reported"] == summary["projects"]
    assert summary["double_bookings"] == 0 and summary["rule_violations"] == 0
    assert isinstance(summary["elapsed_s"], int | float) and summary["elapsed_s"] > 0
    return dict(summary)


@pytest.fixture(scope="module")
def demo_dir() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """One demo run (8 sites, 4 projects); its data dir serves the auditors' tools below."""
    root = short_dir()
    try:
        data = root / "d"
        yield data, _demo(8, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_demo_runs_a_day_and_reports_every_project(
        demo_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, done = demo_dir
    _assert_demo_ok(done, 8)
    assert len(list((data / "reports").glob("*.json"))) == 4


def test_demo_with_six_sites(six_site_demo: SixSiteDemo) -> None:
    """The smallest province (3 cities of 2 sites): the session's demo, which
    tests/security/test_personal_data.py also scans."""
    _assert_summary(six_site_demo.summary, 6, PROJECTS)
    assert len(list((six_site_demo.data / "reports").glob("*.json"))) == PROJECTS


def test_draw_export_and_verify(demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
                                tmp_short: Path) -> None:
    data, done = demo_dir
    assert done.returncode == 0, done.stderr[-3000:]
    project = sorted(p.stem for p in (data / "reports").glob("*.json"))[0]
    archive = tmp_short / "draws.json"
    exported = evalgrid("draw", "export", project, "--out", archive, "--data-dir", data)
    assert exported.returncode == 0, exported.stderr
    body = json.loads(archive.read_text())
    assert body["project_id"] == project and body["draws"]
    verified = evalgrid("draw", "verify", archive, "--ca", data / "pki" / "ca.pem")
    assert verified.returncode == 0, verified.stdout
    assert "draw verified" in verified.stdout

    # Swap one drawn expert in the archived result: the replay names the seat and both ids.
    seat = body["draws"][0]["result"]["seats"][0]
    honest = seat["expert_id"]
    # (another member of the same draw: the demo keeps no province files in its data dir)
    other = next(s["expert_id"] for s in body["draws"][0]["result"]["seats"]
                 if s["expert_id"] != honest)
    seat["expert_id"] = other
    tampered = tmp_short / "tampered.json"
    tampered.write_text(json.dumps(body))
    failed = evalgrid("draw", "verify", tampered, "--data-dir", data)
    assert failed.returncode == 1
    assert "result.seats[0].expert_id" in failed.stdout
    assert honest in failed.stdout and other in failed.stdout


def test_audit_and_report_verify(demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
                                 tmp_short: Path) -> None:
    data, done = demo_dir
    assert done.returncode == 0, done.stderr[-3000:]
    audit = evalgrid("audit", "verify", "--data-dir", data)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "audit trail intact" in audit.stdout

    report = sorted((data / "reports").glob("*.json"))[0]
    ok = evalgrid("report", "verify", report, "--ca", data / "pki" / "ca.pem")
    assert ok.returncode == 0, ok.stdout
    signed = json.loads(report.read_text())
    signed["report"]["closed_at"] = "2000-01-01T00:00:00+00:00"
    forged = tmp_short / report.name
    forged.write_text(json.dumps(signed))
    bad = evalgrid("report", "verify", forged, "--data-dir", data)
    assert bad.returncode == 1 and "signature" in bad.stdout


def test_an_outside_auditor_with_only_ca_pem(
        demo_dir: tuple[Path, subprocess.CompletedProcess[str]], tmp_short: Path) -> None:
    """Only ca.pem, the exported archives and the reports: every honest one verifies, forgeries
    (a report re-signed by a fresh key, an archive without its signed commitment, entries
    re-signed by another key) are refused naming what is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from coordinator.report import canonical

    data, done = demo_dir
    assert done.returncode == 0, done.stderr[-3000:]
    auditor = tmp_short / "auditor"
    auditor.mkdir()
    ca = auditor / "ca.pem"
    shutil.copy(data / "pki" / "ca.pem", ca)
    projects = sorted(p.stem for p in (data / "reports").glob("*.json"))
    for project in projects:
        shutil.copy(data / "reports" / f"{project}.json", auditor)
        out = auditor / f"{project}.draws.json"
        assert evalgrid("draw", "export", project, "--out", out,
                        "--data-dir", data).returncode == 0
        for kind, path in (("report", auditor / f"{project}.json"), ("draw", out)):
            ok = evalgrid(kind, "verify", path, "--ca", ca, "--data-dir", tmp_short / "none")
            assert ok.returncode == 0, ok.stdout + ok.stderr

    signed = json.loads((auditor / f"{projects[0]}.json").read_text())
    fresh = Ed25519PrivateKey.generate()
    signed["report"]["evaluation"]["ranking"] = []
    signed["signature"] = fresh.sign(canonical(signed["report"])).hex()
    from coordinator.store.keys import public_key_hex
    signed["public_key"] = public_key_hex(fresh)
    forged = auditor / "forged.json"
    forged.write_text(json.dumps(signed))
    refused = evalgrid("report", "verify", forged, "--ca", ca)
    assert refused.returncode == 1
    assert "signed by key" in refused.stdout and "the CA certifies" in refused.stdout

    archive = json.loads((auditor / f"{projects[0]}.draws.json").read_text())
    archive["audit"] = [e for e in archive["audit"] if e["kind"] != "draw.committed"]
    forged.write_text(json.dumps(archive))
    refused = evalgrid("draw", "verify", forged, "--ca", ca)
    assert refused.returncode == 1 and "absent from the signed audit entries" in refused.stdout

    archive = json.loads((auditor / f"{projects[0]}.draws.json").read_text())
    archive["audit"][0]["signature"] = fresh.sign(b"x").hex()
    forged.write_text(json.dumps(archive))
    refused = evalgrid("draw", "verify", forged, "--ca", ca)
    assert refused.returncode == 1 and "re-signed by another key" in refused.stdout


def test_audit_verify_names_a_removed_or_garbled_entry(
        demo_dir: tuple[Path, subprocess.CompletedProcess[str]], tmp_short: Path) -> None:
    import shutil

    import redis

    from coordinator.store.embedded_redis import EmbeddedRedis

    data, done = demo_dir
    assert done.returncode == 0, done.stderr[-3000:]
    copy = tmp_short / "c"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("*.sock"))
    server = EmbeddedRedis(copy / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        ids = [i for i, _ in client.xrange("audit", "-", "+")]
        client.xdel("audit", ids[len(ids) // 2])
        removed = evalgrid("audit", "verify", "--data-dir", copy)
        assert removed.returncode == 1, removed.stdout
        assert "BROKEN" in removed.stdout and "seq" in removed.stdout
        client.xadd("audit", {"entry": b'{"seq": "not a number"}'}, id="999999-0")
        garbled = evalgrid("audit", "verify", "--data-dir", copy)
        assert garbled.returncode == 1, garbled.stdout + garbled.stderr
        assert "unreadable entry" in garbled.stdout and "Traceback" not in garbled.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [
    ["draw", "export", "P1", "--out", "x.json", "--data-dir", "no-such-dir"],
    ["audit", "verify", "--data-dir", "no-such-dir"],
    ["coordinator", "--sim-clock", "tomorrow", "--data-dir", "no-such-dir"],
    ["audit", "fairness", "--city-sizes", "a,b"],
    ["audit", "fairness", "--executor", "threads", "--draws", "10"],
    ["province", "generate", "--day", "2026/12/05", "--out", "prov"],
    ["province", "generate", "--scale", "small", "--out", "a-file/prov"],
    ["province", "generate", "--scale", "small", "--sites", "0", "--out", "prov"],
    ["province", "import", "no-such-dir", "--data-dir", "d"],
    ["province", "inventory", "no-such-dir", "--site", "S0001", "--out", "s.json"],
    ["coordinator", "--notifier", "carrier-pigeon", "--data-dir", "d"],
    ["coordinator", "--metrics-port", "70000", "--data-dir", "d"],
    ["coordinator", "--health-bind", "8081", "--data-dir", "d"],
    ["incident", "decide", "inc-1", "wait", "--note", "x", "--new-start", "soon",
     "--new-end", "later", "--operator", "nobody", "--data-dir", "d"],
    ["notice", "reply", "ntc-1", "--decline", "--operator", "nobody", "--data-dir", "d"],
    ["projects", "--day", "tomorrow", "--data-dir", "d"],
    ["projects", "story", "--operator", "nobody", "--data-dir", "d"],
    ["projects", "story", "P1", "--last", "-1", "--operator", "nobody", "--data-dir", "d"],
    ["agent", "--site", "S0001", "--inventory", "a-file", "--data-dir", "d"],
])
def test_bad_input_is_a_message_not_a_traceback(argv: list[str], tmp_short: Path) -> None:
    (tmp_short / "a-file").write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "app.cli", *argv], cwd=tmp_short,
                          env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("evalgrid: ")


def test_audit_collusion_reads_the_history_under_pseudonyms(
        demo_dir: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, done = demo_dir
    assert done.returncode == 0, done.stderr[-3000:]
    ran = evalgrid("audit", "collusion", "--data-dir", data, "--min-projects", "1")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "signed scores from" in ran.stdout and "X-" in ran.stdout
    assert "exp-" not in ran.stdout  # per-seat references are not shown, pseudonyms are


def test_pseudonyms_are_stable_per_expert_and_keyed() -> None:
    from coordinator.offline import pseudonym

    assert pseudonym(b"k" * 32, "E1") == pseudonym(b"k" * 32, "E1")
    assert pseudonym(b"k" * 32, "E1") != pseudonym(b"k" * 32, "E2")
    assert pseudonym(b"k" * 32, "E1") != pseudonym(b"j" * 32, "E1")
    assert "E1" not in pseudonym(b"k" * 32, "E1")


def test_every_option_has_help_and_states_its_default() -> None:
    import argparse

    from app.cli.main import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    parser = build_parser()
    walk(parser, "evalgrid")
    assert missing == []
    # Defaults are said in the help text.
    generate = subprocess.run([sys.executable, "-m", "app.cli", "province", "generate",
                               "--help"], env={**ENV, "COLUMNS": "200"}, capture_output=True,
                              text=True, timeout=60, check=True).stdout
    assert "(default: 2026)" in generate and "(default: province)" in generate
