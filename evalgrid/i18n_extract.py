"""`make messages`: collect every `_()`, `N_()` and `ngettext()` text from the sources and
bring the catalogues up to date (new texts added untranslated, gone ones dropped).

The sources are walked as Python syntax trees, so a text inside an f-string's expression is
found too; `tests/test_i18n.py` walks them the same way and fails on a text with no Chinese.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from evalgrid.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "evalgrid", "coordinator", "site_agent", "tui")
MARKERS = {"_", "N_", "ngettext"}
STAMP = datetime(2026, 1, 1, tzinfo=UTC)  # fixed: a rerun changes nothing but the texts


def texts_in(path: Path) -> Iterator[tuple[str, str | None, int]]:
    """(msgid, plural or None, line) for each marked text of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in MARKERS and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        plural = None
        if node.func.id == "ngettext" and len(node.args) > 1:
            second = node.args[1]
            if isinstance(second, ast.Constant) and isinstance(second.value, str):
                plural = second.value
        yield first.value, plural, node.lineno


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if "_pb2" not in p.name)


def collect() -> dict[str, tuple[str | None, list[tuple[str, int]]]]:
    """msgid -> (plural, [(file, line), ...]) over all sources."""
    found: dict[str, tuple[str | None, list[tuple[str, int]]]] = {}
    for path in source_files():
        rel = str(path.relative_to(ROOT))
        for msgid, plural, line in texts_in(path):
            entry = found.setdefault(msgid, (plural, []))
            entry[1].append((rel, line))
    return found


def update(lang: str, found: dict[str, tuple[str | None, list[tuple[str, int]]]]) -> int:
    """Rewrite one catalogue; returns how many of its texts have no translation."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    old: dict[str, str | tuple[str, ...]] = {}
    if path.exists():
        with path.open("rb") as f:
            for message in read_po(f, locale=lang):
                key = message.id[0] if isinstance(message.id, tuple) else message.id
                string = message.string
                if key and string:
                    old[str(key)] = string if isinstance(string, str) else tuple(string)

    cat = Catalog(locale=lang, domain=DOMAIN, project="evalgrid", charset="utf-8",
                  creation_date=STAMP, revision_date=STAMP, version="1")
    missing = 0
    for msgid in sorted(found):
        plural, where = found[msgid]
        string = old.get(msgid) or ("" if plural is None else ("",))
        if lang != "en" and (not string or string == ("",)):
            missing += 1
        files = sorted({path for path, _line in where})[:3]  # no line numbers: stable diffs
        cat.add((msgid, plural) if plural else msgid, string,
                locations=[(path, 0) for path in files])  # 0: written without a line

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, cat, width=96, omit_header=False, sort_output=True)
    return missing if lang != "en" else 0


def main() -> int:
    found = collect()
    for lang in LANGUAGES:
        missing = update(lang, found)
        print(f"{lang}: {len(found)} texts, {missing} without a translation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
