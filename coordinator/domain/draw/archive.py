"""Commit, archive and replay: what makes a draw verifiable after the award.

The seed's hash and the inputs' digest are published before the draw (`commit`), the seed
after the award; anyone can replay the archived record (`make_archive`, `verify_replay`) and get
the identical committee, venues and seats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.canonical import (
    canonical_json,
    input_digest,
    inputs_from_json,
    inputs_to_json,
    snapshot_from_json,
    snapshot_to_json,
)
from coordinator.domain.draw.inputs import DrawInputs, DrawSnapshot
from coordinator.domain.draw.outcome import (
    SEAT_FIELDS,
    DrawFailure,
    DrawResult,
    outcome_from_json,
    outcome_to_json,
)

ARCHIVE_FORMAT = "evalgrid-draw-archive-v2"


@dataclass(frozen=True, slots=True)
class Commitment:
    """What is published before the draw: the seed's hash and the inputs' digest."""

    draw_id: str
    seed_hash: str
    input_digest: str
    rules_version: str
    parent: str | None


def _draw_id(seed_hash: str, digest: str) -> str:
    return hashlib.sha256(f"evalgrid-draw-id-v1:{seed_hash}:{digest}".encode()).hexdigest()[:32]


def commit(seed: bytes, inputs: DrawInputs) -> Commitment:
    """Commit to a seed and the inputs; publish this before calling `draw`."""
    seed_hash = hashlib.sha256(seed).hexdigest()
    digest = input_digest(inputs)
    return Commitment(
        _draw_id(seed_hash, digest), seed_hash, digest, inputs.rules_version, inputs.parent
    )


def commitment_to_json(c: Commitment) -> dict[str, Any]:
    return {
        "draw_id": c.draw_id,
        "seed_hash": c.seed_hash,
        "input_digest": c.input_digest,
        "rules_version": c.rules_version,
        "parent": c.parent,
    }


def commitment_from_json(d: dict[str, Any]) -> Commitment:
    return Commitment(
        d["draw_id"], d["seed_hash"], d["input_digest"], d["rules_version"], d["parent"]
    )


def record_digest(commitment: Commitment, result: DrawResult) -> str:
    """Digest of a draw's commitment and result: the `parent` a supplementary draw chains to.

    It leaves out the seed, which is revealed only after the award, so it is fixed at draw time.
    """
    text = canonical_json(
        {"commitment": commitment_to_json(commitment), "result": outcome_to_json(result)}
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def make_archive(
    commitment: Commitment,
    inputs: DrawInputs,
    result: DrawResult,
    seed: bytes | None = None,
    *,
    embed_snapshot: bool = True,
) -> dict[str, Any]:
    """A plain-JSON record of a draw; the seed is added when it is revealed.

    Self-contained: referenced inputs get their snapshot under "snapshot", unless
    `embed_snapshot` is False (a store keeping each day's snapshot once, by digest, beside the
    archives; `verify_replay` then takes it as an argument).
    """
    archive: dict[str, Any] = {
        "format": ARCHIVE_FORMAT,
        "commitment": commitment_to_json(commitment),
        "inputs": inputs_to_json(inputs),
        "result": outcome_to_json(result),
        "seed": None if seed is None else seed.hex(),
    }
    if inputs.snapshot is not None and embed_snapshot:
        archive["snapshot"] = snapshot_to_json(inputs.snapshot)
    return archive


def _compare_results(archived: DrawResult, replayed: DrawResult) -> list[str]:
    if isinstance(archived, DrawFailure) or isinstance(replayed, DrawFailure):
        if archived != replayed:
            return [
                f"result: archived {outcome_to_json(archived)} but the replay gives "
                f"{outcome_to_json(replayed)}"
            ]
        return []
    problems: list[str] = []
    if archived.cap != replayed.cap:
        problems.append(f"result.cap: archived {archived.cap}, replay {replayed.cap}")
    if archived.venues != replayed.venues:
        problems.append(
            f"result.venues: archived {list(archived.venues)}, replay {list(replayed.venues)}"
        )
    if len(archived.seats) != len(replayed.seats):
        problems.append(
            f"result.seats: archived {len(archived.seats)} seats, replay {len(replayed.seats)}"
        )
    for n, (a, b) in enumerate(zip(archived.seats, replayed.seats, strict=False)):
        for f in SEAT_FIELDS:
            if getattr(a, f) != getattr(b, f):
                problems.append(
                    f"result.seats[{n}].{f}: archived {getattr(a, f)!r}, replay {getattr(b, f)!r}"
                )
    return problems


def verify_replay(
    archive: dict[str, Any], snapshots: Mapping[str, DrawSnapshot] | None = None
) -> list[str]:
    """Check an archive end to end; returns the differences found (empty when it verifies).

    Checks: SHA-256(seed) equals the committed seed hash; the archived inputs digest to the
    committed input digest (for referenced inputs: the snapshot, embedded in the archive or
    given in `snapshots` by digest, digests to the digest the inputs name); the draw id, rules
    version and parent agree with the commitment; and replaying the draw from the archived
    inputs and seed gives the archived result field by field.
    """
    problems: list[str] = []
    if archive.get("format") != ARCHIVE_FORMAT:
        return [f"format: expected {ARCHIVE_FORMAT!r}, got {archive.get('format')!r}"]
    known = dict(snapshots or {})
    try:
        if archive.get("snapshot") is not None:
            embedded = snapshot_from_json(archive["snapshot"])
            named = archive["inputs"].get("snapshot")
            if named != embedded.digest():
                return [
                    f"snapshot: the embedded snapshot digests to {embedded.digest()}, "
                    f"the inputs name {named}"
                ]
            known[embedded.digest()] = embedded
        commitment = commitment_from_json(archive["commitment"])
        inputs = inputs_from_json(archive["inputs"], known)
        archived = outcome_from_json(archive["result"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return [f"archive: cannot be read: {type(exc).__name__}: {exc}"]
    seed_hex = archive.get("seed")
    if seed_hex is None:
        return ["seed: not revealed yet; the draw cannot be replayed"]
    try:
        seed = bytes.fromhex(seed_hex)
    except (TypeError, ValueError):
        return [f"seed: not hex: {seed_hex!r}"]
    seed_hash = hashlib.sha256(seed).hexdigest()
    if seed_hash != commitment.seed_hash:
        problems.append(
            f"seed: SHA-256 of the revealed seed is {seed_hash}, "
            f"the commitment says {commitment.seed_hash}"
        )
    digest = input_digest(inputs)
    if digest != commitment.input_digest:
        problems.append(
            f"inputs: the archived inputs digest to {digest}, "
            f"the commitment says {commitment.input_digest}"
        )
    if inputs.rules_version != commitment.rules_version:
        problems.append(
            f"rules_version: inputs say {inputs.rules_version!r}, "
            f"the commitment says {commitment.rules_version!r}"
        )
    if inputs.parent != commitment.parent:
        problems.append(
            f"parent: inputs say {inputs.parent!r}, the commitment says {commitment.parent!r}"
        )
    if _draw_id(commitment.seed_hash, commitment.input_digest) != commitment.draw_id:
        problems.append("draw_id: does not derive from the committed seed hash and input digest")
    try:
        replayed = draw(inputs, seed)
    except ValueError as exc:
        problems.append(f"replay: failed: {exc}")
        return problems
    problems.extend(_compare_results(archived, replayed))
    return problems
