"""Pinned trust: reports and draw archives are believed only under a key pinned from outside.

Every forgery an insider could write after the fact is refused with a message naming what is
wrong: a report re-signed by a fresh key or with a changed body, an archive whose seed or pool was
swapped, whose commitment is not in the signed chain, whose entries were re-signed by another key
or reordered. An archive or report from a coordinator certified by the CA verifies with ca.pem
alone; a certificate from another CA, or one of another role, does not.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.domain.audit import AuditEntry, entry_to_json, make_entry
from coordinator.domain.day_plan import project_seed, seed_hash
from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import commit, commitment_to_json, make_archive
from coordinator.domain.draw.inputs import DrawInputs
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.fairness import fairness_pool
from coordinator.domain.randomness import spare_workstation
from coordinator.domain.seed_protocol import commitment, final_seed
from coordinator.offline import EXPORT_FORMAT, verify_draw_file
from coordinator.report import canonical, verify_report
from coordinator.store.keys import public_key_hex
from evalgrid.pki.ca import init_ca, issue
from evalgrid.pki.identity import PkiError
from evalgrid.pki.signer import (
    certify_signing_key,
    ensure_signing_certificate,
    key_fingerprint,
    signing_key_from_certificate,
)
from evalgrid.trust import PinnedTrust, TrustError

SEED = bytes(range(32))
AT = "2026-03-02T08:00:00+00:00"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_ca(tmp_path / "pki")
    return tmp_path / "pki"


def _pinned(key: Ed25519PrivateKey) -> PinnedTrust:
    return PinnedTrust(source="test pin", key=key.public_key())


def _chain(key: Ed25519PrivateKey, kinds: list[tuple[str, str, dict[str, Any]]]
           ) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev: AuditEntry | None = make_entry(None, at=AT, kind="project.registered", subject="FAIR",
                                         detail={}, key=key)
    for kind, subject, detail in kinds:
        prev = make_entry(prev, at=AT, kind=kind, subject=subject, detail=detail, key=key)
        entries.append(prev)
    return entries


def _export(key: Ed25519PrivateKey, *, inputs: DrawInputs | None = None, seed: bytes = SEED,
            signed_key: Ed25519PrivateKey | None = None, cert: str = "",
            plan_seed: bytes | None = None, reveal_plan: bool = True) -> dict[str, Any]:
    """An honest export of one draw: archive, the entries anchoring it, its signer. With
    `plan_seed` the draw is a day plan's (its seed derived unless `seed` is given too)."""
    inputs = inputs or fairness_pool([3, 4, 5, 6, 7], seats=3).inputs
    if plan_seed is not None and seed is SEED:
        seed = project_seed(plan_seed, "FAIR")
    c = commit(seed, inputs)
    result = draw(inputs, seed)
    assert isinstance(result, DrawOutcome)
    planned = {} if plan_seed is None else {"plan_id": "plan-1"}
    kinds: list[tuple[str, str, dict[str, Any]]] = []
    if plan_seed is not None:
        kinds.append(("plan.committed", "2026-01-05", {"plan_id": "plan-1", "seed_hash":
                                                       seed_hash(plan_seed), "projects": 1}))
    kinds += [
        ("draw.committed", "FAIR", {**commitment_to_json(c), "project_id": "FAIR", **planned}),
        ("draw.placed", "FAIR", {"draw_id": c.draw_id, "outcome_digest": result.outcome_digest(),
                                 "seats": len(result.seats), "parent": ""}),
        ("draw.seed_revealed", c.draw_id, {"seed": seed.hex()}),
    ]
    if plan_seed is not None and reveal_plan:
        kinds.append(("plan.seed_revealed", "2026-01-05", {"plan_id": "plan-1",
                                                           "seed": plan_seed.hex()}))
    entries = _chain(signed_key or key, kinds)
    return {"format": EXPORT_FORMAT, "project_id": "FAIR",
            "draws": [make_archive(c, inputs, result, seed)],
            "audit": [json.loads(entry_to_json(e)) for e in entries],
            "signer": {"key": public_key_hex(key), "certificate": cert}}


def _verify(tmp_path: Path, export: dict[str, Any], trust: PinnedTrust) -> list[str]:
    path = tmp_path / "draws.json"
    path.write_text(json.dumps(export))
    return verify_draw_file(path, trust)[0]


# --- the signing certificate --------------------------------------------------------------------


def test_the_ca_certifies_the_signing_key_in_a_signer_certificate(pki: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = ensure_signing_certificate(pki, key.public_key())
    assert pem and ensure_signing_certificate(pki, key.public_key()) == pem  # kept, not reissued
    ca = (pki / "ca.pem").read_bytes()
    assert key_fingerprint(signing_key_from_certificate(ca, pem.encode())) == \
        key_fingerprint(key.public_key())
    # A TLS certificate of the same CA is no signing certificate.
    tls = issue(pki, "coordinator", "coordinator").cert_path.read_bytes()
    with pytest.raises(PkiError, match="role 'coordinator'"):
        signing_key_from_certificate(ca, tls)
    # A signing certificate of another CA is refused naming the issuer.
    other = pki.parent / "other"
    init_ca(other, name="Rogue CA")
    rogue = certify_signing_key(other, key.public_key()).read_bytes()
    with pytest.raises(PkiError, match="Rogue CA"):
        signing_key_from_certificate(ca, rogue)


def test_a_pin_must_be_well_formed(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match="64 hex"):
        PinnedTrust.from_fingerprint("abc")
    with pytest.raises(TrustError, match="no pinned key"):
        PinnedTrust.from_data_dir(tmp_path / "nowhere")
    bad = tmp_path / "k.pem"
    bad.write_bytes(b"\xff\xfe not a key")
    with pytest.raises(TrustError, match="not a PEM public key"):
        PinnedTrust.from_key_file(bad)


# --- reports --------------------------------------------------------------------------------


def _report(tmp_path: Path, key: Ed25519PrivateKey, body: dict[str, Any], cert: str = "",
            signer: Ed25519PrivateKey | None = None) -> Path:
    named = signer or key
    signed = {"report": body, "signature": key.sign(canonical(body)).hex(),
              "public_key": public_key_hex(named), "algorithm": "ed25519"}
    if cert:
        signed["signer_certificate"] = cert
    path = tmp_path / "report.json"
    path.write_text(json.dumps(signed))
    return path


def test_reports_are_believed_only_under_the_pinned_key(tmp_path: Path, pki: Path) -> None:
    coordinator = Ed25519PrivateKey.generate()
    forger = Ed25519PrivateKey.generate()
    body = {"project": {"id": "P1"}, "evaluation": {"winner": "B1"}}
    cert = ensure_signing_certificate(pki, coordinator.public_key())
    honest = _report(tmp_path, coordinator, body, cert)
    pins = [_pinned(coordinator),
            PinnedTrust.from_fingerprint(key_fingerprint(coordinator.public_key())),
            PinnedTrust.from_ca(pki / "ca.pem")]
    for pin in pins:
        assert verify_report(honest, pin) == []

    # The winner changed and re-signed with a fresh key, which the file names as its signer.
    forged = _report(tmp_path, forger, {**body, "evaluation": {"winner": "B2"}})
    expected = key_fingerprint(coordinator.public_key())[:16]
    signer = key_fingerprint(forger.public_key())[:16]
    for pin in pins[:2]:
        problems = verify_report(forged, pin)
        assert len(problems) == 1 and signer in problems[0] and expected in problems[0]
    assert "no signing certificate" in verify_report(forged, pins[2])[0]

    # The body changed, the coordinator's key still named: the signature fails.
    changed = _report(tmp_path, forger, {**body, "evaluation": {"winner": "B2"}}, cert,
                      signer=coordinator)
    for pin in pins:
        assert verify_report(changed, pin) == [
            "signature: does not verify with the pinned coordinator key over this body "
            "(altered or forged)"]

    # A forger's own certificate from a CA of its own making does not pass the pinned CA.
    rogue = pki.parent / "rogue"
    init_ca(rogue, name="Rogue CA")
    rogue_cert = certify_signing_key(rogue, forger.public_key()).read_text()
    self_made = _report(tmp_path, forger, body, rogue_cert)
    problem = verify_report(self_made, pins[2])
    assert len(problem) == 1 and "not certified" in problem[0] and signer in problem[0]


# --- draw archives --------------------------------------------------------------------------


def test_an_honest_export_verifies_under_each_kind_of_pin(tmp_path: Path, pki: Path) -> None:
    key = Ed25519PrivateKey.generate()
    cert = ensure_signing_certificate(pki, key.public_key())
    export = _export(key, cert=cert)
    key_file = tmp_path / "pub.pem"
    key_file.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for pin in (PinnedTrust.from_key_file(key_file), PinnedTrust.from_ca(pki / "ca.pem"),
                PinnedTrust.from_fingerprint(key_fingerprint(key.public_key()))):
        assert _verify(tmp_path, export, pin) == []


def test_a_swapped_seed_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    honest = _export(key)
    # Only the seed swapped: its hash and the signed reveal both disagree.
    export = copy.deepcopy(honest)
    export["draws"][0]["seed"] = bytes(32).hex()
    problems = _verify(tmp_path, export, _pinned(key))
    assert any("not the one revealed in audit entry" in p for p in problems)
    assert any("SHA-256 of the revealed seed" in p for p in problems)
    # A whole archive rebuilt around another seed (fresh commitment, replays to itself): its
    # commitment was never signed into the chain.
    rebuilt = _export(key, seed=bytes(32))
    forged = copy.deepcopy(honest)
    forged["draws"] = rebuilt["draws"]
    problems = _verify(tmp_path, forged, _pinned(key))
    assert problems and "is absent from the signed audit entries" in problems[0]


def test_a_narrowed_pool_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    honest = _export(key)
    inputs = fairness_pool([3, 4, 5, 6, 7], seats=3).inputs
    seated = {s["expert_id"] for s in honest["draws"][0]["result"]["seats"]}
    narrowed = DrawInputs(
        project=inputs.project, rules_version=inputs.rules_version, venues=inputs.venues,
        candidates=tuple(c for c in inputs.candidates
                         if c.expert_id in seated or c.expert_id.endswith("0")),
        per_venue_cap=inputs.per_venue_cap)
    forged = copy.deepcopy(honest)
    archive = _export(key, inputs=narrowed)["draws"][0]
    # The forger keeps the signed draw id but must change the input digest to replay.
    archive["commitment"]["draw_id"] = honest["draws"][0]["commitment"]["draw_id"]
    forged["draws"] = [archive]
    problems = _verify(tmp_path, forged, _pinned(key))
    assert any("commitment.input_digest is" in p and "audit entry seq 2 signed" in p
               for p in problems), problems


def test_a_commitment_absent_from_the_chain_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    export = _export(key)
    export["audit"] = [e for e in export["audit"] if e["kind"] != "draw.committed"]
    problems = _verify(tmp_path, export, _pinned(key))
    assert problems == [f"draws[0]: commitment {export['draws'][0]['commitment']['draw_id']} "
                        "is absent from the signed audit entries: the draw is not anchored in "
                        "the chain"]


def test_entries_re_signed_by_a_foreign_key_are_refused(tmp_path: Path, pki: Path) -> None:
    coordinator = Ed25519PrivateKey.generate()
    forger = Ed25519PrivateKey.generate()
    # Entries signed by the forger, the file naming the coordinator's key as signer.
    export = _export(coordinator, signed_key=forger)
    problems = _verify(tmp_path, export, _pinned(coordinator))
    assert len(problems) == 3
    assert all("does not verify with the pinned coordinator key" in p for p in problems)
    # The file naming the forger as its signer: refused before anything else, both named.
    named = _export(forger)
    problems = _verify(tmp_path, named, _pinned(coordinator))
    assert problems == [
        f"signer: signed by key {key_fingerprint(forger.public_key())[:16]}, not by the pinned "
        f"coordinator key {key_fingerprint(coordinator.public_key())[:16]} (test pin)"]
    # With only ca.pem pinned, the forger's certificate from its own CA is refused.
    rogue = pki.parent / "rogue"
    init_ca(rogue, name="Rogue CA")
    named["signer"]["certificate"] = certify_signing_key(rogue, forger.public_key()).read_text()
    problems = _verify(tmp_path, named, PinnedTrust.from_ca(pki / "ca.pem"))
    assert len(problems) == 1 and "not certified" in problems[0]


def test_a_result_recorded_before_its_commitment_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    honest = _export(key)
    committed, placed, revealed = honest["audit"]
    entries = _chain(key, [(placed["kind"], placed["subject"], placed["detail"]),
                           (committed["kind"], committed["subject"], committed["detail"]),
                           (revealed["kind"], revealed["subject"], revealed["detail"])])
    honest["audit"] = [json.loads(entry_to_json(e)) for e in entries]
    problems = _verify(tmp_path, honest, _pinned(key))
    assert problems == ["draws[0]: the commitment (seq 3) does not precede the result (seq 2) "
                        "in the chain"]


def test_an_edited_entry_or_a_broken_link_is_named(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    export = _export(key)
    export["audit"][1]["detail"]["seats"] = 99
    problems = _verify(tmp_path, export, _pinned(key))
    assert problems == ["audit entry seq 3 (draw.placed): its hash does not match its content: "
                        "edited"]
    export = _export(key)
    export["audit"][1]["prev_hash"] = "0" * 64
    problems = _verify(tmp_path, export, _pinned(key))
    assert "audit entry seq 3 (draw.placed): its hash does not match its content: edited" in \
        problems


def test_old_and_unknown_formats(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    export = _export(key)
    export["format"] = "evalgrid-draw-archive/9"
    assert "is none of" in _verify(tmp_path, export, _pinned(key))[0]


def test_a_plan_draw_checks_its_seed_derivation(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    plan_seed = bytes(range(100, 132))
    assert _verify(tmp_path, _export(key, plan_seed=plan_seed), _pinned(key)) == []
    # Not revealed yet: the derivation cannot be checked, and the verifier says so.
    problems = _verify(tmp_path, _export(key, plan_seed=plan_seed, reveal_plan=False),
                       _pinned(key))
    assert problems == ["draws[0]: the seed of plan plan-1 is not revealed (`evalgrid plan "
                        "reveal 2026-01-05` after the awards): the draw's seed derivation is "
                        "unchecked"]
    # An insider holding the signing key who drew with a seed of its choosing, and signed
    # everything consistently, is caught by the derivation.
    ground = _export(key, plan_seed=plan_seed, seed=bytes(32))
    problems = _verify(tmp_path, ground, _pinned(key))
    assert problems == ["draws[0]: its seed is not HMAC-SHA256(seed of plan plan-1, 'FAIR'): "
                        "not derived from the committed plan seed"]


def _shared_plan(key: Ed25519PrivateKey, *, reveal_after: bool = True,
                 supervisor: bytes = bytes(range(50, 82))) -> dict[str, Any]:
    """A plan whose seed combines the coordinator's and the supervisor's committed shares."""
    coordinator = bytes(range(1, 33))
    plan_seed = final_seed(coordinator, supervisor, "")
    export = _export(key, plan_seed=plan_seed)
    rows = export["audit"]
    plan, *rest = rows
    plan["detail"] |= {"seed_protocol": "evalgrid-seed-v1",
                       "coordinator_commitment": commitment(coordinator),
                       "supervisor_commitment": commitment(supervisor),
                       "supervisor_secret": supervisor.hex(), "public_value": ""}
    rest[-1]["detail"]["coordinator_secret"] = coordinator.hex()
    day = "2026-01-05"
    shares = [("seed.coordinator_committed", day, {"commitment": commitment(coordinator)}),
              ("seed.supervisor_revealed", day, {"secret": supervisor.hex()})]
    if not reveal_after:
        shares.reverse()
    entries = _chain(key, [*shares, *((r["kind"], r["subject"], r["detail"])
                                      for r in [plan, *rest])])
    export["audit"] = [json.loads(entry_to_json(e)) for e in entries]
    return export


def test_a_plan_seed_must_combine_both_committed_shares(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    assert _verify(tmp_path, _shared_plan(key), _pinned(key)) == []
    early = _verify(tmp_path, _shared_plan(key, reveal_after=False), _pinned(key))
    assert early == ["draws[0]: plan plan-1: the supervisor's share was not revealed after the "
                     "coordinator committed to its own (or the reveal is not in the chain)"]
    # The coordinator claims a supervisor share of its own choosing in the plan entry.
    forged = _shared_plan(key)
    forged["audit"][2]["detail"]["supervisor_secret"] = bytes(32).hex()
    problems = _verify(tmp_path, forged, _pinned(key))
    assert any("the supervisor's share: supervisor: the revealed secret does not hash" in p
               for p in problems)


@pytest.mark.parametrize("body", [
    b"\xff\xfe", b"[]", b'{"format": "evalgrid-draw-archive/2", "draws": [1]}',
    b'{"format": "evalgrid-draw-archive/1", "draws": [null]}',
    b'{"format": "evalgrid-draw-archive/2", "draws": [{"commitment": 5}], "audit": [{"a": 1}],'
    b' "signer": {}}',
    b'{"format": "evalgrid-draw-archive/2", "draws": [{"commitment": {"draw_id": "x"}, "seed":'
    b' 3, "result": 7}], "audit": "x", "signer": {"key": "00"}}',
])
def test_a_malformed_export_is_named_never_a_crash(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(body)
    problems, _ = verify_draw_file(path, _pinned(Ed25519PrivateKey.generate()))
    assert problems and all(isinstance(p, str) and p for p in problems)


def _resigned(key: Ed25519PrivateKey, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = _chain(key, [(r["kind"], r["subject"], r["detail"]) for r in rows])
    return [json.loads(entry_to_json(e)) for e in entries]


def test_a_supplementary_draw_must_derive_from_the_days_seed(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    plan_seed = bytes(range(100, 132))
    export = _export(key, plan_seed=plan_seed)
    committed = export["audit"][1]
    assert committed["kind"] == "draw.committed"
    del committed["detail"]["plan_id"]
    committed["detail"]["seed_from"] = {"day": "2026-01-05", "label": "FAIR"}
    export["audit"] = _resigned(key, export["audit"])
    assert _verify(tmp_path, export, _pinned(key)) == []
    # The same draw claimed as the project's second draw: its seed does not derive.
    export["audit"][1]["detail"]["seed_from"]["label"] = "FAIR/1"
    export["audit"] = _resigned(key, export["audit"])
    # The label names the draw (a first draw: the project id): no label to pick and grind.
    assert _verify(tmp_path, export, _pinned(key)) == [
        "draws[0]: its seed label 'FAIR/1' is not the one of this draw (expected 'FAIR'): a "
        "label the coordinator could pick"]


def _single_draw_export(key: Ed25519PrivateKey, coordinator: bytes, supervisor: bytes | None,
                        *, revealed_share: bytes | None = None) -> dict[str, Any]:
    """An honest export of a single draw seeded from its day's round: shares committed, the
    round fixed (`seed.fixed`), the draw, the award, then `seed.revealed`."""
    day = "2026-01-05"
    day_seed = final_seed(coordinator, supervisor)
    seed = project_seed(day_seed, "FAIR")
    inputs = fairness_pool([3, 4, 5, 6, 7], seats=3).inputs
    c = commit(seed, inputs)
    result = draw(inputs, seed)
    assert isinstance(result, DrawOutcome)
    making: dict[str, Any] = {"seed_protocol": "evalgrid-seed-v1",
                              "coordinator_commitment": commitment(coordinator),
                              "supervisor_commitment": ""}
    kinds: list[tuple[str, str, dict[str, Any]]] = [
        ("seed.coordinator_committed", day, {"day": day, "commitment": commitment(coordinator)})]
    if supervisor is None:
        kinds.append(("seed.fallback", day, {"day": day, "waited_s": 1800}))
        making["fallback"] = True
    else:
        share = revealed_share or supervisor
        making |= {"supervisor_commitment": commitment(supervisor),
                   "supervisor_secret": share.hex(), "public_value": ""}
        kinds[0:0] = [("seed.supervisor_committed", day, {"commitment": commitment(supervisor)})]
        kinds.append(("seed.supervisor_revealed", day, {"day": day, "secret": share.hex()}))
    kinds += [
        ("seed.fixed", day, {"day": day, "seed_hash": seed_hash(day_seed), **making}),
        ("draw.committed", "FAIR", {**commitment_to_json(c), "project_id": "FAIR",
                                    "seed_from": {"day": day, "label": "FAIR"}}),
        ("draw.placed", "FAIR", {"draw_id": c.draw_id, "outcome_digest": result.outcome_digest(),
                                 "seats": len(result.seats), "parent": ""}),
        ("draw.seed_revealed", c.draw_id, {"seed": seed.hex()}),
        ("seed.revealed", day, {"day": day, "seed": day_seed.hex(),
                                "coordinator_secret": coordinator.hex()}),
    ]
    entries = _chain(key, kinds)
    return {"format": EXPORT_FORMAT, "project_id": "FAIR",
            "draws": [make_archive(c, inputs, result, seed)],
            "audit": [json.loads(entry_to_json(e)) for e in entries],
            "signer": {"key": public_key_hex(key), "certificate": ""}}


def test_a_single_draw_derives_from_both_shares_of_its_day(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    coordinator, supervisor = bytes(range(32)), bytes(range(50, 82))
    assert _verify(tmp_path, _single_draw_export(key, coordinator, supervisor),
                   _pinned(key)) == []
    assert _verify(tmp_path, _single_draw_export(key, coordinator, None), _pinned(key)) == []
    # A seed.fixed entry that claims a supervisor's share that is not the committed one.
    forged = _single_draw_export(key, coordinator, supervisor, revealed_share=bytes(32))
    assert _verify(tmp_path, forged, _pinned(key)) == [
        "draws[0]: the seed round of 2026-01-05: the supervisor's share: supervisor: the "
        "revealed secret does not hash to the commitment " + commitment(supervisor)[:16]]
    # The coordinator's share revealed is not the committed one.
    export = _single_draw_export(key, coordinator, supervisor)
    export["audit"][-1]["detail"]["coordinator_secret"] = bytes(32).hex()
    export["audit"] = _resigned(key, export["audit"])
    assert _verify(tmp_path, export, _pinned(key))[0].startswith(
        "draws[0]: the seed round of 2026-01-05: the coordinator's share: coordinator: the "
        "revealed secret does not hash")
    # A new committee's first draw may be id/rK (its seed then differs), nothing else.
    for label, problem in (
            ("FAIR/r1", "its seed is not HMAC-SHA256(seed of 2026-01-05, 'FAIR/r1')"),
            ("FAIR/r1/2", "its seed label 'FAIR/r1/2' is not the one of this draw (expected "
                          "'FAIR'): a label the coordinator could pick")):
        export = _single_draw_export(key, coordinator, supervisor)
        (row,) = [r for r in export["audit"] if r["kind"] == "draw.committed"]
        row["detail"]["seed_from"]["label"] = label
        export["audit"] = _resigned(key, export["audit"])
        assert _verify(tmp_path, export, _pinned(key)) == [f"draws[0]: {problem}"]
    # Without the fixed round before the draw, the derivation proves nothing.
    export = _single_draw_export(key, coordinator, supervisor)
    export["audit"] = _resigned(key, [r for r in export["audit"] if r["kind"] != "seed.fixed"])
    assert _verify(tmp_path, export, _pinned(key)) == [
        "draws[0]: the revealed seed of 2026-01-05 was not fixed in the chain (seed.fixed or a "
        "plan) before this draw"]


def test_a_seed_label_is_spent_once_unless_the_draw_never_got_its_seats(
        tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    coordinator, supervisor = bytes(range(32)), bytes(range(50, 82))

    def with_retry(between: list[dict[str, Any]]) -> list[str]:
        """A draw committed earlier under the same label, then `between`, then ours."""
        export = _single_draw_export(key, coordinator, supervisor)
        rows = export["audit"]
        at = next(i for i, r in enumerate(rows) if r["kind"] == "draw.committed")
        earlier = json.loads(json.dumps(rows[at]))
        earlier["detail"]["draw_id"] = "d-earlier"
        export["audit"] = _resigned(key, [*rows[:at], earlier, *between, *rows[at:]])
        return _verify(tmp_path, export, _pinned(key))

    reused = ["draws[0]: two draws carry the seed label 'FAIR' of 2026-01-05"]
    assert with_retry([]) == reused  # a second roll of the same seed: refused
    for kind in ("draw.rolled_back", "draw.booking_conflict", "draw.abandoned"):
        gone = {"kind": kind, "subject": "FAIR", "detail": {"draw_id": "d-earlier"}}
        assert with_retry([gone]) == []  # the earlier one never got its seats
        other = {"kind": kind, "subject": "FAIR", "detail": {"draw_id": "d-other"}}
        assert with_retry([other]) == reused  # another draw's failure excuses nothing


def test_a_move_to_a_spare_replays_from_the_draws_seed(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    export = _export(key)
    seed = bytes.fromhex(export["draws"][0]["seed"])
    draw_id = export["draws"][0]["commitment"]["draw_id"]
    spares = ["W1", "W2", "W3", "W4"]
    picked = spares[spare_workstation(seed, "ses-1", "W0", spares)]
    move = {"session": "ses-1", "from": "W0", "to": picked, "draw_id": draw_id,
            "spares": spares}
    rows = [*export["audit"], {"kind": "seat.moved", "subject": "FAIR", "detail": move}]
    export["audit"] = _resigned(key, rows)
    assert _verify(tmp_path, export, _pinned(key)) == []
    aimed = next(ws for ws in spares if ws != picked)
    export["audit"] = _resigned(key, [*export["audit"][:-1], {
        "kind": "seat.moved", "subject": "FAIR", "detail": {**move, "to": aimed}}])
    (problem,) = _verify(tmp_path, export, _pinned(key))
    assert problem.endswith(f"(seat.moved): moved to {aimed!r}, but the committed seed of draw "
                            f"{draw_id} picks {picked!r}")


def test_a_draw_cannot_take_the_seed_round_of_another_day(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    export = _single_draw_export(key, bytes(range(32)), None)
    rows = export["audit"]
    for row in rows:  # the whole story moved to a day far from the project's window
        row["subject"] = "2026-01-09" if row["subject"] == "2026-01-05" else row["subject"]
        if row["kind"] == "draw.committed":
            row["detail"]["seed_from"]["day"] = "2026-01-09"
    export["audit"] = _resigned(key, rows)
    assert _verify(tmp_path, export, _pinned(key)) == [
        "draws[0]: its seed is from the round of 2026-01-09, not of the project's day (window "
        "start 2026-01-05T01:00:00+00:00)"]
