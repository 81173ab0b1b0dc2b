"""The canonical form of the inputs: plain JSON, its canonical text and its digest.

The input digest, which the coordinator commits to before the seed is used, is the SHA-256
hex of `canonical_inputs(inputs)`: the JSON of `inputs_to_json(inputs)` with sorted keys, no
whitespace and ASCII escapes. A snapshot has its own JSON (`snapshot_to_json`) and digest
(`DrawSnapshot.digest`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, cast

from coordinator.domain.draw.inputs import (
    SNAPSHOT_FORMAT,
    Candidate,
    DrawInputs,
    DrawSnapshot,
    VenueOffer,
)
from coordinator.domain.model import (
    Bid,
    Category,
    Criterion,
    ExpertKind,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Window,
)

INPUTS_FORMAT = "evalgrid-draw-inputs-v2"

_CANONICAL_ROW = attrgetter("canonical")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII escapes: the text every digest of the draw is over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("window times must be timezone-aware")
    return moment.astimezone(UTC).isoformat()


def project_to_json(p: Project) -> dict[str, Any]:
    """The whole project as plain JSON (Decimals as strings, times as UTC ISO 8601)."""
    s = p.scoring
    return {
        "id": p.id,
        "name": p.name,
        "host_site_id": p.host_site_id,
        "city": p.city,
        "tenderer_id": p.tenderer_id,
        "category": p.category,
        "committee_size": p.committee_size,
        "quotas": [{"specialty": q.specialty, "count": q.count, "kind": q.kind} for q in p.quotas],
        "window": {"start": _iso(p.window.start), "end": _iso(p.window.end)},
        "scoring": {
            "method": s.method,
            "price_weight": str(s.price_weight),
            "criteria": [
                {
                    "id": c.id,
                    "name": c.name,
                    "max_score": str(c.max_score),
                    "objective": c.objective,
                }
                for c in s.criteria
            ],
            "deduction_per_point": str(s.deduction_per_point),
            "deviation_threshold": str(s.deviation_threshold),
        },
        "bids": [
            {"bidder_id": b.bidder_id, "price": str(b.price), "valid": b.valid} for b in p.bids
        ],
        "competent_department": p.competent_department,
        "tenderer_reps": p.tenderer_reps,
        "double_blind": p.double_blind,
        "large": p.large,
    }


def project_from_json(d: dict[str, Any]) -> Project:
    s = d["scoring"]
    return Project(
        id=d["id"],
        name=d["name"],
        host_site_id=d["host_site_id"],
        city=d["city"],
        tenderer_id=d["tenderer_id"],
        category=cast(Category, d["category"]),
        committee_size=int(d["committee_size"]),
        quotas=tuple(
            Quota(q["specialty"], int(q["count"]), cast(ExpertKind | None, q["kind"]))
            for q in d["quotas"]
        ),
        window=Window(
            datetime.fromisoformat(d["window"]["start"]),
            datetime.fromisoformat(d["window"]["end"]),
        ),
        scoring=ScoringMethod(
            method=cast(ScoringMethodName, s["method"]),
            price_weight=Decimal(s["price_weight"]),
            criteria=tuple(
                Criterion(c["id"], c["name"], Decimal(c["max_score"]), bool(c["objective"]))
                for c in s["criteria"]
            ),
            deduction_per_point=Decimal(s["deduction_per_point"]),
            deviation_threshold=Decimal(s["deviation_threshold"]),
        ),
        bids=tuple(Bid(b["bidder_id"], Decimal(b["price"]), bool(b["valid"])) for b in d["bids"]),
        competent_department=d["competent_department"],
        tenderer_reps=int(d["tenderer_reps"]),
        double_blind=bool(d["double_blind"]),
        large=bool(d["large"]),
    )


def _inputs_head(inputs: DrawInputs, references: bool = True) -> dict[str, Any]:
    """`inputs_to_json` without the explicit venues and candidates (small: encoded generically)."""
    head: dict[str, Any] = {
        "format": INPUTS_FORMAT,
        "project": project_to_json(inputs.project),
        "rules_version": inputs.rules_version,
        "per_venue_cap": inputs.per_venue_cap,
        "exclude": sorted(inputs.exclude),
        "parent": inputs.parent,
        "seats": None if inputs.seats is None else list(inputs.seats),
        "occupied": [list(o) for o in inputs.occupied],
    }
    if inputs.snapshot is not None and references:
        head["snapshot"] = inputs.snapshot.digest()
        head["barred"] = inputs.barred
        head["unavailable"] = inputs.unavailable
    return head


def inputs_to_json(inputs: DrawInputs) -> dict[str, Any]:
    """The inputs as plain JSON; a candidate is a row [id, kind, [specialties], [catchment]]."""
    out = _inputs_head(inputs)
    if inputs.snapshot is None:
        out["candidates"] = [
            [c.expert_id, c.kind, list(c.specialties), list(c.catchment_cities)]
            for c in inputs.candidates
        ]
        out["venues"] = [
            [v.venue_id, v.site_id, v.city, [list(f) for f in v.free]] for v in inputs.venues
        ]
    return out


def inputs_from_json(
    d: dict[str, Any], snapshots: Mapping[str, DrawSnapshot] | None = None
) -> DrawInputs:
    """Rebuild inputs from `inputs_to_json`; raises KeyError/ValueError on a malformed archive.

    Referenced inputs need their snapshot in `snapshots` (by digest); it is checked against the
    digest it is filed under.
    """
    if d.get("format") != INPUTS_FORMAT:
        raise ValueError(f"inputs: unknown format {d.get('format')!r}")
    snapshot: DrawSnapshot | None = None
    venues: tuple[VenueOffer, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    if "snapshot" in d:
        digest = d["snapshot"]
        snapshot = (snapshots or {}).get(digest)
        if snapshot is None:
            raise ValueError(f"inputs: snapshot {digest} is not provided")
        if snapshot.digest() != digest:
            raise ValueError(
                f"inputs: the snapshot filed under {digest} digests to {snapshot.digest()}"
            )
    else:
        venues, candidates = _venues_from_json(d["venues"]), _candidates_from_json(d["candidates"])
    return DrawInputs(
        project=project_from_json(d["project"]),
        rules_version=d["rules_version"],
        venues=venues,
        candidates=candidates,
        per_venue_cap=int(d["per_venue_cap"]),
        exclude=frozenset(d["exclude"]),
        parent=d["parent"],
        seats=None if d["seats"] is None else tuple(int(x) for x in d["seats"]),
        occupied=tuple((o[0], o[1]) for o in d["occupied"]),
        snapshot=snapshot,
        barred=d.get("barred", ""),
        unavailable=d.get("unavailable", ""),
    )


def canonical_inputs(inputs: DrawInputs) -> bytes:
    """`_canonical_inputs`, kept on referenced inputs (a draw's digest and its archive both
    need it; explicit inputs run to megabytes and are encoded again)."""
    if inputs.snapshot is None:
        return _canonical_inputs(inputs)
    return inputs.memo("canonical", lambda: _canonical_inputs(inputs))


def _canonical_inputs(inputs: DrawInputs) -> bytes:
    """Canonical JSON (sorted keys, no whitespace, ASCII) of `inputs_to_json(inputs)`.

    Equal to json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":")), but the
    explicit candidate and venue rows are precomputed (`canonical`), so 85,000 candidates and
    30,000 workstations cost two joins. Referenced inputs are small: a digest and two bitmaps.
    """
    head = canonical_json(_inputs_head(inputs, references=False))
    if inputs.snapshot is not None:
        # Base64 and hex need no escaping: spliced in, in key order ("barred" first,
        # "snapshot" after "seats", "unavailable" last), not scanned by the JSON encoder.
        return (
            f'{{"barred":"{inputs.barred}",{head[1:-1]},"snapshot":"{inputs.snapshot.digest()}",'
            f'"unavailable":"{inputs.unavailable}"}}'
        ).encode("ascii")
    rows = ",".join(map(_CANONICAL_ROW, inputs.candidates))
    venues = ",".join(map(_CANONICAL_ROW, inputs.venues))
    # "candidates" sorts first among the top-level keys and "venues" last.
    return ('{"candidates":[' + rows + "]," + head[1:-1] + ',"venues":[' + venues + "]}").encode(
        "ascii"
    )


def input_digest(inputs: DrawInputs) -> str:
    """SHA-256 hex of the canonical inputs (memoised on the frozen instance)."""
    return inputs.memo("digest", lambda: hashlib.sha256(canonical_inputs(inputs)).hexdigest())


def snapshot_to_json(snapshot: DrawSnapshot) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "candidates": [
            [c.expert_id, c.kind, list(c.specialties), list(c.catchment_cities)]
            for c in snapshot.candidates
        ],
        "venues": [
            [v.venue_id, v.site_id, v.city, [list(f) for f in v.free]] for v in snapshot.venues
        ],
    }


def snapshot_from_json(d: dict[str, Any]) -> DrawSnapshot:
    """Rebuild a snapshot; raises KeyError/ValueError/TypeError on a malformed one."""
    if d.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"snapshot: unknown format {d.get('format')!r}")
    return DrawSnapshot(
        candidates=_candidates_from_json(d["candidates"]), venues=_venues_from_json(d["venues"])
    )


def _candidates_from_json(rows: list[Any]) -> tuple[Candidate, ...]:
    return tuple(Candidate(i, cast(ExpertKind, k), tuple(s), tuple(ct)) for i, k, s, ct in rows)


def _venues_from_json(rows: list[Any]) -> tuple[VenueOffer, ...]:
    return tuple(VenueOffer(v[0], v[1], v[2], tuple((f[0], f[1]) for f in v[3])) for v in rows)
