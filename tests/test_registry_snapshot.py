"""Re-derivable pools: an auditor with the registry snapshot, the rules and the exported draws
re-derives every draw's eligible pool with the coordinator's own screening code.

A demo day's honest draws verify; an archive whose pool was narrowed (a candidate barred who no
rule bars) or widened (a candidate let in whom a rule bars), even one the coordinator committed
to and signed, is refused naming the candidate and the rule; a snapshot that is not the one the
draws used, or was edited, is refused; the snapshot holds no personal data.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.domain.audit import AuditEntry, entry_to_json, make_entry
from coordinator.domain.day_plan import plan_order, projects_of_day
from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import commit, make_archive
from coordinator.domain.draw.canonical import input_digest
from coordinator.domain.draw.inputs import (
    DrawInputs,
    pack_mask,
    pack_rows,
    unpack_mask,
    unpack_rows,
)
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.eligibility import host_city_of
from coordinator.domain.model import Province
from coordinator.domain.registry_snapshot import (
    age_out,
    pseudonym_key,
    record_anchor,
    registry_snapshot,
)
from coordinator.domain.rules import load_rules
from coordinator.drawing import DrawDesk, DrawRefused, PreparedDraw
from coordinator.offline import EXPORT_FORMAT, verify_draw_file
from coordinator.province.generator import generate_province
from coordinator.store.keys import public_key_hex
from evalgrid.trust import PinnedTrust

RULES = load_rules()
DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
AT = "2026-03-01T10:00:00+00:00"
MASTER = bytes(range(32))
KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def province() -> Province:
    return generate_province(seed=5, day=DAY, cities=3, sites=6, workstations=120,
                             experts=1200, companies=200, projects=24)


@pytest.fixture(scope="module")
def day(province: Province) -> list[tuple[PreparedDraw, DrawOutcome]]:
    """The demo day: every project of DAY drawn in plan order, each booked before the next."""
    desk = DrawDesk(RULES)
    desk.pseudonym_key = pseudonym_key(MASTER)
    desk.load(province, [])
    drawn = []
    offset = RULES.local_utc_offset_minutes
    for project in plan_order(projects_of_day(province.projects, DAY, offset)):
        try:
            prepared = desk.prepare(project, NOW, seed=bytes(32))
        except DrawRefused:
            continue
        result = draw(prepared.inputs, prepared.seed)
        if isinstance(result, DrawOutcome):
            desk.book(project, [(s.expert_id, s.workstation_id) for s in result.seats])
            drawn.append((prepared, result))
    assert len(drawn) >= 3
    return drawn


@pytest.fixture(scope="module")
def snapshot(province: Province) -> dict[str, Any]:
    return registry_snapshot(province, pseudonym_key(MASTER), RULES)


def _export(prepared: PreparedDraw, result: DrawOutcome, *,
            inputs: DrawInputs | None = None,
            registry: dict[str, Any] | None = None) -> dict[str, Any]:
    """One project's export, signed like the coordinator's (commitment, pool record, result,
    seed); `inputs`/`registry` replace the honest ones *before* signing: a coordinator that
    commits to a narrowed pool."""
    inputs = inputs or prepared.inputs
    record = registry if registry is not None else prepared.registry
    assert record is not None
    c = commit(prepared.seed, inputs)
    out = draw(inputs, prepared.seed)
    assert isinstance(out, DrawOutcome)
    pid = inputs.project.id
    prev: AuditEntry | None = None
    rows = []
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("draw.committed", pid, {"draw_id": c.draw_id, "seed_hash": c.seed_hash,
                                 "input_digest": c.input_digest, "rules_version":
                                 c.rules_version, "parent": None, "project_id": pid,
                                 **record_anchor(record)}),
        ("draw.placed", pid, {"draw_id": c.draw_id, "outcome_digest": out.outcome_digest()}),
        ("draw.seed_revealed", c.draw_id, {"seed": prepared.seed.hex()}),
    ]
    for kind, subject, detail in steps:
        prev = make_entry(prev, at=AT, kind=kind, subject=subject, detail=detail, key=KEY)
        rows.append(json.loads(entry_to_json(prev)))
    archive = make_archive(c, inputs, out, prepared.seed)
    archive["registry"] = record
    return {"format": EXPORT_FORMAT, "project_id": pid, "draws": [archive], "audit": rows,
            "signer": {"key": public_key_hex(KEY), "certificate": ""}}


def _verify(tmp_path: Path, export: dict[str, Any], snapshot: dict[str, Any]) -> list[str]:
    path = tmp_path / "draws.json"
    path.write_text(json.dumps(export))
    return verify_draw_file(path, PinnedTrust(source="test pin", key=KEY.public_key()),
                            registry=snapshot, rules=RULES)[0]


def _with_barred(prepared: PreparedDraw, flip: str, value: bool) -> DrawInputs:
    inputs = prepared.inputs
    assert inputs.snapshot is not None
    barred = unpack_mask(inputs.barred, len(inputs.snapshot.candidates), "barred").copy()
    barred[inputs.snapshot.expert_rows()[flip]] = value
    return replace(inputs, barred=pack_mask(barred))


def _declaring(prepared: PreparedDraw, code: str, expert_id: str) -> dict[str, Any]:
    """The draw's pool record with `expert_id` added to the experts it declares `code` bars."""
    inputs = prepared.inputs
    assert prepared.registry is not None and inputs.snapshot is not None
    record = copy.deepcopy(prepared.registry)
    n = len(inputs.snapshot.candidates)
    rows = {*unpack_rows(record["declared"][code], n, code).tolist(),
            inputs.snapshot.expert_rows()[expert_id]}
    record["declared"][code] = pack_rows(sorted(rows))
    return record


def _relevant_ids(prepared: PreparedDraw) -> list[str]:
    inputs = prepared.inputs
    assert inputs.snapshot is not None
    rows = np.zeros(len(inputs.snapshot.candidates), dtype=np.bool_)
    index = inputs.snapshot.candidate_index()
    for q in inputs.project.quotas:
        rows[index.matching(q.specialty, q.kind)[0]] = True
    return [inputs.snapshot.candidates[r].expert_id for r in np.flatnonzero(rows)]


# --- honest ---------------------------------------------------------------------------------


def test_every_honest_draw_of_the_day_verifies_with_the_registry(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    for prepared, result in day:
        assert prepared.registry is not None
        assert prepared.registry["registry"] == snapshot["pool_digest"]
        assert _verify(tmp_path, _export(prepared, result), snapshot) == []
    # Later draws of the day declare the bookings of earlier ones (overlap, workload).
    declared = [p.registry["declared"] for p, _ in day if p.registry is not None]
    assert any(d["overlap"] or d["workload"] for d in declared)


# --- narrowed or widened --------------------------------------------------------------------


def test_a_narrowed_pool_is_refused_naming_the_candidate(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    pool = {c.expert_id for c in prepared.inputs.resolved_candidates()}
    victim = next(e for e in _relevant_ids(prepared) if e in pool)
    narrowed = _with_barred(prepared, victim, True)
    assert input_digest(narrowed) != input_digest(prepared.inputs)
    problems = _verify(tmp_path, _export(prepared, result, inputs=narrowed), snapshot)
    assert len(problems) == 1, problems
    assert f"candidate {victim} is missing from the pool (barred in the draw's inputs)" \
        in problems[0]
    assert "no rule bars them" in problems[0]


def test_a_candidate_let_in_is_refused_naming_the_rule_that_bars_them(
        tmp_path: Path, province: Province, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    project = prepared.inputs.project
    host = host_city_of(project, province.sites)
    experts = {e.id: e for e in province.experts}
    pool = {c.expert_id for c in prepared.inputs.resolved_candidates()}
    local = next(e for e in _relevant_ids(prepared) if e not in pool
                 and host in (experts[e].city, experts[e].work_city))
    widened = _with_barred(prepared, local, False)
    problems = _verify(tmp_path, _export(prepared, result, inputs=widened), snapshot)
    assert len(problems) == 1, problems
    assert f"candidate {local} is in the pool, but rule city (" in problems[0]
    assert f"bars them from {project.id}" in problems[0]


def test_a_candidate_dropped_from_the_days_snapshot_is_named(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    inputs = prepared.inputs
    assert inputs.snapshot is not None
    victim = _relevant_ids(prepared)[0]
    keep = [c for c in inputs.snapshot.candidates if c.expert_id != victim]
    barred = unpack_mask(inputs.barred, len(inputs.snapshot.candidates), "barred")
    kept_bits = np.array([b for c, b in zip(inputs.snapshot.candidates, barred, strict=True)
                          if c.expert_id != victim], dtype=np.bool_)
    smaller = type(inputs.snapshot)(tuple(keep), inputs.snapshot.venues)
    forged = replace(inputs, snapshot=smaller, barred=pack_mask(kept_bits))
    problems = _verify(tmp_path, _export(prepared, result, inputs=forged), snapshot)
    assert any(f"candidate {victim} is missing from the day's snapshot" in p for p in problems)


def test_a_declared_bar_edited_after_signing_is_refused(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    export = _export(prepared, result)
    declared = export["draws"][0]["registry"]["declared"]
    declared["overlap"] = pack_rows([1] if declared["overlap"] == pack_rows([0]) else [0])
    problems = _verify(tmp_path, export, snapshot)
    assert any("is not the one signed in audit entry" in p for p in problems), problems


def test_a_false_declared_bar_names_the_candidate_it_removes(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    """A bar declared at draw time (and signed) is taken as declared: the candidate it removes
    verifies, but the record names them under that rule for anyone to question."""
    prepared, result = day[0]
    assert prepared.registry is not None
    pool = {c.expert_id for c in prepared.inputs.resolved_candidates()}
    victim = next(e for e in _relevant_ids(prepared) if e in pool)
    record = _declaring(prepared, "overlap", victim)
    narrowed = _with_barred(prepared, victim, True)
    assert _verify(tmp_path, _export(prepared, result, inputs=narrowed, registry=record),
                   snapshot) == []
    # ... but not without the declaration.
    assert _verify(tmp_path, _export(prepared, result, inputs=narrowed), snapshot)


def test_a_declared_row_list_that_does_not_decode_is_named_not_a_crash(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    """Signed, but not a row list (cut inside a number, not base64, past the snapshot): the
    problem names the field and the reason."""
    prepared, result = day[0]
    assert prepared.registry is not None and prepared.inputs.snapshot is not None
    n = len(prepared.inputs.snapshot.candidates)
    for text, reason in (("gA==", "ends inside a number"), ("!!!!", "not base64"),
                         ("gAA=", "not in its shortest form"),
                         (pack_rows([n]), f"past the {n} rows")):
        record = copy.deepcopy(prepared.registry)
        record["declared"]["workload"] = text
        problems = _verify(tmp_path, _export(prepared, result, registry=record), snapshot)
        assert len(problems) == 1, problems
        assert "registry.declared.workload" in problems[0] and reason in problems[0], problems


def test_a_pool_record_of_the_first_format_still_verifies(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    """Archives drawn before the row lists declared expert ids (evalgrid-draw-pool-v1): read
    as they were written, a false bar in them still named."""
    prepared, result = day[-1]  # the last draw of the day: earlier ones bar experts
    inputs = prepared.inputs
    assert prepared.registry is not None and inputs.snapshot is not None
    ids = [c.expert_id for c in inputs.snapshot.candidates]
    n = len(ids)

    def first_format(record: dict[str, Any]) -> dict[str, Any]:
        declared = {code: ([ids[r] for r in unpack_rows(v, n, code)] if code != "conduct"
                           else v) for code, v in record["declared"].items()}
        return {**record, "format": "evalgrid-draw-pool-v1", "declared": declared}

    old = first_format(prepared.registry)
    assert any(old["declared"][c] for c in ("overlap", "workload", "cool_off"))
    assert _verify(tmp_path, _export(prepared, result, registry=old), snapshot) == []
    pool = {c.expert_id for c in inputs.resolved_candidates()}
    victim = next(e for e in _relevant_ids(prepared) if e in pool)
    narrowed = _with_barred(prepared, victim, True)
    problems = _verify(tmp_path, _export(prepared, result, inputs=narrowed, registry=old),
                       snapshot)
    assert any(f"candidate {victim} is missing from the pool" in p for p in problems), problems
    declared = first_format(_declaring(prepared, "overlap", victim))
    assert _verify(tmp_path, _export(prepared, result, inputs=narrowed, registry=declared),
                   snapshot) == []


# --- the snapshot ---------------------------------------------------------------------------


def test_another_or_an_edited_snapshot_is_refused(
        tmp_path: Path, province: Province, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    export = _export(prepared, result)
    edited = copy.deepcopy(snapshot)
    edited["pool"]["experts"][0]["status"] = "suspended"
    problems = _verify(tmp_path, export, edited)
    assert len(problems) == 1 and "pool_digest" in problems[0] and "edited" in problems[0]
    # Re-digested: a consistent file, but not the registry the draw used.
    other = registry_snapshot(replace(province, experts=province.experts[1:]),
                              pseudonym_key(MASTER), RULES)
    problems = _verify(tmp_path, export, other)
    assert len(problems) == 1 and "not the registry this draw used" in problems[0]
    # Under another key the pseudonyms differ, and so does the digest.
    assert registry_snapshot(province, pseudonym_key(bytes(32)), RULES)["pool_digest"] != \
        snapshot["pool_digest"]


def test_the_snapshot_holds_no_personal_data(province: Province,
                                             snapshot: dict[str, Any]) -> None:
    text = json.dumps(snapshot, ensure_ascii=False)
    rows = {row["id"]: json.dumps(row) for row in snapshot["pool"]["experts"]}
    for e in province.experts:
        assert e.name not in text and e.id_number not in text and e.phone not in text
        assert e.birth_date.isoformat() not in rows[e.id]
        assert all(p.reason not in rows[e.id] for p in e.penalties)
        for r in e.relatives:
            assert f'"{r.person_id}"' not in text and r.name not in text
    for c in province.companies:
        for p in c.people:
            assert f'"{p.person_id}"' not in text and p.name not in text


def test_age_out_is_the_first_day_the_age_rule_bars() -> None:
    from coordinator.domain.conflicts import years_before

    for born in (date(1956, 2, 29), date(1956, 3, 1), date(1955, 12, 31), date(1960, 6, 15)):
        out = age_out(born, 70)
        assert years_before(out, 71) >= born
        assert years_before(date.fromordinal(out.toordinal() - 1), 71) < born


def test_a_pool_screened_on_another_day_than_committed_is_named(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    assert prepared.registry is not None
    record = {**prepared.registry, "day": "2026-02-27"}
    problems = _verify(tmp_path, _export(prepared, result, registry=record), snapshot)
    assert any("screened as of 2026-02-27, but committed on 2026-03-01" in p for p in problems)


def test_a_verifier_without_a_pool_record_says_the_draw_cannot_be_re_derived(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    prepared, result = day[0]
    export = _export(prepared, result)
    del export["draws"][0]["registry"]
    assert _verify(tmp_path, export, snapshot) == [
        "draws[0]: records no registry snapshot (drawn by an older version): its pool cannot "
        "be re-derived"]


def test_a_malformed_snapshot_is_named_never_a_crash(
        tmp_path: Path, day: list[tuple[PreparedDraw, DrawOutcome]],
        snapshot: dict[str, Any]) -> None:
    from coordinator.domain.registry_snapshot import pool_digest

    prepared, result = day[0]
    export = _export(prepared, result)
    assert _verify(tmp_path, export, {"format": "nope"})[0].startswith(
        "registry snapshot: format:")
    broken = copy.deepcopy(snapshot)
    broken["pool"]["experts"][0]["age_out"] = "soon"
    broken["pool_digest"] = pool_digest(broken["pool"])
    problems = _verify(tmp_path, export, broken)
    assert len(problems) == 1 and problems[0].startswith(
        "registry snapshot: pool.experts: cannot be read: ValueError"), problems
