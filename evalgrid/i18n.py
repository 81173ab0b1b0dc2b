"""The language people read: Simplified Chinese or English, from message catalogues.

Every text shown to a person goes through `_()` (or `ngettext`); the English text is the
message id, and `evalgrid/locale/<lang>/LC_MESSAGES/evalgrid.po` gives the translation
(`make messages` extracts new ids). The language is chosen once per process: `--lang` >
`EVALGRID_LANG` > `LC_ALL` / `LC_MESSAGES` / `LANG` (zh_* -> zh_CN) > English. Texts kept in
module constants are marked with `N_()` and translated where they are shown, so a constant
never freezes the language of the moment it was imported.

Chinese characters take two terminal columns: `pad` and `fit` count columns, not characters,
so a line of mixed text still fits 80 columns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from rich.cells import cell_len

LANGUAGES = ("en", "zh_CN")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "evalgrid"

_current: str | None = None


class LanguageError(ValueError):
    """A `--lang` or `EVALGRID_LANG` that names no catalogue."""


def normalize(name: str) -> str:
    """`zh`, `zh_CN.UTF-8`, `zh-Hans` -> `zh_CN`; `en_US.UTF-8`, `C`, `POSIX` -> `en`."""
    base = name.strip().split(".", 1)[0].split("@", 1)[0].replace("-", "_")
    if base.lower().startswith("zh"):
        return "zh_CN"
    if base.lower().startswith("en") or base in ("C", "POSIX"):
        return "en"
    raise LanguageError(f"language: {name!r} is not one of {', '.join(LANGUAGES)} (or zh, en)")


def choose(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The language for this process: an explicit choice, then EVALGRID_LANG, then locale."""
    env = os.environ if environ is None else environ
    if explicit:
        return normalize(explicit)
    if env.get("EVALGRID_LANG"):
        return normalize(env["EVALGRID_LANG"])
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:  # the first one set wins, as in POSIX
            return "zh_CN" if value.lower().startswith("zh") else DEFAULT
    return DEFAULT


def set_language(lang: str) -> str:
    """Fix the language (normalized); returns it. Tests switch it; a process sets it once."""
    global _current
    _current = normalize(lang)
    return _current


def language() -> str:
    global _current
    if _current is None:
        try:
            _current = choose()
        except LanguageError:
            _current = DEFAULT
    return _current


Entry = str | tuple[str, ...]


@cache
def catalogue(lang: str) -> dict[str, Entry]:
    """The translations of one language: msgid -> msgstr (a tuple of forms for plurals)."""
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    out: dict[str, Entry] = {}
    for message in cat:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple):
            forms = tuple(str(s) for s in message.string) if message.string else ()
            if forms and all(forms):
                out[str(message.id[0])] = forms
        elif message.string:
            out[str(message.id)] = str(message.string)
    return out


def _(message: str) -> str:
    """`message` in the current language (itself when there is no translation)."""
    lang = language()
    if lang == DEFAULT:
        return message
    found = catalogue(lang).get(message)
    return found if isinstance(found, str) else message


def N_(message: str) -> str:
    """Marks a text for the catalogue where it is defined; `_()` translates it where shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    lang = language()
    found = catalogue(lang).get(singular) if lang != DEFAULT else None
    if isinstance(found, tuple) and found:
        return found[0]  # Chinese has one form
    return singular if n == 1 else plural


def pad(text: str, width: int) -> str:
    """`text` cut or padded to exactly `width` terminal columns (CJK counts two)."""
    text = fit(text, width)
    return text + " " * (width - cell_len(text))


def first_of(items: Sequence[str], shown: int = 1) -> str:
    """The first `shown` items and how many more ("S0001 +2"): a column of ids stays narrow
    however many there are; the detail line lists them all."""
    more = len(items) - shown
    return " ".join(items[:shown]) + (f" +{more}" if more > 0 else "")


def fit(text: str, width: int, mark: str = "") -> str:
    """`text` cut to at most `width` columns; a cut ends in `mark` (counted in the width)."""
    if cell_len(text) <= width:
        return text
    room = width - cell_len(mark)
    out = ""
    used = 0
    for ch in text:
        w = cell_len(ch)
        if used + w > room:
            break
        out += ch
        used += w
    return out + mark


_TOKENS = re.compile(r"[ \t]+|[!-~]+|.")


def wrap(text: str, width: int, subsequent_indent: str = "") -> list[str]:
    """`textwrap.wrap` by columns: English breaks at spaces, Chinese between any characters;
    a word wider than the line is split (nothing is cut, nothing runs past `width`)."""
    lines: list[str] = []
    line = ""
    pending = ""  # the spaces before the next word: kept inside a line, dropped at a break
    for token in _TOKENS.findall(text):
        if token.isspace():
            pending += token
            continue
        joined = line + pending + token
        pending = ""
        if cell_len(joined) <= width:
            line = joined
            continue
        if line.strip():
            lines.append(line)
            line = subsequent_indent + token
        else:
            line = joined
        while cell_len(line) > width:
            head = fit(line, width)
            lines.append(head)
            line = subsequent_indent + line[len(head):]
    if line.strip() or not lines:
        lines.append(line)
    return lines


@contextmanager
def using(lang: str | None) -> Iterator[str]:
    """Another language for a block (a report printed in Chinese by an English process);
    `None` keeps the current one."""
    global _current
    before = language()
    if lang:
        set_language(lang)
    try:
        yield language()
    finally:
        _current = before


def html_lang() -> str:
    """The current language as an HTML `lang` attribute."""
    return "zh-CN" if language() == "zh_CN" else "en"


# What the coordinator and the agents answer most often at a desk or a booth. They answer in
# English (one server serves desks in either language); `refusal` puts a known answer in the
# reader's language and leaves any other as it came.
REFUSALS = (
    N_("no reserved seat at this site matches this identity and code"),
    N_("evaluation has not started yet"),
    N_("identity or code does not match this session"),
    N_("no seat held here opens with this identity and code (checked here: the coordinator "
       "is unreachable)"),
    N_("the coordinator is unreachable and this seat's pass has not arrived (it comes at "
       "evaluation start): sign in later"),
    N_("no seat's pass held here opens with this identity and code, and a seat held here "
       "has no pass yet (it comes at evaluation start): check in again once the coordinator "
       "is reachable"),
    N_("this member's seat here was released (redrawn, or its evaluation closed): it is no "
       "longer held; ask the operator"),
    N_("this session is not on this workstation"),
)
FIELDS = (N_("code"), N_("session_id"), N_("workstation_id"), N_("id_number"))
_LOCKED = re.compile(r"(?P<what>.+) is locked after (?P<n>\d+) wrong attempts until "
                     r"(?P<until>.+?); an operator can unlock it \(`evalgrid signin unlock`, "
                     r"audited\)")
_LOCK_LABELS = ((re.compile(r"sign-in for this seat"), N_("sign-in for this seat")),
                (re.compile(r"sign-in on workstation (?P<name>\S+)"),
                 N_("sign-in on workstation {name}")),
                (re.compile(r"check-in at the desk of (?P<name>\S+)"),
                 N_("check-in at the desk of {name}")))


def refusal(message: str) -> str:
    """A server's `field: reason` in the current language when the reason is a known one."""
    if language() == DEFAULT:
        return message
    field, sep, reason = message.partition(": ")
    if not sep:
        field, reason = "", message
    locked = _LOCKED.fullmatch(reason)
    if locked:
        what = locked["what"]
        for pattern, text in _LOCK_LABELS:
            label = pattern.fullmatch(what)
            if label:
                what = _(text).format(**label.groupdict())
                break
        reason = _("{what} is locked after {n} wrong attempts until {until}; an operator can "
                   "unlock it (`evalgrid signin unlock`, audited)").format(
            what=what, n=locked["n"], until=locked["until"])
    else:
        reason = _(reason)
    return f"{_(field)}: {reason}" if field else reason


# Outcomes the coordinator answers with (ReplaceMember, recusal, notices, returns, incidents):
# codes, shown through `_()` as words.
OUTCOMES = (
    N_("declined-redrawn"), N_("left-redrawn"), N_("no_show-redrawn"), N_("recused-redrawn"),
    N_("declined-no-replacement"), N_("left-no-replacement"), N_("no_show-no-replacement"),
    N_("recused-no-replacement"), N_("resent"), N_("returned"), N_("awaiting-repair"),
    N_("no-seat"), N_("no-spare"))
