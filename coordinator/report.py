"""The committee report: JSON signed by the coordinator, and a readable HTML page beside it.

The signature covers the canonical JSON of the report body. The file names its signer (the raw
public key and, where the data dir has a CA, the CA's `signer` certificate for it), but
`evalgrid report verify` believes that only as far as it agrees with a pinned key
(evalgrid/trust.py): the data dir's, `--key`, `--fingerprint`, or `--ca ca.pem`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from coordinator.allocation import Allocation
from coordinator.domain.model import Project
from coordinator.domain.scoring import Evaluation, ExpertSheet, evaluation_to_dict
from coordinator.report_page import render_html
from evalgrid.trust import PinnedTrust

INVALID_BID_REASON = "did not pass the qualification review (recorded by the host site)"


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seat_codes(alloc: Allocation) -> dict[str, str]:
    """A short label per member (M01, M02, ... in seat order): what the report's score tables
    use, the opaque reference beside it in the committee table."""
    return {s.expert_ref: f"M{i:02d}" for i, s in enumerate(alloc.seats, start=1)}


def build_report(*, project: Project, evaluation: Evaluation, alloc: Allocation,
                 sheets: list[ExpertSheet], bid_codes: dict[str, str],
                 draws: list[dict[str, Any]], now: datetime,
                 bidder_names: Mapping[str, str] | None = None,
                 sheet_seals: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    names = bidder_names or {}
    return {
        "project": {"id": project.id, "name": project.name, "category": project.category,
                    "host_site": project.host_site_id, "method": project.scoring.method,
                    "window": [project.window.start.isoformat(), project.window.end.isoformat()],
                    "committee_size": project.committee_size,
                    "tenderer_reps": project.tenderer_reps,
                    "double_blind": project.double_blind,
                    "price_weight": str(project.scoring.price_weight),
                    "criteria": [{"id": c.id, "name": c.name, "max_score": str(c.max_score),
                                  "objective": c.objective} for c in project.scoring.criteria]},
        "evaluation": evaluation_to_dict(evaluation),
        "bid_codes": bid_codes,
        "bidders": {b.bidder_id: names.get(b.bidder_id, "") for b in project.bids},
        "invalid_bids": [{"bidder_id": b.bidder_id, "reason": INVALID_BID_REASON}
                         for b in project.bids if not b.valid],
        "seat_codes": seat_codes(alloc),
        "committee": [
            {"expert_ref": s.expert_ref, "quota_index": s.quota_index, "status": s.status,
             "signed_in_at": s.signed_in_at, "draw_id": s.draw_id}
            for s in alloc.seats
        ],
        "leader": alloc.leader_ref,
        "sheets": [
            {"expert_ref": sheet.expert_ref,
             "scores": [{"bidder_id": b, "bid_code": bid_codes.get(b, ""), "criterion_id": c,
                         "score": str(v)} for (b, c), v in sorted(sheet.scores.items())],
             **({k: str(v) for k, v in (sheet_seals or {}).get(sheet.expert_ref, {}).items()})}
            for sheet in sorted(sheets, key=lambda s: s.expert_ref)
        ],
        "returned_sheets": list(alloc.returns),
        "supplementary_draws": max(0, len(alloc.draw_ids) - 1),
        "draws": draws,
        "closed_at": now.isoformat(),
    }


def write_report(reports_dir: Path, *, project: Project, evaluation: Evaluation,
                 alloc: Allocation, sheets: list[ExpertSheet], bid_codes: dict[str, str],
                 draws: list[dict[str, Any]], signing_key: Ed25519PrivateKey,
                 now: datetime, bidder_names: Mapping[str, str] | None = None,
                 sheet_seals: Mapping[str, Mapping[str, str]] | None = None,
                 signer_certificate: str = "") -> Path:
    """Write `PROJECT.json` (signed) and `PROJECT.html`; return the JSON path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    body = build_report(project=project, evaluation=evaluation, alloc=alloc, sheets=sheets,
                        bid_codes=bid_codes, draws=draws, now=now, bidder_names=bidder_names,
                        sheet_seals=sheet_seals)
    public = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = signing_key.sign(canonical(body)).hex()
    signed = {"report": body, "signature": signature,
              "public_key": public.hex(), "algorithm": "ed25519"}
    if signer_certificate:
        signed["signer_certificate"] = signer_certificate
    path = reports_dir / f"{project.id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(signed, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    (reports_dir / f"{project.id}.html").write_text(
        render_html(body, signature=signature, public_key=public.hex()),
        encoding="utf-8")
    return path


def verify_report(path: Path, trust: PinnedTrust) -> list[str]:
    """Problems with a report file; empty when the pinned coordinator key signed this body."""
    try:
        signed = json.loads(path.read_text(encoding="utf-8"))
        body, signature = signed["report"], bytes.fromhex(signed["signature"])
        carried_key, carried_cert = str(signed["public_key"]), signed.get("signer_certificate")
        if not isinstance(body, dict) or not (carried_cert is None or isinstance(carried_cert,
                                                                                 str)):
            raise TypeError("report must be an object, signer_certificate a PEM string")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: not a signed report ({exc})"]
    key, problem = trust.signer(carried_key=carried_key, carried_cert=carried_cert)
    if key is None:
        return [problem]
    try:
        key.verify(signature, canonical(body))
    except (InvalidSignature, ValueError):
        return ["signature: does not verify with the pinned coordinator key over this body "
                "(altered or forged)"]
    return []


