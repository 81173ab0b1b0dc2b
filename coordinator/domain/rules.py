"""Versioned rule parameters: every number the eligibility rules and the draw depend on.

Rules live in a TOML file (the packaged `rules_v1.toml` by default) rather than in code so an
operator can read them, and a draw records `Rules.version` and `Rules.digest()` so an auditor can
tell exactly which parameters applied. Loading is strict: an unknown, missing or mistyped key is
an error naming that key, because a silently defaulted rule is an unfair draw.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from coordinator.domain.model import RELATIONS

CatchmentMode = Literal["own_city", "configured"]
CATCHMENT_MODES: tuple[CatchmentMode, ...] = ("own_city", "configured")

PACKAGED_RULES = "rules_v1.toml"


class RulesError(ValueError):
    """A rules file is malformed; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class ConductRules:
    """How an expert's recorded conduct bars them from draws (the `[conduct]` table)."""

    late_sign_in_minutes: int = 15
    late_sign_in_count: int = 3
    late_sign_in_period_days: int = 90
    late_sign_in_cool_off_days: int = 30
    late_decline_hours: int = 12
    late_decline_cool_off_days: int = 30
    no_show_cool_off_days: int = 30
    no_show_suspension_count: int = 2
    no_show_period_days: int = 365
    no_show_suspension_days: int = 180

    def __post_init__(self) -> None:
        for key in _CONDUCT_KEYS:
            if getattr(self, key) < 0:
                raise RulesError(f"conduct.{key}: must be >= 0")
        for key in ("late_sign_in_count", "no_show_suspension_count"):
            if getattr(self, key) < 1:
                raise RulesError(f"conduct.{key}: must be >= 1")


@dataclass(frozen=True, slots=True)
class InspectionRules:
    """Risk weights of the double-random inspection draw (the `[inspection]` table).

    A project's weight is `base` plus each signal's count times its weight; supplementary
    draws count only beyond `supplementary_free`. Integers, so a replay is exact.
    """

    base: int = 1
    collusion_signal: int = 4
    deviation_warning: int = 2
    supplementary_draw: int = 1
    supplementary_free: int = 1
    fault: int = 2
    collusion_min_z: int = 3  # a favour or lock-step signal counts from this z-score

    def __post_init__(self) -> None:
        for key in _INSPECTION_KEYS:
            if getattr(self, key) < 0:
                raise RulesError(f"inspection.{key}: must be >= 0")
        if self.base < 1:
            raise RulesError("inspection.base: must be >= 1 (every project may be inspected)")

    def canonical(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in _INSPECTION_KEYS}


@dataclass(frozen=True, slots=True)
class ScoringRules:
    """The statutory constants of scoring (the `[scoring]` table; coordinator/domain/scoring.py).

    Integers, so the batch path (coordinator/domain/scoring_batch.py) applies them exactly.
    """

    min_valid_bids: int = 3  # fewer valid bids and the tender fails: no competition to award
    trim_above_experts: int = 5  # more experts: drop one highest and one lowest score per item
    works_trim_above_bids: int = 3  # works benchmark: more bids, drop highest and lowest price
    min_price_weight_goods: int = 30  # comprehensive scoring: price weight floor (of 100)
    min_price_weight_services: int = 10

    def __post_init__(self) -> None:
        for key in _SCORING_KEYS:
            if getattr(self, key) < 0:
                raise RulesError(f"scoring.{key}: must be >= 0")
        if self.min_valid_bids < 1:
            raise RulesError("scoring.min_valid_bids: must be >= 1")
        for key in ("min_price_weight_goods", "min_price_weight_services"):
            if getattr(self, key) > 100:
                raise RulesError(f"scoring.{key}: must be <= 100 (points of 100)")

    @property
    def min_price_weight(self) -> Mapping[str, Decimal]:
        """Price-weight floor by project category (categories without one are absent)."""
        return {"goods": Decimal(self.min_price_weight_goods),
                "services": Decimal(self.min_price_weight_services)}


@dataclass(frozen=True, slots=True)
class FaultRules:
    """The time limits of a failed guest site (the `[faults]` table; domain/fault_rules.py)."""

    wait_limit_minutes: int = 120  # before evaluation: repair within this of the window start
    resume_limit_minutes: int = 240  # during evaluation: repair within this of the failure

    def __post_init__(self) -> None:
        for key in _FAULT_KEYS:
            if getattr(self, key) < 1:
                raise RulesError(f"faults.{key}: must be >= 1")

    @property
    def wait_limit(self) -> timedelta:
        return timedelta(minutes=self.wait_limit_minutes)

    @property
    def resume_limit(self) -> timedelta:
        return timedelta(minutes=self.resume_limit_minutes)


_CONDUCT_KEYS = tuple(ConductRules.__dataclass_fields__)
_INSPECTION_KEYS = tuple(InspectionRules.__dataclass_fields__)
_SCORING_KEYS = tuple(ScoringRules.__dataclass_fields__)
_FAULT_KEYS = tuple(FaultRules.__dataclass_fields__)
# Every integer sub-table of the rules file: its name, model and keys (loaded the same way).
_TABLES: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "conduct": (ConductRules, _CONDUCT_KEYS),
    "inspection": (InspectionRules, _INSPECTION_KEYS),
    "scoring": (ScoringRules, _SCORING_KEYS),
    "faults": (FaultRules, _FAULT_KEYS),
}


@dataclass(frozen=True, slots=True)
class Rules:
    """The parameters of one rules version (see rules_v1.toml for what each means)."""

    version: str
    look_back_years: int = 3
    cool_off_days: int = 90
    workload_cap_per_half_day: int = 1
    local_utc_offset_minutes: int = 480
    per_venue_cap: int = 1
    age_limit: int = 70
    relations: frozenset[str] = frozenset(RELATIONS)
    min_committee: int = 5
    min_large_committee: int = 7
    technical_economic_share: Fraction = Fraction(2, 3)
    catchment: CatchmentMode = "own_city"
    time_zone: str = "Asia/Shanghai"
    conduct: ConductRules = ConductRules()
    inspection: InspectionRules = InspectionRules()
    scoring: ScoringRules = ScoringRules()
    faults: FaultRules = FaultRules()

    def __post_init__(self) -> None:
        if not self.version:
            raise RulesError("version: must be a non-empty string")
        for key in ("look_back_years", "cool_off_days", "age_limit"):
            if getattr(self, key) < 0:
                raise RulesError(f"{key}: must be >= 0")
        for key in ("workload_cap_per_half_day", "per_venue_cap", "min_committee"):
            if getattr(self, key) < 1:
                raise RulesError(f"{key}: must be >= 1")
        if self.min_large_committee < self.min_committee:
            raise RulesError("min_large_committee: must be >= min_committee")
        if not -24 * 60 < self.local_utc_offset_minutes < 24 * 60:
            raise RulesError("local_utc_offset_minutes: must be within a day")
        unknown = sorted(self.relations - set(RELATIONS))
        if unknown:
            raise RulesError(f"relations: unknown relation(s) {unknown}; known: {list(RELATIONS)}")
        if not 0 <= self.technical_economic_share <= 1:
            raise RulesError("technical_economic_share: must be between 0 and 1")
        if self.catchment not in CATCHMENT_MODES:
            raise RulesError(f"catchment: must be one of {list(CATCHMENT_MODES)}")
        zone = _zone(self.time_zone)
        # Half-days are counted at the fixed offset: the zone must be that offset all year.
        offsets = {int((datetime(2026, month, 1, tzinfo=zone).utcoffset()
                        or timedelta()).total_seconds()) // 60 for month in (1, 7)}
        if offsets != {self.local_utc_offset_minutes}:
            raise RulesError(f"local_utc_offset_minutes: {self.local_utc_offset_minutes} is not "
                             f"the offset of time_zone {self.time_zone!r} all year "
                             f"({sorted(offsets)})")

    def local_date(self, moment: datetime) -> date:
        """The province's calendar day at an aware moment: what every date rule counts in
        (age, look-backs, cool-off, penalties), never the UTC date."""
        if moment.tzinfo is None:
            raise ValueError("moment: must be timezone-aware")
        return moment.astimezone(_zone(self.time_zone)).date()

    def canonical(self) -> dict[str, Any]:
        """A plain, order-independent form: what the digest covers.

        Derived by walking the model's fields, so a parameter added to Rules (or to one of its
        tables) is in the digest without anyone remembering to list it.
        """
        return cast(dict[str, Any], _plain(self))

    def digest(self) -> str:
        """SHA-256 hex of the canonical JSON: two rule sets agree iff their digests do."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("ascii")).hexdigest()


# The model's integer parameters, read from the file's top level: a field added to Rules is a
# required key of the file with no second list to keep.
_INT_KEYS = tuple(f.name for f in fields(Rules) if f.type in (int, "int"))
_ALL_KEYS = frozenset((*_INT_KEYS, "version", "relations", "technical_economic_share", "catchment",
                       "time_zone", *_TABLES))


def _plain(value: object) -> object:
    """A JSON-ready form of a rules value: dataclasses by field, sets sorted, fractions as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)  # type: ignore[type-var]
    if isinstance(value, Fraction | Decimal):
        return str(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise TypeError(f"rules: no canonical form for {type(value).__name__}")


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RulesError(f"time_zone: {name!r} is not a known time zone ({exc})") from None


def _int_table(data: object, table: str, keys: tuple[str, ...]) -> dict[str, int]:
    """A sub-table of integers, every key required and no other."""
    if not isinstance(data, dict):
        raise RulesError(f"{table}: expected a table")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise RulesError(f"{table}.{unknown[0]}: unknown key")
    missing = sorted(set(keys) - set(data))
    if missing:
        raise RulesError(f"{table}.{missing[0]}: missing key")
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise RulesError(f"{table}.{key}: expected an integer, got {value!r}")
    return cast(dict[str, int], data)


def _parse_share(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RulesError('technical_economic_share: expected a fraction such as "2/3"')
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError) as exc:
        raise RulesError(f"technical_economic_share: cannot parse {value!r}: {exc}") from None


def rules_from_mapping(data: dict[str, Any]) -> Rules:
    """Build Rules from a parsed TOML table; every key is required so nothing defaults silently."""
    unknown = sorted(set(data) - _ALL_KEYS)
    if unknown:
        raise RulesError(f"{unknown[0]}: unknown key")
    missing = sorted(_ALL_KEYS - set(data))
    if missing:
        raise RulesError(f"{missing[0]}: missing key")
    version = data["version"]
    if not isinstance(version, str):
        raise RulesError("version: expected a string")
    ints: dict[str, Any] = {}
    for key in _INT_KEYS:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RulesError(f"{key}: expected an integer, got {value!r}")
        ints[key] = value
    relations = data["relations"]
    if not isinstance(relations, list) or not all(isinstance(r, str) for r in relations):
        raise RulesError("relations: expected a list of strings")
    catchment = data["catchment"]
    if catchment not in CATCHMENT_MODES:
        raise RulesError(f"catchment: expected one of {list(CATCHMENT_MODES)}, got {catchment!r}")
    time_zone = data["time_zone"]
    if not isinstance(time_zone, str):
        raise RulesError("time_zone: expected a zone name such as \"Asia/Shanghai\"")
    tables: dict[str, Any] = {table: model(**_int_table(data[table], table, keys))
                              for table, (model, keys) in _TABLES.items()}
    return Rules(
        version=version,
        time_zone=time_zone,
        relations=frozenset(relations),
        technical_economic_share=_parse_share(data["technical_economic_share"]),
        catchment=cast(CatchmentMode, catchment),
        **tables,
        **ints,
    )


@lru_cache(maxsize=1)
def packaged_rules() -> Rules:
    """The packaged v1 rules, loaded once: the defaults of the pure modules' rule parameters."""
    return load_rules()


def load_rules(path: Path | None = None) -> Rules:
    """Load a rules file; None loads the packaged v1 rules."""
    if path is None:
        raw = resources.files("coordinator.domain").joinpath(PACKAGED_RULES).read_bytes()
        where = PACKAGED_RULES
    else:
        raw = path.read_bytes()
        where = str(path)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"{where}: not valid TOML: {exc}") from None
    try:
        return rules_from_mapping(data)
    except RulesError as exc:
        raise RulesError(f"{where}: {exc}") from None
