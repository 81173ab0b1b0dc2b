"""The layout is the architecture: stubs are current, and no process imports another's code."""

from __future__ import annotations

import ast
from pathlib import Path

from evalgrid.wire_codegen import generate

ROOT = Path(__file__).resolve().parent.parent


def test_committed_wire_stubs_match_the_protos(tmp_path: Path) -> None:
    outputs = generate(ROOT / "proto", tmp_path)
    assert outputs, "no stubs generated"
    for fresh in outputs:
        committed = ROOT / "proto" / fresh.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run `make proto`"
        assert committed.read_bytes() == fresh.read_bytes(), f"{committed} is stale: `make proto`"


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_agent_never_imports_the_coordinator_nor_the_other_way_round() -> None:
    for path, names in _imports("site_agent").items():
        assert "coordinator" not in names, path
        assert "tui" not in names, path
    for path, names in _imports("coordinator").items():
        assert "site_agent" not in names, path
        assert "tui" not in names, path


# Shared modules the pure core may use: pure themselves (checked below), so one rule serves
# the booth, the agent and the coordinator.
PURE_SHARED = {"evalgrid.score_rules"}


def _modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_domain_is_pure() -> None:
    """No I/O, network, Redis, gRPC or clock-reading libraries in the pure core."""
    banned = {"redis", "grpc", "socket", "subprocess", "asyncio", "os", "time", "ray", "evalgrid"}
    for path in (ROOT / "coordinator/domain").rglob("*.py"):
        names = {m.split(".")[0] for m in _modules(path) - PURE_SHARED}
        assert not names & banned, f"{path} imports {names & banned}"
    for module in PURE_SHARED:
        imported = _modules(ROOT / (module.replace(".", "/") + ".py"))
        assert imported <= {"__future__", "collections.abc", "decimal"}, (module, imported)


def test_shared_package_imports_no_process() -> None:
    """The CLI and the demo, which start the processes, live in app/ (the top layer)."""
    for path, names in _imports("evalgrid").items():
        assert not names & {"coordinator", "site_agent", "tui"}, path


def test_test_modules_have_unique_names() -> None:
    """Tests live in folders without __init__.py: two files of one name cannot both load."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
