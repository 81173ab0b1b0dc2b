"""Double-random inspections: weighted, replayable, and any tampering is named."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from coordinator.domain.inspection import (
    InspectionError,
    InspectionInputs,
    ProjectRisk,
    draw_inspection,
    inputs_from_json,
    inputs_to_json,
    make_record,
    verify_inspection,
)
from coordinator.domain.rules import InspectionRules, load_rules
from tests.domain.domain_factories import seed_of

W = load_rules().inspection


def _risk(pid: str, **signals: int) -> ProjectRisk:
    return ProjectRisk(pid, {k: signals.get(k, 0) for k in (
        "collusion_signal", "deviation_warning", "supplementary_draw", "fault")})


def _inputs(sample: int = 2, inspectors: int = 2) -> InspectionInputs:
    return InspectionInputs("2026-10-01..2026-12-31", (
        _risk("P1"), _risk("P2", collusion_signal=2), _risk("P3", deviation_warning=1, fault=1),
        _risk("P4", supplementary_draw=3), _risk("P5")), ("ann", "bo", "cy"), sample,
        inspectors, W)


def test_weights_follow_the_stated_rules() -> None:
    weights = {p.project_id: p.weight(W) for p in _inputs().projects}
    assert weights == {"P1": W.base, "P2": W.base + 2 * W.collusion_signal,
                       "P3": W.base + W.deviation_warning + W.fault,
                       "P4": W.base + (3 - W.supplementary_free) * W.supplementary_draw,
                       "P5": W.base}
    assert [p["weight"] for p in inputs_to_json(_inputs())["projects"]] == list(
        weights.values())


def test_the_draw_replays_and_respects_the_sizes() -> None:
    inputs = _inputs(sample=3, inspectors=2)
    first = draw_inspection(inputs, seed_of(1))
    assert first == draw_inspection(inputs_from_json(inputs_to_json(inputs)), seed_of(1))
    assert len({a.project_id for a in first}) == 3
    assert len({a.inspector for a in first}) == 2 and {a.inspector for a in first} <= {
        "ann", "bo", "cy"}
    assert any(draw_inspection(inputs, seed_of(n)) != first for n in range(2, 6))


def test_risk_raises_the_chance_of_inspection() -> None:
    inputs = _inputs(sample=1, inspectors=1)
    hits = Counter(draw_inspection(inputs, seed_of(n))[0].project_id for n in range(3000))
    total = sum(p.weight(W) for p in inputs.projects)
    for p in inputs.projects:  # within 5 standard deviations of its share
        share = p.weight(W) / total
        sd = (3000 * share * (1 - share)) ** 0.5
        assert abs(hits[p.project_id] - 3000 * share) < 5 * sd, (p.project_id, hits)
    assert hits["P2"] > 3 * hits["P1"]


def test_a_record_verifies_and_every_alteration_is_named() -> None:
    record = make_record(_inputs(), seed_of(7), 42)
    assert verify_inspection(record) == []

    def altered(change: Any) -> list[str]:
        other = copy.deepcopy(record)
        change(other)
        return verify_inspection(other)

    assert any("seed" in p for p in altered(lambda r: r.update(seed=seed_of(8).hex())))
    assert any("digest" in p for p in altered(
        lambda r: r["inputs"]["projects"][0]["signals"].update(fault=9)))
    assert any("weight" in p for p in altered(
        lambda r: r["inputs"]["projects"][1].update(weight=1)))
    assert any("result" in p for p in altered(
        lambda r: r["result"][0].update(inspector="mallory")))
    assert any("format" in p for p in altered(lambda r: r.update(format="other")))
    assert altered(lambda r: r.pop("inputs")) != []
    assert any("weights" in p for p in altered(lambda r: r["inputs"]["weights"].pop("fault")))
    assert any("weights" in p for p in altered(
        lambda r: r["inputs"]["weights"].update(fault="2")))
    assert any("seed" in p for p in altered(lambda r: r.update(seed="00" * 16)))
    assert altered(lambda r: r.update(inputs=[1, 2])) != []
    assert altered(lambda r: r.update(seed="zz")) != []


@pytest.mark.parametrize(("change", "field"), [
    ({"sample": 0}, "sample"), ({"sample": 9}, "sample"), ({"inspectors": 4}, "inspectors"),
    ({"inspectors": 0}, "inspectors"), ({"roster": ("bo", "ann")}, "roster"),
])
def test_bad_inputs_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    base = {"period": "p", "projects": _inputs().projects, "roster": ("ann", "bo", "cy"),
            "sample": 2, "inspectors": 2, "rules": W}
    with pytest.raises(InspectionError, match=field):
        InspectionInputs(**{**base, **change})


def test_base_weight_must_leave_every_project_a_chance() -> None:
    with pytest.raises(ValueError, match="base"):
        InspectionRules(base=0)
