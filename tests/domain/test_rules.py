"""Rules load strictly from TOML; the packaged v1 carries the documented defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path

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
