"""What a draw gives: the seats and venues drawn, or the quota it could not fill."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from coordinator.domain.draw.canonical import canonical_json
from coordinator.domain.model import ExpertKind, Quota


@dataclass(frozen=True, slots=True)
class Seat:
    """One drawn member: who, for which quota, where."""

    expert_id: str
    quota_index: int
    venue_id: str
    site_id: str
    workstation_id: str
    room_id: str


SEAT_FIELDS: tuple[str, ...] = (
    "expert_id",
    "quota_index",
    "venue_id",
    "site_id",
    "workstation_id",
    "room_id",
)


@dataclass(frozen=True, slots=True)
class DrawOutcome:
    """A successful draw: venues in drawn order, seats in seat order, the cap that applied."""

    venues: tuple[str, ...]
    seats: tuple[Seat, ...]
    cap: int

    def outcome_digest(self) -> str:
        return hashlib.sha256(canonical_json(outcome_to_json(self)).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class DrawFailure:
    """The draw could not fill a seat of `quota`: nothing is booked.

    `needed`: seats of that quota still unfilled; `available`: candidates matching it not yet
    drawn (whatever their venues). `reasons` counts what starved it: candidates matching the quota
    (`matching`), of them excluded as already drawn before (`excluded`) or drawn for another seat
    now (`drawn_now`), those whose catchment holds no eligible venue (`no_venue_in_catchment`) or
    only full ones (`catchment_venues_full`), and the venue counts (`venues_offered`,
    `venues_eligible`, `venues_drawn`) and `cap`.
    """

    quota_index: int
    quota: Quota
    needed: int
    available: int
    reasons: dict[str, int]

    def message(self) -> str:
        q = self.quota
        kind = f" {q.kind}" if q.kind else ""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        return (
            f"quota {self.quota_index} ({q.specialty}{kind} x{q.count}) cannot be met: "
            f"{self.needed} needed, {self.available} candidate(s) left; {counts}"
        )


DrawResult = DrawOutcome | DrawFailure


def outcome_to_json(result: DrawResult) -> dict[str, Any]:
    if isinstance(result, DrawFailure):
        q = result.quota
        return {
            "type": "failure",
            "quota_index": result.quota_index,
            "quota": {"specialty": q.specialty, "count": q.count, "kind": q.kind},
            "needed": result.needed,
            "available": result.available,
            "reasons": dict(result.reasons),
        }
    return {
        "type": "outcome",
        "venues": list(result.venues),
        "cap": result.cap,
        "seats": [{f: getattr(s, f) for f in SEAT_FIELDS} for s in result.seats],
    }


def outcome_from_json(d: dict[str, Any]) -> DrawResult:
    if d.get("type") == "failure":
        q = d["quota"]
        return DrawFailure(
            quota_index=int(d["quota_index"]),
            quota=Quota(q["specialty"], int(q["count"]), cast(ExpertKind | None, q["kind"])),
            needed=int(d["needed"]),
            available=int(d["available"]),
            reasons={str(k): int(v) for k, v in d["reasons"].items()},
        )
    if d.get("type") != "outcome":
        raise ValueError(f"result: unknown type {d.get('type')!r}")
    return DrawOutcome(
        venues=tuple(d["venues"]),
        seats=tuple(
            Seat(
                s["expert_id"],
                int(s["quota_index"]),
                s["venue_id"],
                s["site_id"],
                s["workstation_id"],
                s["room_id"],
            )
            for s in d["seats"]
        ),
        cap=int(d["cap"]),
    )
