"""`evalgrid tui ...` and `evalgrid demo --tui` as a user types them (argument handling only;
the consoles themselves are driven by the Pilot tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "proto")])}


def evalgrid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_consoles_are_subcommands() -> None:
    out = evalgrid("tui", "--help")
    assert out.returncode == 0
    assert "site" in out.stdout and "operator" in out.stdout
    assert "--tui" in evalgrid("demo", "--help").stdout


def test_a_missing_certificate_or_address_is_a_plain_error() -> None:
    with tempfile.TemporaryDirectory(prefix="eg-") as tmp:
        out = evalgrid("tui", "site", "--site", "S0001", "--data-dir", tmp)
        assert out.returncode == 2
        assert "--agent HOST:PORT is needed" in out.stderr
        out = evalgrid("tui", "site", "--site", "S0001", "--agent", "127.0.0.1:1",
                       "--data-dir", tmp)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "site 'S0001'" in out.stderr
        out = evalgrid("tui", "operator", "--operator", "alice", "--data-dir", tmp)
        assert out.returncode == 2 and "operator 'alice'" in out.stderr


def test_demo_tui_and_json_exclude_each_other() -> None:
    out = evalgrid("demo", "--tui", "--json")
    assert out.returncode == 2
    assert "--tui and --json" in out.stderr


def _imported(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_consoles_are_clients_only_and_only_the_cli_starts_them() -> None:
    for path in (REPO / "tui").rglob("*.py"):
        assert not _imported(path) & {"coordinator", "site_agent"}, path
    for package in ("evalgrid", "coordinator", "site_agent"):  # app/ (the CLI, the demo) may
        for path in (REPO / package).rglob("*.py"):
            assert "tui" not in _imported(path), path
