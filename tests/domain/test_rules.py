"""Rules load strictly from TOML; the packaged v1 carries the documented defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import pytest
from domain_factories import expert

from coordinator.domain.eligibility import PoolIndex
from coordinator.domain.model import RELATIONS
from coordinator.domain.rules import Rules, RulesError, load_rules

PACKAGED = (Path(__file__).parents[2] / "coordinator" / "domain" / "rules_v1.toml").read_text()


def test_packaged_v1_defaults() -> None:
    rules = load_rules()
    assert rules.version == "v1"
    assert rules.look_back_years == 3
    assert rules.cool_off_days == 90
    assert rules.workload_cap_per_half_day == 1
    assert rules.per_venue_cap == 1
    assert rules.age_limit == 70
    assert rules.relations == frozenset(RELATIONS)
    assert rules.min_committee == 5
    assert rules.min_large_committee == 7
    assert rules.technical_economic_share == Fraction(2, 3)
    assert rules.catchment == "own_city"
    assert rules.local_utc_offset_minutes == 480


def test_digest_is_stable_and_sensitive() -> None:
    rules = load_rules()
    assert rules.digest() == load_rules().digest()
    assert len(rules.digest()) == 64
    assert rules.digest() == Rules(version="v1").digest()  # dataclass defaults mirror v1
    changed = Rules(version="v1", cool_off_days=91)
    assert changed.digest() != rules.digest()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_from_path(tmp_path: Path) -> None:
    text = PACKAGED.replace('version = "v1"', 'version = "v2"').replace(
        'catchment = "own_city"', 'catchment = "configured"'
    )
    rules = load_rules(_write(tmp_path, text))
    assert rules.version == "v2"
    assert rules.catchment == "configured"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("cool_off_days = 90", "", "cool_off_days"),  # missing
        ("cool_off_days = 90", "cool_off_days = 90\nspeed = 1", "speed"),  # unknown
        ("look_back_years = 3", 'look_back_years = "3"', "look_back_years"),  # wrong type
        ("age_limit = 70", "age_limit = true", "age_limit"),  # bool is not an int
        ('"spouse",', '"spouse", "friend",', "relations"),  # unknown relation
        (
            'technical_economic_share = "2/3"',
            'technical_economic_share = "two thirds"',
            "technical_economic_share",
        ),
        ('catchment = "own_city"', 'catchment = "anywhere"', "catchment"),
        ("per_venue_cap = 1", "per_venue_cap = 0", "per_venue_cap"),
        ("min_large_committee = 7", "min_large_committee = 3", "min_large_committee"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in PACKAGED
    with pytest.raises(RulesError, match=key):
        load_rules(_write(tmp_path, PACKAGED.replace(old, new)))


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(_write(tmp_path, "version = \n"))


def test_dates_are_the_provinces_local_dates() -> None:
    """At 01:00 on 2 March in Hangzhou it is still 1 March in UTC: the rules count 2 March."""
    rules = load_rules()
    assert rules.time_zone == "Asia/Shanghai"
    moment = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert moment.date() == date(2026, 3, 1)
    assert rules.local_date(moment) == date(2026, 3, 2)
    assert rules.local_date(datetime(2026, 3, 1, 15, 59, tzinfo=UTC)) == date(2026, 3, 1)
    # Seventy-one on the local day (over the limit of seventy), seventy on the UTC day.
    old = expert("E1", birth=date(1955, 3, 2))
    pool = PoolIndex.build([old], rules)
    assert pool.day_reasons(rules, rules.local_date(moment)).get("E1")
    assert not pool.day_reasons(rules, moment.date()).get("E1")
    with pytest.raises(ValueError, match="moment"):
        rules.local_date(datetime(2026, 3, 1, 17, 0))


def test_the_time_zone_is_checked(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="time_zone: 'Asia/Hangzho'"):
        load_rules(_write(tmp_path, PACKAGED.replace('"Asia/Shanghai"', '"Asia/Hangzho"')))
    with pytest.raises(RulesError, match="local_utc_offset_minutes: 480 is not the offset"):
        load_rules(_write(tmp_path, PACKAGED.replace('"Asia/Shanghai"', '"Europe/Berlin"')))
    with pytest.raises(RulesError, match="time_zone: missing key"):
        load_rules(_write(tmp_path, PACKAGED.replace('time_zone = "Asia/Shanghai"', "")))


def _every_field_changed(rules: Rules) -> list[tuple[str, Rules]]:
    """One variant of `rules` per leaf field of the model, that field changed (still valid)."""
    from dataclasses import fields
    from dataclasses import replace as _replace

    replace = cast(Any, _replace)
    variants: list[tuple[str, Rules]] = []
    alternatives: dict[str, object] = {
        "version": "v1b", "relations": frozenset(RELATIONS) - {"cousin"},
        "technical_economic_share": Fraction(3, 4), "catchment": "configured",
        "time_zone": "Asia/Hong_Kong", "local_utc_offset_minutes": 480,
    }
    for f in fields(rules):
        value = getattr(rules, f.name)
        if hasattr(value, "__dataclass_fields__"):
            for sub in fields(value):
                bumped = replace(value, **{sub.name: getattr(value, sub.name) + 1})
                variants.append((f"{f.name}.{sub.name}", replace(rules, **{f.name: bumped})))
        elif f.name in alternatives:
            if alternatives[f.name] != value:
                variants.append((f.name, replace(rules, **{f.name: alternatives[f.name]})))
        else:
            variants.append((f.name, replace(rules, **{f.name: value + 1})))
    return variants


def test_changing_any_field_changes_the_digest() -> None:
    """The digest is derived from the model: a parameter cannot be left out of it."""
    from dataclasses import fields

    rules = load_rules()
    variants = _every_field_changed(rules)
    leaves = sum(len(fields(getattr(rules, f.name))) if hasattr(
        getattr(rules, f.name), "__dataclass_fields__") else 1 for f in fields(rules))
    # local_utc_offset_minutes is tied to time_zone: changing it alone is refused (tested above).
    assert len(variants) == leaves - 1
    digests = {name: changed.digest() for name, changed in variants}
    assert rules.digest() not in digests.values()
    assert len(set(digests.values())) == len(digests)  # and no two changes collide


def test_scoring_and_fault_limits_come_from_the_rules_file(tmp_path: Path) -> None:
    from datetime import timedelta

    from coordinator.domain import fault_rules, scoring

    rules = load_rules()
    assert (scoring.MIN_VALID_BIDS, scoring.TRIM_ABOVE_EXPERTS,
            scoring.WORKS_TRIM_ABOVE_BIDS) == (3, 5, 3)
    assert rules.scoring.min_price_weight == scoring.MIN_PRICE_WEIGHT
    assert fault_rules.WAIT_LIMIT == rules.faults.wait_limit == timedelta(hours=2)
    assert fault_rules.RESUME_LIMIT == rules.faults.resume_limit == timedelta(hours=4)
    longer = load_rules(_write(tmp_path, PACKAGED.replace(
        "wait_limit_minutes = 120", "wait_limit_minutes = 150")))
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    incident = fault_rules.open_incident("i", "P", "S", "lost", window_start=start,
                                         failed_at=start, evaluation_begun=False, now=start,
                                         limits=longer.faults)
    assert incident.deadline == start + timedelta(minutes=150)
    assert incident.limit == "150 minutes from the window start"
    with pytest.raises(RulesError, match=r"scoring\.min_valid_bids: must be >= 1"):
        load_rules(_write(tmp_path, PACKAGED.replace("min_valid_bids = 3", "min_valid_bids = 0")))
    with pytest.raises(RulesError, match=r"faults\.resume_limit_minutes: missing key"):
        load_rules(_write(tmp_path, PACKAGED.replace("resume_limit_minutes = 240", "")))
