"""Anchoring a draw archive in the signed audit chain (pure: no I/O).

A replay shows only that an archive agrees with itself: whoever writes the archive after the
fact (a narrowed pool, a fresh seed that replays to the seated committee) can make it agree. So
an export carries the audit entries that prove the draw's history, each hashed over its content
and chain link and signed by the coordinator's key, and a verifier holding a *pinned* key checks:

- every carried entry: its hash recomputes from its content and its signature verifies;
- entries that follow each other in the chain (seq n, n + 1) link by ``prev_hash``;
- each draw's commitment (seed hash, input digest, rules version, parent) is the one signed in
  a ``draw.committed`` entry; its result is the one (``outcome_digest``) signed in a later
  ``draw.placed`` entry: the commitment precedes the result in the chain;
- a revealed seed is the one signed in a ``draw.seed_revealed`` entry after the placement;
- every move of a member to a spare workstation (``seat.moved`` with its spares) replays from
  the revealed seed of the member's draw (`randomness.spare_workstation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.domain.audit import (
    SIGNING_CONTEXT,
    AuditEntry,
    AuditFormatError,
    entry_from_json,
    entry_hash,
)
from coordinator.domain.audit import canonical_json as _canonical_json
from coordinator.domain.day_plan import project_seed, seed_hash
from coordinator.domain.randomness import spare_workstation
from coordinator.domain.seed_protocol import SeedRefused, check_reveal, final_seed

__all__ = ["ANCHOR_KINDS", "COMMITMENT_FIELDS", "check_anchors", "entries_from_export",
           "entry_problems", "move_problems"]

#: The seed shares of a day (coordinator/seed_shares.py), by the day as subject.
SEED_KINDS = ("seed.coordinator_committed", "seed.supervisor_committed",
              "seed.supervisor_revealed", "seed.fallback", "seed.fixed", "seed.revealed")
#: Audit kinds an export carries for its draws.
ANCHOR_KINDS = frozenset({"draw.committed", "draw.placed", "draw.seed_revealed", "seat.moved",
                          "plan.committed", "plan.seed_revealed", *SEED_KINDS})
#: The commitment fields the signed ``draw.committed`` entry must repeat.
COMMITMENT_FIELDS = ("draw_id", "seed_hash", "input_digest", "rules_version", "parent")


def entries_from_export(rows: Sequence[Any]) -> tuple[list[AuditEntry], list[str]]:
    """Parse the export's audit rows strictly; problems name the row."""
    entries: list[AuditEntry] = []
    problems: list[str] = []
    for n, row in enumerate(rows):
        try:
            entries.append(entry_from_json(_canonical_json(row)))
        except (AuditFormatError, TypeError, ValueError) as exc:
            problems.append(f"audit[{n}]: unreadable entry: {exc}")
    return sorted(entries, key=lambda e: e.seq), problems


def _entry_problems(entries: Sequence[AuditEntry], key: Ed25519PublicKey) -> list[str]:
    problems: list[str] = []
    previous: AuditEntry | None = None
    for entry in entries:
        name = f"audit entry seq {entry.seq} ({entry.kind})"
        if entry.hash != entry_hash(entry):
            problems.append(f"{name}: its hash does not match its content: edited")
        else:
            try:
                key.verify(bytes.fromhex(entry.signature), SIGNING_CONTEXT + bytes.fromhex(
                    entry.hash))
            except (InvalidSignature, ValueError):
                problems.append(f"{name}: the signature does not verify with the pinned "
                                "coordinator key: forged or re-signed by another key")
        if previous is not None and entry.seq == previous.seq:
            problems.append(f"{name}: two entries carry seq {entry.seq}")
        if previous is not None and entry.seq == previous.seq + 1 and (
                entry.prev_hash != previous.hash):
            problems.append(f"{name}: prev_hash does not link to entry seq {previous.seq}")
        previous = entry
    return problems


def entry_problems(entries: Sequence[AuditEntry], key: Ed25519PublicKey) -> list[str]:
    """Each carried entry's hash, signature (pinned key) and chain link to its neighbour."""
    return _entry_problems(entries, key)


def _one(entries: Sequence[AuditEntry], kind: str, draw_id: str) -> AuditEntry | None:
    found = [e for e in entries if e.kind == kind and (
        e.detail.get("draw_id") == draw_id or (kind == "draw.seed_revealed"
                                               and e.subject == draw_id))]
    return found[-1] if found else None


def check_anchors(draws: Sequence[Mapping[str, Any]], entries: Sequence[AuditEntry],
                  key: Ed25519PublicKey, outcome_digests: Sequence[str | None]) -> list[str]:
    """What ties an archive's draws to the signed chain, and what is missing or contradicts it.

    ``outcome_digests[i]`` is the digest of draw i's archived result (None: a failed draw).
    """
    problems = _entry_problems(entries, key)
    for i, archive in enumerate(draws):
        where = f"draws[{i}]"
        commitment = archive.get("commitment")
        if not isinstance(commitment, Mapping):
            problems.append(f"{where}: no commitment")
            continue
        draw_id = str(commitment.get("draw_id"))
        committed = _one(entries, "draw.committed", draw_id)
        if committed is None:
            problems.append(f"{where}: commitment {draw_id} is absent from the signed audit "
                            "entries: the draw is not anchored in the chain")
            continue
        for name in COMMITMENT_FIELDS:
            if committed.detail.get(name) != commitment.get(name):
                problems.append(
                    f"{where}: commitment.{name} is {commitment.get(name)!r} but the audit "
                    f"entry seq {committed.seq} signed {committed.detail.get(name)!r}")
        if committed.detail.get("plan_id"):
            problems += _plan_problems(where, committed, archive.get("seed"), entries)
        seed_from = committed.detail.get("seed_from")
        if isinstance(seed_from, Mapping):
            problems += _day_seed_problems(where, committed, seed_from, archive.get("seed"),
                                           entries)
            problems += _round_day_problems(where, seed_from, archive)
        digest = outcome_digests[i] if i < len(outcome_digests) else None
        if digest is None:
            continue
        placed = _one(entries, "draw.placed", draw_id)
        if placed is None:
            problems.append(f"{where}: no signed draw.placed entry records its result")
            continue
        if placed.detail.get("outcome_digest") != digest:
            problems.append(
                f"{where}: the archived result digests to {digest[:16]}, the audit entry seq "
                f"{placed.seq} signed {str(placed.detail.get('outcome_digest'))[:16]}")
        if committed.seq >= placed.seq:
            problems.append(f"{where}: the commitment (seq {committed.seq}) does not precede "
                            f"the result (seq {placed.seq}) in the chain")
        seed = archive.get("seed")
        revealed = _one(entries, "draw.seed_revealed", draw_id)
        if seed is not None:
            if revealed is None:
                problems.append(f"{where}: the seed's reveal is not among the signed entries")
            elif revealed.detail.get("seed") != seed:
                problems.append(f"{where}: the archived seed is not the one revealed in audit "
                                f"entry seq {revealed.seq}")
            elif revealed.seq <= placed.seq:
                problems.append(f"{where}: the seed was revealed (seq {revealed.seq}) before "
                                f"the result was placed (seq {placed.seq})")
    problems += move_problems(draws, entries)
    return problems


def _plan_problems(where: str, committed: AuditEntry, seed: object,
                   entries: Sequence[AuditEntry]) -> list[str]:
    """A draw of a day plan: its seed must be HMAC-SHA256(plan seed, project id), the plan
    seed the one committed (by hash) before the draw and revealed after the awards."""
    plan_id = committed.detail.get("plan_id")
    plans = [e for e in entries if e.kind == "plan.committed" and e.detail.get("plan_id") ==
             plan_id]
    if not plans:
        return [f"{where}: drawn in plan {plan_id}, whose commitment is not among the signed "
                "entries"]
    plan = plans[-1]
    if plan.seq >= committed.seq:
        return [f"{where}: plan {plan_id} was committed (seq {plan.seq}) after its draw "
                f"(seq {committed.seq})"]
    reveals = [e for e in entries if e.kind == "plan.seed_revealed" and e.detail.get(
        "plan_id") == plan_id]
    if not reveals:
        return [f"{where}: the seed of plan {plan_id} is not revealed (`evalgrid plan reveal "
                f"{plan.subject}` after the awards): the draw's seed derivation is unchecked"]
    try:
        plan_seed = bytes.fromhex(str(reveals[-1].detail.get("seed")))
        derived = project_seed(plan_seed, committed.subject).hex()
    except ValueError as exc:
        return [f"{where}: the revealed seed of plan {plan_id} is unusable: {exc}"]
    if seed_hash(plan_seed) != plan.detail.get("seed_hash"):
        return [f"{where}: the revealed seed of plan {plan_id} does not hash to the one "
                f"committed in audit entry seq {plan.seq}"]
    if seed != derived:
        return [f"{where}: its seed is not HMAC-SHA256(seed of plan {plan_id}, "
                f"{committed.subject!r}): not derived from the committed plan seed"]
    if "seed_protocol" in plan.detail:
        return [f"{where}: {p}" for p in _share_problems(plan, reveals[-1], plan_seed, entries)]
    return []


def _day_seed_problems(where: str, committed: AuditEntry, seed_from: Mapping[str, Any],
                       seed: object, entries: Sequence[AuditEntry]) -> list[str]:
    """A draw seeded from its day's round (a single or a supplementary draw): its seed is
    HMAC-SHA256(day seed, label), the label naming this project and this draw (the id for a
    first draw, ``id/rK`` for a new committee after an incident, ``id/n`` for a redraw; no two
    alike), the day seed fixed in the chain
    (``seed.fixed``, or a plan of the day) before this draw, revealed after the awards, and
    the protocol's combination of the two shares."""
    day, label = str(seed_from.get("day")), str(seed_from.get("label"))
    project = committed.subject
    first = not committed.detail.get("parent")
    parts = label[len(project) + 1:].split("/") if label.startswith(project + "/") else []
    again = bool(parts) and parts[0][:1] == "r" and parts[0][1:].isdigit()  # id/rK: new committee
    if (label != project and not (again and len(parts) == 1)) if first else not (
            parts and parts[-1].isdigit() and len(parts) == 1 + again):
        return [f"{where}: its seed label {label!r} is not the one of this draw (expected "
                f"{project!r}{'' if first else ' + /n'}): a label the coordinator could pick"]
    if _label_reused(committed, (day, label), entries):
        return [f"{where}: two draws carry the seed label {label!r} of {day}"]
    reveals = ([e for e in entries if e.kind == "seed.revealed" and e.subject == day]
               or [e for e in entries if e.kind == "plan.seed_revealed" and e.subject == day])
    if not reveals:
        return [f"{where}: its seed derives from the seed of {day}, which is not revealed "
                f"(`evalgrid plan reveal {day}` after the awards): the derivation is unchecked"]
    try:
        day_seed = bytes.fromhex(str(reveals[-1].detail.get("seed")))
        derived = project_seed(day_seed, label).hex()
    except ValueError as exc:
        return [f"{where}: the revealed seed of {day} is unusable: {exc}"]
    fixes = [e for e in entries if e.kind in ("seed.fixed", "plan.committed")
             and e.subject == day and e.seq < committed.seq
             and e.detail.get("seed_hash") == seed_hash(day_seed)]
    if not fixes:
        return [f"{where}: the revealed seed of {day} was not fixed in the chain (seed.fixed "
                "or a plan) before this draw"]
    if seed != derived:
        return [f"{where}: its seed is not HMAC-SHA256(seed of {day}, {label!r})"]
    if "seed_protocol" in fixes[0].detail:
        return [f"{where}: {p}" for p in _share_problems(fixes[0], reveals[-1], day_seed,
                                                          entries)]
    return []


def _round_day_problems(where: str, seed_from: Mapping[str, Any],
                        archive: Mapping[str, Any]) -> list[str]:
    """The round is the one of the project's own day (the local day of its window start, within
    a day of the UTC date whatever the offset): not another day's, picked among those fixed."""
    try:
        day = date.fromisoformat(str(seed_from.get("day")))
        start = datetime.fromisoformat(str(archive["inputs"]["project"]["window"]["start"]))
    except (KeyError, TypeError, ValueError):
        return [f"{where}: the seed's day or the project's window cannot be read"]
    if abs((day - start.astimezone(UTC).date()).days) > 1:
        return [f"{where}: its seed is from the round of {day}, not of the project's day "
                f"(window start {start.isoformat()})"]
    return []


UNPLACED_KINDS = frozenset({"draw.rolled_back", "draw.booking_conflict", "draw.abandoned"})


def _label_reused(committed: AuditEntry, day_label: tuple[str, str],
                  entries: Sequence[AuditEntry]) -> bool:
    """Another draw took this label, unless it was an earlier one that never got its seats
    (rolled back, refused by the bookings or abandoned, in the chain before this one): a
    label is spent once per placement, so a crash or outage is never a way to draw again."""
    for other in entries:
        if other.kind != "draw.committed" or other.seq == committed.seq or \
                _seed_label(other.detail.get("seed_from")) != day_label:
            continue
        earlier, later = sorted((other, committed), key=lambda e: e.seq)
        if not any(e.kind in UNPLACED_KINDS and e.subject == earlier.subject
                   and e.detail.get("draw_id") == earlier.detail.get("draw_id")
                   and earlier.seq < e.seq < later.seq for e in entries):
            return True
    return False


def _seed_label(seed_from: object) -> tuple[str, str] | None:
    if not isinstance(seed_from, Mapping):
        return None
    return str(seed_from.get("day")), str(seed_from.get("label"))


def _share_problems(plan: AuditEntry, reveal: AuditEntry, plan_seed: bytes,
                    entries: Sequence[AuditEntry]) -> list[str]:
    """The seed a plan or a ``seed.fixed`` entry (`plan`) fixed is the protocol's combination
    of both shares (seed_protocol.py), each committed in the chain before the other was
    revealed."""
    d, day = plan.detail, plan.subject
    name = f"plan {d['plan_id']}" if d.get("plan_id") else f"the seed round of {day}"
    try:
        coordinator = bytes.fromhex(str(reveal.detail.get("coordinator_secret", "")))
        check_reveal("coordinator", coordinator, str(d.get("coordinator_commitment")))
    except (ValueError, SeedRefused) as exc:
        return [f"{name}: the coordinator's share: {exc}"]
    cc = [e for e in entries if e.kind == "seed.coordinator_committed" and e.subject == day
          and e.detail.get("commitment") == d.get("coordinator_commitment")]
    if not cc or cc[0].seq >= plan.seq:
        return [f"{name}: the coordinator's commitment to its share is not "
                "signed into the chain before the seed was fixed"]
    supervisor: bytes | None = None
    if "supervisor_secret" in d:
        try:
            supervisor = bytes.fromhex(str(d["supervisor_secret"]))
            check_reveal("supervisor", supervisor, str(d.get("supervisor_commitment")))
        except (ValueError, SeedRefused) as exc:
            return [f"{name}: the supervisor's share: {exc}"]
        sr = [e for e in entries if e.kind == "seed.supervisor_revealed" and e.subject == day
              and e.detail.get("secret") == d["supervisor_secret"]]
        if not sr or not cc[0].seq < sr[0].seq < plan.seq:
            return [f"{name}: the supervisor's share was not revealed after "
                    "the coordinator committed to its own (or the reveal is not in the chain)"]
    elif not any(e.kind == "seed.fallback" and e.subject == day for e in entries):
        return [f"{name}: no supervisor's share and no audited fallback"]
    expected = final_seed(coordinator, supervisor, str(d.get("public_value", "")))
    if expected != plan_seed:
        return [f"{name}: the seed is not the combination of the two "
                "committed shares"]
    return []


def move_problems(draws: Sequence[Mapping[str, Any]], entries: Sequence[AuditEntry]
                   ) -> list[str]:
    """Every move to a spare workstation the chain records, replayed from the revealed seed
    of the member's draw (a move the coordinator aimed shows here)."""
    seeds = {str(d["commitment"].get("draw_id")): d.get("seed") for d in draws
             if isinstance(d, Mapping) and isinstance(d.get("commitment"), Mapping)}
    problems: list[str] = []
    for entry in entries:
        if entry.kind != "seat.moved" or "spares" not in entry.detail:
            continue  # moves before this version were not replayable: they name no spares
        name = f"audit entry seq {entry.seq} (seat.moved)"
        draw_id, spares = entry.detail.get("draw_id"), entry.detail.get("spares")
        seed = seeds.get(str(draw_id))
        if not isinstance(spares, list) or not spares or not all(
                isinstance(s, str) for s in spares):
            problems.append(f"{name}: its spares are not a list of workstation ids")
            continue
        if not isinstance(seed, str):
            problems.append(f"{name}: the seed of draw {draw_id} is not revealed in this "
                            "archive: the move cannot be replayed")
            continue
        try:
            pick = spares[spare_workstation(bytes.fromhex(seed), str(entry.detail.get(
                "session")), str(entry.detail.get("from")), spares)]
        except ValueError as exc:
            problems.append(f"{name}: cannot be replayed: {exc}")
            continue
        if pick != entry.detail.get("to"):
            problems.append(f"{name}: moved to {entry.detail.get('to')!r}, but the committed "
                            f"seed of draw {draw_id} picks {pick!r}")
    return problems
