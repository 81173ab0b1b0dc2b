"""The layers hold: no import cycle, the top layer (app/) on top, only the store speaks Redis.

- No cycle among the coordinator's modules, counting every import Python runs: module level
  and inside functions (imports under `if TYPE_CHECKING:` are annotations, not imports).
- `app/` (the CLI, the demo) is the top layer: no module of evalgrid, coordinator, site_agent or
  tui imports it, not even inside a function or for annotations; no cycle within it, nor across
  all the packages.
- The pure domain imports nothing of the coordinator outside it.
- Every Redis key is named in `coordinator/store/layout.py`: no other coordinator module holds
  a key literal (a string or f-string that starts with a key's prefix, or is a bare key given
  to a Redis command); no Lua script (`redis.call`) outside the store.
- Only the store names the Redis client's exception types (`coordinator/store/errors.py` gives
  the rest what they catch).
- No module imports or reads another module's private names (`_name`): a collaborator of the
  workflow goes through its public methods, not its `_record` or `_allocations`.
- No module outside the store names a key (imports `coordinator.store.layout`), and every
  lifecycle change passes `handle_project` / `handle_seat`.
- A package's `__init__.py` re-exports nothing: every importer names the module that defines
  the name (`coordinator.domain.draw.algorithm`, not `coordinator.domain.draw`), so a name has
  one import path and a package import runs no submodule.

Read from the source with `ast`, so a function-local import or an f-string counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from coordinator.store import layout

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coordinator", "evalgrid", "site_agent", "tui")
TOP = "app"  # the CLI and the demo: may import all of PACKAGES, imported by none
REDIS_COMMANDS = frozenset({
    "get", "set", "delete", "exists", "expire", "incr", "incrby", "hget", "hset", "hgetall",
    "hdel", "hlen", "hmget", "sadd", "srem", "smembers", "sismember", "xadd", "xrange", "zadd",
    "zrange", "zrem", "lpush", "rpush", "lrange", "scan_iter", "watch"})


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*packages: str) -> dict[str, Path]:
    return {_module_name(p): p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `name` imports at run time (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                target = f"{module}.{alias.name}"
                found.add(target if target in known else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return (found & known) - {name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(*packages: str) -> dict[str, set[str]]:
    sources = _sources(*packages)
    known = set(sources)
    return {name: _imports(name, path, known) for name, path in sources.items()}


def test_no_import_cycle_among_the_coordinators_modules() -> None:
    graph = _graph("coordinator", "evalgrid")
    # The graph is real: a function-local import (the workflow builds its fault desk) counts,
    # a TYPE_CHECKING one (the desk's annotation of the workflow) does not.
    assert "coordinator.faults" in graph["coordinator.workflow"]
    assert "coordinator.workflow" not in graph["coordinator.faults"]
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check itself: a function-local import back is a cycle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _imports_top_layer(tree: ast.AST) -> list[tuple[int, str]]:
    """Every import of the top layer in a module: at module level, in a function, or under
    `if TYPE_CHECKING:` (an annotation that names app/ ties the lower layer to it too)."""
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        hits += [(node.lineno, name) for name in names if name.split(".")[0] == TOP]
    return hits


def test_no_lower_layer_imports_the_top_layer() -> None:
    found = {name: hits for name, path in _sources(*PACKAGES).items()
             if (hits := _imports_top_layer(ast.parse(path.read_text(encoding="utf-8"))))}
    assert found == {}


def test_the_top_layer_check_finds_an_import() -> None:
    tree = ast.parse("import app.demo\nif TYPE_CHECKING:\n    from app.cli import options\n"
                     "def f():\n    from app.cli.main import main\n"
                     "from application import x\nfrom . import app\n")
    assert [name for _, name in _imports_top_layer(tree)] == ["app.demo", "app.cli",
                                                              "app.cli.main"]


def test_no_import_cycle_within_the_top_layer_nor_across_the_packages() -> None:
    graph = _graph(TOP, *PACKAGES)
    # The graph is real: the parser imports each command group, the demo starts the consoles.
    assert {"app.cli.pki", "app.cli.options"} <= graph["app.cli.main"]
    assert "tui.operator_app" in graph["app.demo"]
    assert _cycles(graph) == []


def test_the_domain_imports_nothing_of_the_coordinator_outside_it() -> None:
    graph = _graph("coordinator", "evalgrid")
    # The province codec is the registry's plain-data form (pure: dataclasses <-> dicts), which
    # the registry snapshot shares so that an auditor's snapshot reads exactly as an import.
    pure = "coordinator.province.codec."
    leaks = {name: sorted(d for d in deps if d.startswith("coordinator.")
                          and not d.startswith(("coordinator.domain", pure)))
             for name, deps in graph.items() if name.startswith("coordinator.domain")}
    assert {name: deps for name, deps in leaks.items() if deps} == {}


def _key_templates() -> list[str]:
    return [value for name, value in vars(layout).items()
            if name.isupper() and isinstance(value, str)]


def _outside_store(*packages: str) -> Iterator[tuple[str, Path]]:
    for name, path in _sources(*packages).items():
        if not name.startswith("coordinator.store"):
            yield name, path


def _leading_text(node: ast.AST) -> str | None:
    """A string literal's text, or an f-string's text up to its first placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        head = node.values[0] if node.values else None
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value + "{"
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    return found


def _key_literals(tree: ast.AST, templates: list[str]) -> list[tuple[int, str]]:
    # A template's fixed head ("alloc:" of "alloc:{}"), or a whole key without a slot.
    prefixes = sorted({t.split("{")[0] for t in templates if ":" in t})
    bare = {t for t in templates if ":" not in t and "{" not in t}
    skip = _docstrings(tree)
    for node in ast.walk(tree):  # an f-string's parts are read with the f-string
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        text = _leading_text(node)
        if text is not None and any(text.startswith(p) for p in prefixes):
            hits.append((getattr(node, "lineno", 0), text))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in REDIS_COMMANDS and node.args \
                and any(n in ast.unparse(node.func.value) for n in ("redis", "pipe")):
            first = _leading_text(node.args[0])
            if first is not None and (first in bare or "{" in first or ":" in first):
                hits.append((node.lineno, first))
        if text is not None and "redis.call(" in text:
            hits.append((getattr(node, "lineno", 0), "a Lua script"))
    return sorted(set(hits))


def test_no_redis_key_or_script_outside_the_store() -> None:
    templates = _key_templates()
    assert "alloc:{}" in templates and "fence" in templates
    # The coordinator is the one process that talks to Redis (the agent and the TUIs do not;
    # their "field: reason" messages would read as keys).
    found = {name: hits for name, path in _outside_store("coordinator")
             if (hits := _key_literals(ast.parse(path.read_text(encoding="utf-8")), templates))}
    assert found == {}


def test_the_key_check_finds_a_key() -> None:
    templates = _key_templates()
    tree = ast.parse('async def f(redis, p):\n    await redis.get(f"alloc:{p}")\n'
                     '    await redis.incr("fence")\n    s = "if redis.call(\'GET\', KEYS[1])"\n')
    assert [text for _, text in _key_literals(tree, templates)] == [
        "alloc:{", "fence", "a Lua script"]
    assert _key_literals(ast.parse('x = "ray:auto"\nlog.info("%s", "fence")\n'), templates) == []


def _names_redis_exceptions(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        return module.startswith("redis.exceptions") or (module.startswith("redis") and any(
            a.name == "exceptions" or a.name.endswith("Error") for a in node.names))
    if isinstance(node, ast.Import):
        return any(a.name.startswith("redis.exceptions") for a in node.names)
    return isinstance(node, ast.Attribute) and node.attr == "exceptions" \
        and "redis" in ast.unparse(node.value)


def _redis_exception_uses(tree: ast.AST) -> list[tuple[int, str]]:
    return [(getattr(node, "lineno", 0), ast.unparse(node)) for node in ast.walk(tree)
            if _names_redis_exceptions(node)]


def test_only_the_store_names_redis_exception_types() -> None:
    found = {name: hits for name, path in _outside_store(TOP, *PACKAGES)
             if (hits := _redis_exception_uses(ast.parse(path.read_text(encoding="utf-8"))))}
    assert found == {}
    assert len(_redis_exception_uses(ast.parse("from redis import exceptions as e\n"
                                               "x = aioredis.exceptions.WatchError\n"))) == 2


# Private names of third-party libraries read for want of a public one (name -> why).
THIRD_PARTY_PRIVATES = {
    "_actions": "argparse: a parser's sub-commands, for the help text",
    "_SubParsersAction": "argparse: the type of the sub-command action",
    "_bindings": "textual: a widget's key bindings, for the footer",
    "_exit": "os: a forked child leaves without its parent's exit handlers",
}


def _own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines (functions, classes, attributes it assigns)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {name for name in names if name.startswith("_")}


def _is_private(name: str) -> bool:
    return name.startswith("_") and name != "_" and not (
        name.startswith("__") and name.endswith("__"))


def _private_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """`from m import _x`, and `<expr>._x` where `_x` is not this module's own: a private name
    is read on `self`, `cls` or `super()`, or on another instance of a class of this module
    (`other._counts` in a copy); `_` is gettext, dunders are Python's."""
    own = _own_private_names(tree)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            hits += [(node.lineno, f"from {node.module} import {alias.name}")
                     for alias in node.names if _is_private(alias.name)]
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if isinstance(value, ast.Call) and ast.unparse(value.func) == "super":
                continue
            if node.attr in own or node.attr in THIRD_PARTY_PRIVATES:
                continue
            hits.append((node.lineno, ast.unparse(node)))
    return sorted(hits)


def test_no_module_reads_another_modules_private_names() -> None:
    found = {name: hits for name, path in _sources(*PACKAGES).items()
             if (hits := _private_reads(ast.parse(path.read_text(encoding="utf-8"))))}
    assert found == {}


def test_the_private_check_finds_a_private_read() -> None:
    tree = ast.parse(
        "from coordinator.offline import _NoClock, _\n"
        "class A:\n"
        "    def __init__(self):\n        self._n = 1\n"
        "    def copy(self, other):\n        return other._n + self._m + super()._k\n"
        "async def f(workflow):\n    await workflow._record('x')\n"
        "    return workflow.__class__, _('text')\n")
    assert [text for _, text in _private_reads(tree)] == [
        "from coordinator.offline import _NoClock", "workflow._record"]


def _layout_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "coordinator.store.layout":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "coordinator.store" \
                and any(alias.name == "layout" for alias in node.names):
            names.add("layout")
    return names


def test_no_module_outside_the_store_names_a_key() -> None:
    """Every Redis key is the store's: a module outside coordinator/store that imports the
    layout issues Redis commands itself (they belong behind a store class, as the conduct
    records', the workflow's, the fault desk's and the draw intents' are)."""
    named = {name: found for name, path in _outside_store(*PACKAGES)
             if (found := _layout_names(ast.parse(path.read_text(encoding="utf-8"))))}
    assert named == {}
    # The check itself: both ways of naming the layout are found.
    assert _layout_names(ast.parse("from coordinator.store.layout import EXPERTS, ALLOC\n"
                                   "from coordinator.store import layout\n")) == {
        "EXPERTS", "ALLOC", "layout"}


def _package_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """What a package's `__init__.py` imports or lists in `__all__` (a re-export)."""
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and not (
                isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            hits.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and "__all__" in [
                ast.unparse(t) for t in (node.targets if isinstance(node, ast.Assign)
                                         else [node.target])]:
            hits.append((node.lineno, "__all__"))
    return hits


def test_no_package_re_exports_its_modules_names() -> None:
    inits = {name: path for name, path in _sources(TOP, *PACKAGES).items()
             if path.name == "__init__.py"}
    assert {"coordinator.domain.draw", "evalgrid.pki", "coordinator.province",
            "coordinator.province.codec"} <= set(inits)
    found = {name: hits for name, path in inits.items()
             if (hits := _package_imports(ast.parse(path.read_text(encoding="utf-8"))))}
    assert found == {}
    tree = ast.parse('"""Doc."""\nfrom __future__ import annotations\n'
                     "from coordinator.domain.draw.algorithm import draw\n"
                     "from . import inputs\n__all__ = ['draw']\n")
    assert [text for _, text in _package_imports(tree)] == [
        "from coordinator.domain.draw.algorithm import draw", "from . import inputs", "__all__"]


def _assigned_attributes(tree: ast.AST, attr: str) -> list[tuple[str, int]]:
    """(enclosing function, line) of every assignment to `<expr>.<attr>`."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and part.attr == attr \
                        and isinstance(part.ctx, ast.Store):
                    found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_every_lifecycle_change_goes_through_handle() -> None:
    """State -> handle(event) -> instructions: a seat's status is set in one place, after
    `handle_seat` (`Workflow.seat_event`), and a project's state is stored only by the
    registry's `stage_transition` with the story entry of a `handle_project` transition (or
    `registered` on registration)."""
    seat_writes = {name: where for name, path in _sources("coordinator").items()
                   if not name.startswith("coordinator.domain")
                   and (where := _assigned_attributes(
                       ast.parse(path.read_text(encoding="utf-8")), "status"))}
    assert {name: [f for f, _ in where] for name, where in seat_writes.items()} == {
        "coordinator.workflow": ["seat_event"]}
    state_key = {name for name, path in _sources("coordinator").items()
                 if "PROJECT_STATE" in path.read_text(encoding="utf-8")}
    assert state_key == {"coordinator.store.layout", "coordinator.store.registry"}
    writers = ast.parse((ROOT / "coordinator/store/registry.py").read_text(encoding="utf-8"))
    hset_in = {f.name for f in ast.walk(writers)
               if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
               and any(isinstance(c, ast.Call) and ast.unparse(c.func).endswith(".hset")
                       and c.args and ast.unparse(c.args[0]) == "PROJECT_STATE"
                       for c in ast.walk(f))}
    assert hset_in == {"stage_transition", "set_project_state"}  # the latter: tests only
    handled = {name for name, path in _sources("coordinator").items()
               if "handle_project(" in path.read_text(encoding="utf-8")}
    assert handled == {"coordinator.domain.lifecycle", "coordinator.workflow",
                       "coordinator.faults", "coordinator.evaluation"}
