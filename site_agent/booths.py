"""The site's booths as a pure state machine: what the agent knows, and nothing more.

A guest site learns only an opaque session and a time window for each reserved workstation:
no project, no expert until one signs in. Commands carry a fencing token that only grows; one
older than a token already applied is refused, so a stale coordinator cannot act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class BoothState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"
    SIGNED_IN = "signed_in"
    EVALUATING = "evaluating"
    FAULT = "fault"
    OFFLINE = "offline"


class BoothError(Exception):
    """A request the site refuses; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class Reservation:
    session_id: str
    workstation_id: str
    start: datetime
    end: datetime
    fence: int


@dataclass(slots=True)
class Booth:
    workstation_id: str
    room_id: str
    venue_id: str
    enrolled: bool = False
    fault: bool = False
    online: bool = False
    signed_in_session: str | None = None
    expert_ref: str | None = None
    submitted: bool = False


@dataclass(frozen=True, slots=True)
class BoardEntry:
    workstation_id: str
    room_id: str
    state: BoothState
    session_id: str | None
    start: datetime | None
    end: datetime | None


@dataclass
class SiteBooths:
    site_id: str
    booths: dict[str, Booth]
    reservations: dict[str, Reservation] = field(default_factory=dict)  # by session id
    highest_fence: int = 0
    # Sessions whose evaluation has started (their seat pass arrived, see offline_mode).
    started: set[str] = field(default_factory=set)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    # --- commands from the coordinator ---------------------------------------------------

    def check_fence(self, fence: int) -> None:
        if fence < self.highest_fence:
            raise BoothError(
                f"fence: stale token {fence}, a command with token {self.highest_fence} "
                "was already applied"
            )
        self.highest_fence = fence

    def reserve(self, session_id: str, workstation_id: str, start: datetime, end: datetime,
                fence: int) -> Reservation:
        """Apply a reservation; re-applying the same one is a no-op (the command was resent)."""
        if workstation_id not in self.booths:
            raise BoothError(f"workstation_id: {workstation_id!r} is not at site {self.site_id}")
        if end <= start:
            raise BoothError("window: end must be after start")
        existing = self.reservations.get(session_id)
        if existing is not None:
            if (existing.workstation_id, existing.start, existing.end) != (
                workstation_id, start, end
            ):
                raise BoothError(f"session_id: {session_id!r} already reserves something else")
            return existing
        self.check_fence(fence)
        for other in self.reservations.values():
            if other.workstation_id == workstation_id and other.start < end and start < other.end:
                raise BoothError(
                    f"workstation_id: {workstation_id!r} is already reserved for an overlapping "
                    f"window (session {other.session_id})"
                )
        reservation = Reservation(session_id, workstation_id, start, end, fence)
        self.reservations[session_id] = reservation
        return reservation

    def release(self, session_id: str, fence: int) -> None:
        reservation = self.reservations.get(session_id)
        if reservation is None:
            return  # already released: a resent command
        self.check_fence(fence)
        del self.reservations[session_id]
        self.started.discard(session_id)
        booth = self.booths[reservation.workstation_id]
        if booth.signed_in_session == session_id:
            booth.signed_in_session = None
            booth.expert_ref = None
            booth.submitted = False

    # --- the booths ------------------------------------------------------------------------

    def booth(self, workstation_id: str) -> Booth:
        try:
            return self.booths[workstation_id]
        except KeyError:
            raise BoothError(
                f"workstation_id: {workstation_id!r} is not at site {self.site_id}"
            ) from None

    def current_reservation(self, workstation_id: str) -> Reservation | None:
        """The reservation to sign in to: the one whose window contains now; else (a clock
        out of step with the coordinator's, as in the demo's simulated day) the latest one
        whose evaluation has started; else the next one. A morning project still open does
        not keep the afternoon's member out of the same booth."""
        held = sorted((r for r in self.reservations.values()
                       if r.workstation_id == workstation_id), key=lambda r: r.start)
        if not held:
            return None
        now = self.now()
        for r in held:
            if r.start <= now < r.end:
                return r
        started = [r for r in held if r.session_id in self.started]
        if started:
            return started[-1]
        upcoming = [r for r in held if r.start > now]
        return upcoming[0] if upcoming else held[0]

    def sign_in(self, workstation_id: str, session_id: str, expert_ref: str) -> Booth:
        """Lock the workstation to the expert the coordinator confirmed."""
        booth = self.booth(workstation_id)
        if booth.fault:
            raise BoothError(f"workstation_id: {workstation_id!r} is marked faulty")
        if booth.signed_in_session is not None and booth.expert_ref != expert_ref:
            raise BoothError(f"workstation_id: {workstation_id!r} is locked to another expert")
        booth.signed_in_session = session_id
        booth.expert_ref = expert_ref
        return booth

    def require_signed_in(self, workstation_id: str) -> Booth:
        booth = self.booth(workstation_id)
        if booth.signed_in_session is None:
            raise BoothError(f"workstation_id: no expert is signed in at {workstation_id!r}")
        return booth

    def state_of(self, workstation_id: str) -> BoothState:
        booth = self.booth(workstation_id)
        if booth.fault:
            return BoothState.FAULT
        if booth.signed_in_session is not None:
            return BoothState.EVALUATING if booth.submitted else BoothState.SIGNED_IN
        if self.current_reservation(workstation_id) is not None:
            return BoothState.RESERVED
        if booth.enrolled and not booth.online:
            return BoothState.OFFLINE
        return BoothState.FREE

    def board(self) -> list[BoardEntry]:
        entries = []
        for ws_id in sorted(self.booths):
            booth = self.booths[ws_id]
            held = self.current_reservation(ws_id)
            entries.append(
                BoardEntry(
                    workstation_id=ws_id,
                    room_id=booth.room_id,
                    state=self.state_of(ws_id),
                    session_id=held.session_id if held else None,
                    start=held.start if held else None,
                    end=held.end if held else None,
                )
            )
        return entries
