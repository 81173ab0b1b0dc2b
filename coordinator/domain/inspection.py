"""Double-random inspections: random inspectors check a risk-weighted random sample of projects.

The same discipline as the expert draw: the inputs (each project's risk signals and weight,
the auditor roster, the sample sizes, the weights of the rules) are fixed and digested, a
fresh seed's SHA-256 is committed to the audit trail with that digest, and only then the pure
draw below runs on the `DrawRandom` keystream of the seed. Anyone holding the exported record
replays it (`verify_inspection`).

The law. Inspectors: a uniform `inspectors`-subset of the sorted roster, in draw order.
Projects: `sample` draws without replacement, each with probability proportional to its
integer weight among those left (`weight = base + Σ count x weight`, supplementary draws
counted beyond the free ones). The i-th drawn project goes to the (i mod k)-th inspector.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.domain.anchoring import entry_problems
from coordinator.domain.audit import AuditEntry
from coordinator.domain.randomness import DrawRandom
from coordinator.domain.rules import InspectionRules

FORMAT = "evalgrid-inspection/2"  # /2 carries the signed audit entries that anchor it
#: Formats this version reads; /1 carries no anchors (replayed only, like an archive/1).
FORMATS = ("evalgrid-inspection/1", FORMAT)
CONTEXT = b"evalgrid/inspection/v1"
SIGNALS: tuple[str, ...] = ("collusion_signal", "deviation_warning", "supplementary_draw",
                            "fault")


class InspectionError(ValueError):
    """Bad inspection input; the message names the field."""


@dataclass(frozen=True, slots=True)
class ProjectRisk:
    project_id: str
    signals: Mapping[str, int]  # signal -> count (every name of SIGNALS)

    def weight(self, rules: InspectionRules) -> int:
        supplementary = max(0, self.signals.get("supplementary_draw", 0)
                            - rules.supplementary_free)
        return (rules.base
                + self.signals.get("collusion_signal", 0) * rules.collusion_signal
                + self.signals.get("deviation_warning", 0) * rules.deviation_warning
                + supplementary * rules.supplementary_draw
                + self.signals.get("fault", 0) * rules.fault)


@dataclass(frozen=True, slots=True)
class InspectionInputs:
    period: str  # "FROM..TO", local dates
    projects: tuple[ProjectRisk, ...]  # sorted by id
    roster: tuple[str, ...]  # sorted auditor names
    sample: int
    inspectors: int
    rules: InspectionRules

    def __post_init__(self) -> None:
        ids = [p.project_id for p in self.projects]
        if ids != sorted(set(ids)):
            raise InspectionError("projects: must be sorted by id, without repeats")
        if list(self.roster) != sorted(set(self.roster)):
            raise InspectionError("roster: must be sorted, without repeats")
        if self.sample < 1:
            raise InspectionError("sample: must be at least 1")
        if self.sample > len(self.projects):
            raise InspectionError(f"sample: {self.sample} asked, but the period has "
                                  f"{len(self.projects)} evaluated project(s)")
        if not 1 <= self.inspectors <= len(self.roster):
            raise InspectionError(f"inspectors: between 1 and the roster's {len(self.roster)}"
                                  f", not {self.inspectors}")
        for p in self.projects:
            unknown = sorted(set(p.signals) - set(SIGNALS))
            if unknown:
                raise InspectionError(f"projects[{p.project_id}].signals: unknown {unknown}")
            if any(v < 0 for v in p.signals.values()):
                raise InspectionError(f"projects[{p.project_id}].signals: negative count")


@dataclass(frozen=True, slots=True)
class Assignment:
    project_id: str
    inspector: str
    weight: int


def inputs_to_json(inputs: InspectionInputs) -> dict[str, Any]:
    return {"period": inputs.period, "sample": inputs.sample, "inspectors": inputs.inspectors,
            "roster": list(inputs.roster), "weights": inputs.rules.canonical(),
            "projects": [{"project_id": p.project_id,
                          "signals": {k: int(p.signals.get(k, 0)) for k in SIGNALS},
                          "weight": p.weight(inputs.rules)} for p in inputs.projects]}


def inputs_from_json(data: Mapping[str, Any]) -> InspectionInputs:
    try:
        weights = dict(data["weights"])
        stated = set(InspectionRules.__dataclass_fields__)
        if set(weights) != stated:
            raise InspectionError(f"weights: expected exactly {sorted(stated)}")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in weights.values()):
            raise InspectionError("weights: integers only")
        rules = InspectionRules(**weights)
        projects = tuple(ProjectRisk(str(p["project_id"]),
                                     {k: int(v) for k, v in p["signals"].items()})
                         for p in data["projects"])
        return InspectionInputs(str(data["period"]), projects,
                                tuple(str(r) for r in data["roster"]), int(data["sample"]),
                                int(data["inspectors"]), rules)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InspectionError):
            raise
        raise InspectionError(f"inputs: unreadable ({exc})") from None


def input_digest(inputs: InspectionInputs) -> str:
    text = json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seed_hash(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def draw_inspection(inputs: InspectionInputs, seed: bytes) -> tuple[Assignment, ...]:
    """The pure draw: the same inputs and seed give the same assignments, anywhere."""
    if len(seed) != 32:
        raise InspectionError("seed: must be 32 bytes")
    rng = DrawRandom(seed, CONTEXT)
    inspectors = rng.sample(list(inputs.roster), inputs.inspectors)
    left = [(p.project_id, p.weight(inputs.rules)) for p in inputs.projects]
    out: list[Assignment] = []
    for i in range(inputs.sample):
        r = rng.randbelow(sum(w for _, w in left))
        for j, (project_id, w) in enumerate(left):
            if r < w:
                out.append(Assignment(project_id, inspectors[i % len(inspectors)], w))
                del left[j]
                break
            r -= w
    return tuple(out)


def result_to_json(assignments: Sequence[Assignment]) -> list[dict[str, Any]]:
    return [{"project_id": a.project_id, "inspector": a.inspector, "weight": a.weight}
            for a in assignments]


def make_record(inputs: InspectionInputs, seed: bytes, commitment_seq: int | None
                ) -> dict[str, Any]:
    """The self-contained record an auditor replays."""
    return {"format": FORMAT, "inputs": inputs_to_json(inputs),
            "commitment": {"seed_hash": seed_hash(seed), "input_digest": input_digest(inputs),
                           "audit_seq": commitment_seq},
            "seed": seed.hex(), "result": result_to_json(draw_inspection(inputs, seed))}


def verify_inspection(record: Mapping[str, Any]) -> list[str]:
    """What is wrong with a record (empty: the seed matches its hash, the inputs their digest,
    and the replay gives the same inspectors and projects)."""
    problems: list[str] = []
    try:
        if record.get("format") not in FORMATS:
            return [f"format: expected {FORMAT!r}, got {record.get('format')!r}"]
        inputs = inputs_from_json(record["inputs"])
        seed = bytes.fromhex(str(record["seed"]))
        commitment = record["commitment"]
        if seed_hash(seed) != commitment["seed_hash"]:
            problems.append("seed: does not match the committed seed hash")
        if input_digest(inputs) != commitment["input_digest"]:
            problems.append("inputs: do not match the committed digest (altered)")
        for p in record["inputs"]["projects"]:
            risk = ProjectRisk(str(p["project_id"]), p["signals"])
            if risk.weight(inputs.rules) != p["weight"]:
                problems.append(f"projects[{p['project_id']}].weight: {p['weight']} is not "
                                f"what the stated weights give ({risk.weight(inputs.rules)})")
        replay = result_to_json(draw_inspection(inputs, seed))
        if replay != record["result"]:
            problems.append("result: the replay gives other inspectors or projects")
    except InspectionError as exc:
        problems.append(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(f"record: unreadable ({exc!r})")
    return problems


def anchor_problems(record: Mapping[str, Any], entries: Sequence[AuditEntry],
                    key: Ed25519PublicKey) -> list[str]:
    """What ties the record to the signed trail, checked against the pinned key: the carried
    entries verify; an `inspection.committed` entry at the record's seq signs its seed hash,
    input digest and period; a later `inspection.drawn` entry names that commitment and signs
    the seed revealed and the projects and inspectors drawn. A record rewritten after the fact
    (other inputs, a fresh seed that replays to a chosen sample) agrees with itself, not with
    these."""
    problems = entry_problems(entries, key)
    try:
        commitment = record["commitment"]
        seq = commitment["audit_seq"]
        committed = [e for e in entries if e.kind == "inspection.committed" and e.seq == seq]
        if not committed:
            return [*problems, f"commitment: no signed inspection.committed entry at seq {seq}"]
        c = committed[0]
        for field in ("seed_hash", "input_digest"):
            if c.detail.get(field) != commitment[field]:
                problems.append(f"commitment.{field}: not the one signed at seq {seq}")
        if c.subject != record["inputs"]["period"]:
            problems.append(f"inputs.period: {record['inputs']['period']!r} is not the "
                            f"period committed at seq {seq} ({c.subject!r})")
        drawn = [e for e in entries if e.kind == "inspection.drawn"
                 and e.detail.get("commitment_seq") == seq]
        if not drawn:
            return [*problems, f"result: no signed inspection.drawn entry for seq {seq}"]
        d = drawn[0]
        if d.seq <= c.seq:
            problems.append(f"result: drawn at seq {d.seq}, not after its commitment")
        if d.detail.get("seed") != record["seed"]:
            problems.append(f"seed: not the seed revealed at seq {d.seq}")
        result = record["result"]
        if d.detail.get("projects") != [r["project_id"] for r in result]:
            problems.append(f"result: not the projects signed at seq {d.seq}")
        if d.detail.get("inspectors") != sorted({r["inspector"] for r in result}):
            problems.append(f"result: not the inspectors signed at seq {d.seq}")
    except (KeyError, TypeError, AttributeError) as exc:
        problems.append(f"record: unreadable ({exc!r})")
    return problems
