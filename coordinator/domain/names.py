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

An enterprise name (one that had a legal form or "group" to drop) may start with the place it
was registered in: "浙江省中恒建设集团有限公司" is "中恒建设集团有限公司", "杭州市华建有限公司"
is "华建有限公司", "Zhejiang Zhongheng Construction Group Co., Ltd." is "Zhongheng Construction
Group Co., Ltd.".
Leading place names (a province of China, or a city or district of the registry, with or
without 省/市/区/县 or Province/City/District) are dropped from such names, on either side of a
match. A place inside or after the name ("Acme (Shanghai) Ltd", a branch) stays, and so does a
place in a name with no legal form ("Hangzhou Transport Bureau" is not Ningbo's).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
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

# Administrative suffixes of a place name, longest first (after NFKC and case folding).
_CJK_ADMIN: tuple[str, ...] = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区",
                               "自治区", "自治州", "自治县", "省", "市", "区", "县")
_LATIN_ADMIN: frozenset[str] = frozenset({"province", "city", "district", "county",
                                          "municipality", "prefecture", "region", "sar"})


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def _without_admin_suffix(core: str) -> str:
    for suffix in _CJK_ADMIN:
        if core.endswith(suffix) and len(core) - len(suffix) >= 2:
            return core[: -len(suffix)]
    return core


@dataclass(frozen=True, slots=True)
class Places:
    """Place names that may lead an enterprise name: Chinese cores ("杭州" for "杭州市") and
    Latin token sequences ("hangzhou"; "inner mongolia")."""

    cjk: frozenset[str] = frozenset()
    latin: frozenset[tuple[str, ...]] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str]) -> Places:
        cjk: set[str] = set()
        latin: set[tuple[str, ...]] = set()
        for name in names:
            text = unicodedata.normalize("NFKC", name).casefold()
            tokens = _TOKEN.findall(text)
            if not tokens:
                continue
            if _has_cjk(text):
                core = _without_admin_suffix("".join(tokens))
                if len(core) >= 2:
                    cjk.add(core)
            else:
                while len(tokens) > 1 and tokens[-1] in _LATIN_ADMIN:
                    tokens.pop()
                latin.add(tuple(tokens))
        return cls(frozenset(cjk), frozenset(latin))

    def __or__(self, other: Places) -> Places:
        return Places(self.cjk | other.cjk, self.latin | other.latin)


#: The provincial-level divisions of China, in Chinese and Latin: known without a registry.
PROVINCES: Places = Places.of((
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港",
    "澳门",
    "Beijing", "Tianjin", "Shanghai", "Chongqing", "Hebei", "Shanxi", "Liaoning", "Jilin",
    "Heilongjiang", "Jiangsu", "Zhejiang", "Anhui", "Fujian", "Jiangxi", "Shandong", "Henan",
    "Hubei", "Hunan", "Guangdong", "Hainan", "Sichuan", "Guizhou", "Yunnan", "Shaanxi", "Gansu",
    "Qinghai", "Taiwan", "Inner Mongolia", "Neimenggu", "Guangxi", "Tibet", "Xizang", "Ningxia",
    "Xinjiang", "Hong Kong", "Macau", "Macao",
))


def _drop_leading_places(tokens: list[str], places: Places) -> None:
    """Drop place names (with their administrative suffix) from the front, in place, while
    something of the name remains."""
    while tokens:
        for n in (3, 2, 1):
            if len(tokens) > n and tuple(tokens[:n]) in places.latin:
                del tokens[:n]
                while len(tokens) > 1 and tokens[0] in _LATIN_ADMIN:
                    del tokens[0]
                break
        else:
            first = tokens[0]
            for k in range(min(len(first), 8), 1, -1):  # the longest place first
                if first[:k] not in places.cjk:
                    continue
                rest = first[k:]
                for suffix in _CJK_ADMIN:
                    if rest.startswith(suffix):
                        rest = rest[len(suffix):]
                        break
                if len(rest) >= 2:
                    tokens[0] = rest
                elif not rest and len(tokens) > 1:
                    del tokens[0]
                else:
                    return
                break
            else:
                return


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


def _strip_group(tokens: list[str]) -> bool:
    last = tokens[-1]
    if last == _GROUP_LATIN and len(tokens) > 1:
        tokens.pop()
        return True
    if last.endswith(_GROUP_CJK):
        if len(last) > len(_GROUP_CJK):
            tokens[-1] = last[: -len(_GROUP_CJK)]
            return True
        if len(tokens) > 1:
            tokens.pop()
            return True
    return False


@lru_cache(maxsize=1 << 16)
def reference_keys(name: str, places: Places = PROVINCES) -> tuple[str, ...]:
    """The keys a hand-typed reference (an expert's employer, interest, declared conflict) is
    looked up by: its name key and, for a name typed without a legal form ("beijing jiangong
    road"), the key without its leading places too, so it still meets the registry's
    enterprise "Beijing Jiangong Road Co., Ltd.". Over-matching is the safe direction."""
    key = normalise_company_name(name, places)
    if not key:
        return ()
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " and ")
    tokens = _TOKEN.findall(text)
    _drop_leading_places(tokens, places)
    bare = "".join(tokens)
    return (key,) if bare in ("", key) or len(bare) >= len(key) else (key, bare)


@lru_cache(maxsize=1 << 16)
def normalise_company_name(name: str, places: Places = PROVINCES) -> str:
    """The matching key of a company name; "" for a name with no letters or digits.

    `places`: the place names an enterprise name may start with (the provinces, and the
    registry's cities and districts: `Places.of(...) | PROVINCES`).

    Cached: expert records repeat the same employers thousands of times, and the function is
    pure, so the cache changes nothing but the time an index build takes.
    """
    text = unicodedata.normalize("NFKC", name).casefold().replace("&", " and ")
    tokens = _TOKEN.findall(text)
    if not tokens:
        return ""
    enterprise = False
    while _strip_legal_forms(tokens):
        enterprise = True
    enterprise = _strip_group(tokens) or enterprise
    while _strip_legal_forms(tokens):  # "X Group Holdings Co" style leftovers
        pass
    if enterprise:
        _drop_leading_places(tokens, places)
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
