"""Company-name and credit-code normalisation, so conflicts survive spelling variants.

Expert records are typed by hand ("ACME Co., Ltd.", "Acme Company Limited", "ＡＣＭＥ有限公司");
the registry spells the same company once. Matching on raw strings would let a conflicted expert
through, so every name is reduced to a key: NFKC (full-width to half-width), case-folded, split
into alphanumeric tokens (punctuation and spaces are separators), legal-form suffixes dropped from
the end, tokens joined. Suffixes are dropped as whole Latin tokens ("co" in "Costco" stays) or as
trailing Chinese legal forms. "group"/"集团" is dropped only at the very end, after the legal
forms, and only when something remains: "X集团有限公司" and "X集团" are the same party, and a
corporate group counts as one party anyway. Over-matching is the safe direction here (an expert
wrongly recused costs a redraw; a conflicted expert seated costs the award).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Trailing Latin legal forms, as token sequences (longest first so "co ltd" goes as a pair).
_LATIN_SUFFIXES: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            ("company", "limited"),
            ("co", "limited"),
            ("co", "ltd"),
            ("company", "ltd"),
            ("limited", "liability", "company"),
            ("ltd",),
            ("limited",),
            ("inc",),
            ("incorporated",),
            ("corp",),
            ("corporation",),
            ("co",),
            ("company",),
            ("llc",),
            ("plc",),
            ("gmbh",),
            ("ag",),
            ("sa",),
            ("pte",),
            ("pty",),
        ),
        key=len,
        reverse=True,
    )
)
# Trailing Chinese legal forms (after NFKC), longest first.
_CJK_SUFFIXES: tuple[str, ...] = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "股份公司",
    "公司",
)
_GROUP_LATIN = "group"
_GROUP_CJK = "集团"

_TOKEN = re.compile(r"[^\W_]+")


def _strip_legal_forms(tokens: list[str]) -> bool:
    """Drop one trailing legal form in place; True if something was dropped."""
    for suffix in _LATIN_SUFFIXES:
        n = len(suffix)
        if len(tokens) > n and tuple(tokens[-n:]) == suffix:
            del tokens[-n:]
            return True
    last = tokens[-1]
    for form in _CJK_SUFFIXES:
        if last == form:  # the whole token is a legal form: drop it unless it is all there is
            if len(tokens) > 1:
                tokens.pop()
                return True
            return False
        if last.endswith(form):
            tokens[-1] = last[: -len(form)]
            return True
    return False


def _strip_group(tokens: list[str]) -> None:
    last = tokens[-1]
    if last == _GROUP_LATIN and len(tokens) > 1:
        tokens.pop()
    elif last.endswith(_GROUP_CJK):
        if len(last) > len(_GROUP_CJK):
            tokens[-1] = last[: -len(_GROUP_CJK)]
        elif len(tokens) > 1:
            tokens.pop()


@lru_cache(maxsize=1 << 16)
def normalise_company_name(name: str) -> str:
    """The matching key of a company name; "" for a name with no letters or digits.

    Cached: expert records repeat the same employers thousands of times, and the function is
    pure, so the cache changes nothing but the time an index build takes.
    """
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " and ")
    tokens = _TOKEN.findall(text)
    if not tokens:
        return ""
    while _strip_legal_forms(tokens):
        pass
    _strip_group(tokens)
    while _strip_legal_forms(tokens):  # "X Group Holdings Co" style leftovers
        pass
    return "".join(tokens)


def normalise_credit_code(code: str | None) -> str | None:
    """Unified social credit code as a key: NFKC, upper case, no spaces or dashes; None if empty."""
    if code is None:
        return None
    text = unicodedata.normalize("NFKC", code).upper()
    text = "".join(ch for ch in text if ch.isalnum())
    return text or None


def normalise_department(name: str) -> str:
    """A department name as a key: NFKC, case-folded, letters and digits only."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(_TOKEN.findall(text))
