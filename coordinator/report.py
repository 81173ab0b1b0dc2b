"""The committee report: JSON signed by the coordinator, and a readable HTML page beside it.

The signature covers the canonical JSON of the report body. The file names its signer (the raw
public key and, where the data dir has a CA, the CA's `signer` certificate for it), but
`evalgrid report verify` believes that only as far as it agrees with a pinned key
(evalgrid/trust.py): the data dir's, `--key`, `--fingerprint`, or `--ca ca.pem`.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from coordinator.allocation import Allocation
from coordinator.domain.model import Project
from coordinator.domain.scoring import Evaluation, ExpertSheet, evaluation_to_dict
from evalgrid.trust import PinnedTrust


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_report(*, project: Project, evaluation: Evaluation, alloc: Allocation,
                 sheets: list[ExpertSheet], bid_codes: dict[str, str],
                 draws: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "project": {"id": project.id, "name": project.name, "category": project.category,
                    "host_site": project.host_site_id, "method": project.scoring.method,
                    "window": [project.window.start.isoformat(), project.window.end.isoformat()],
                    "committee_size": project.committee_size, "double_blind": project.double_blind},
        "evaluation": evaluation_to_dict(evaluation),
        "bid_codes": bid_codes,
        "committee": [
            {"expert_ref": s.expert_ref, "quota_index": s.quota_index, "status": s.status,
             "signed_in_at": s.signed_in_at, "draw_id": s.draw_id}
            for s in alloc.seats
        ],
        "leader": alloc.leader_ref,
        "sheets": [
            {"expert_ref": sheet.expert_ref,
             "scores": [{"bidder_id": b, "bid_code": bid_codes.get(b, ""), "criterion_id": c,
                         "score": str(v)} for (b, c), v in sorted(sheet.scores.items())]}
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
                 now: datetime, signer_certificate: str = "") -> Path:
    """Write `PROJECT.json` (signed) and `PROJECT.html`; return the JSON path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    body = build_report(project=project, evaluation=evaluation, alloc=alloc, sheets=sheets,
                        bid_codes=bid_codes, draws=draws, now=now)
    public = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signed = {"report": body, "signature": signing_key.sign(canonical(body)).hex(),
              "public_key": public.hex(), "algorithm": "ed25519"}
    if signer_certificate:
        signed["signer_certificate"] = signer_certificate
    path = reports_dir / f"{project.id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(signed, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    (reports_dir / f"{project.id}.html").write_text(render_html(body), encoding="utf-8")
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


def render_html(body: dict[str, Any]) -> str:
    """A readable page: ranking table, a bar chart of totals, warnings, the committee."""
    esc = html.escape
    project, evaluation = body["project"], body["evaluation"]
    bids = evaluation.get("bids", [])
    totals = [(b.get("code") or b["bidder_id"], b.get("total") or b.get("price") or "0")
              for b in bids if b.get("rank")]
    peak = max((float(t) for _, t in totals), default=1.0) or 1.0
    bars = []
    for i, (label, total) in enumerate(totals):
        width = 360 * float(total) / peak
        y = 10 + i * 26
        bars.append(
            f'<text x="0" y="{y + 14}" font-size="12">{esc(str(label))}</text>'
            f'<rect x="90" y="{y}" width="{width:.1f}" height="18" fill="#3b6ea8"/>'
            f'<text x="{95 + width:.1f}" y="{y + 14}" font-size="12">{esc(str(total))}</text>'
        )
    chart = (f'<svg width="520" height="{20 + 26 * len(totals)}" role="img" '
             f'aria-label="totals by bid">{"".join(bars)}</svg>')
    rows = "".join(
        f"<tr><td>{esc(str(b.get('rank') or '-'))}</td><td>{esc(str(b.get('code') or ''))}</td>"
        f"<td>{esc(str(b['bidder_id']))}</td><td>{esc(str(b['price']))}</td>"
        f"<td>{esc(str(b.get('price_score') or ''))}</td>"
        f"<td>{esc(str(b.get('technical') or ''))}</td>"
        f"<td>{esc(str(b.get('total') or ''))}</td></tr>"
        for b in bids
    )
    def spread(w: dict[str, Any]) -> str:
        return ", ".join(f"{x['expert_ref']}: {x['score']}" for x in w.get("scores", []))

    warning_rows = "".join(
        f"<tr><td>{esc(w['kind'].replace('_', ' '))}</td>"
        f"<td>{esc(w.get('expert_ref') or 'all members')}</td>"
        f"<td>{esc(body['bid_codes'].get(w['bidder_id'], w['bidder_id']))}</td>"
        f"<td>{esc(w['criterion_id'])}</td><td>{esc(str(w.get('score') or spread(w)))}</td>"
        f"<td>{esc(str(w['mean']))}</td></tr>"
        for w in evaluation.get("warnings", []))
    warnings = (f"<table><tr><th>Warning</th><th>Member</th><th>Bid</th><th>Criterion</th>"
                f"<th>Score(s)</th><th>Committee mean</th></tr>{warning_rows}</table>"
                if warning_rows else "<p>none</p>")
    returns = "".join(f"<li>{esc(r['expert_ref'])}: {esc(r['reason'])} ({esc(r['at'])})</li>"
                      for r in body["returned_sheets"]) or "<li>none</li>"
    committee = "".join(
        f"<tr><td>{esc(m['expert_ref'])}</td><td>{esc(m['status'])}</td>"
        f"<td>{esc(m['signed_in_at'])}</td></tr>" for m in body["committee"])
    verdict = ("Tender failed: " + esc(str(evaluation.get("reason")))
               if evaluation.get("failed") else "Recommended: " + esc(str(
                   evaluation.get("ranking", ["-"])[0] if evaluation.get("ranking") else "-")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Committee report {esc(project['id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px}}</style></head><body>
<h1>Committee report: {esc(project['name'])}</h1>
<p>Project {esc(project['id'])} &middot; {esc(project['category'])} &middot; method
{esc(project['method'])} &middot; window {esc(project['window'][0])} to
{esc(project['window'][1])}</p>
<h2>{verdict}</h2>
<table><tr><th>Rank</th><th>Code</th><th>Bidder</th><th>Price</th><th>Price score</th>
<th>Technical</th><th>Total</th></tr>{rows}</table>
<h2>Totals</h2>{chart}
<h2>Warnings</h2>{warnings}
<h2>Sheets returned by the leader</h2><ul>{returns}</ul>
<h2>Committee</h2><table><tr><th>Member</th><th>Status</th><th>Signed in</th></tr>
{committee}</table>
<p>Supplementary draws: {body['supplementary_draws']}. Closed {esc(body['closed_at'])}.
The JSON beside this page is signed by the coordinator (Ed25519).</p>
</body></html>
"""
