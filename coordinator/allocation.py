"""A project's allocation: who sits where. It exists in clear only inside the coordinator.

At rest it is sealed (authenticated encryption under a per-project key wrapped by the
coordinator key), so a Redis dump reveals no expert-project-seat link.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from coordinator.domain.lifecycle import DEPARTED, SeatState

# A seat's status as stored: a SeatState value (coordinator/domain/lifecycle.py moves it).
SeatStatus = str
# Why a member leaves the committee before scoring, and the seat status that records it
# ("fault": the workstation failed and the venue has no spare).
DEPARTURES: dict[str, SeatStatus] = {reason: state.value for reason, state in DEPARTED.items()}


@dataclass
class SeatRecord:
    session_id: str  # opaque: what the guest site sees
    expert_hold: str  # opaque holder of the expert's booking
    expert_id: str
    expert_ref: str  # opaque reference shown on score sheets and the report
    site_id: str
    venue_id: str
    workstation_id: str
    room_id: str
    quota_index: int
    draw_id: str
    code: str  # one-time sign-in code sent with the notice
    notice_id: str
    status: SeatStatus = SeatState.NOTIFIED.value
    signed_in_at: str = ""
    returned_reason: str = ""  # set when the leader returns this member's signed sheet

    @property
    def active(self) -> bool:
        return self.status not in DEPARTURES.values()


@dataclass
class Allocation:
    project_id: str
    draw_ids: list[str] = field(default_factory=list)
    seats: list[SeatRecord] = field(default_factory=list)
    leader_ref: str = ""  # the committee leader: the first member to sign in
    returns: list[dict[str, str]] = field(default_factory=list)  # sheets the leader returned

    def active_seats(self) -> list[SeatRecord]:
        return [s for s in self.seats if s.active]

    def by_session(self, session_id: str) -> SeatRecord | None:
        return next((s for s in self.seats if s.session_id == session_id), None)

    def by_notice(self, notice_id: str) -> SeatRecord | None:
        return next((s for s in self.seats if s.notice_id == notice_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "draw_ids": list(self.draw_ids),
                # Seats are flat: a shallow copy is asdict's result without its deep copies.
                "seats": [{f.name: getattr(s, f.name) for f in fields(s)} for s in self.seats],
                "leader_ref": self.leader_ref,
                "returns": list(self.returns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allocation:
        return cls(
            project_id=data["project_id"],
            draw_ids=list(data["draw_ids"]),
            seats=[SeatRecord(**s) for s in data["seats"]],
            leader_ref=data.get("leader_ref", ""),
            returns=list(data.get("returns", [])),
        )
