"""The lifecycle of a project and of its seats as a pure state machine.

Modelled on Dask's worker state machine: every change is an event (a frozen dataclass carrying
the `stimulus_id` of what caused it: a request id, a schedule tick, a fault), `handle(state,
event)` looks the pair up in one explicit transition table and returns the new state and the
instructions the shell is to carry out (book, release, send a command, notify, audit, seal,
draw, supplementary draw, report). A pair not in the table is refused (`LifecycleRefused`,
naming both), so no code path can move a project from, say, `registered` to `reported`.

The enum values are the strings stored in Redis (``proj:state`` and the sealed allocations),
so data written before this module existed reads unchanged. No I/O, no clock: the shell
passes `at` for the story it keeps (``Registry.append_story``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

VALIDATE_ENV: Final = "EVALGRID_VALIDATE_LIFECYCLE"  # "1": validate_state after every event


class ProjectState(StrEnum):
    REGISTERED = "registered"
    DRAWN = "drawn"
    EVALUATING = "evaluating"
    REPORTED = "reported"


class SeatState(StrEnum):
    NOTIFIED = "notified"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    LEFT = "left"
    NO_SHOW = "no_show"
    RECUSED = "recused"
    DISPLACED = "displaced"
    SIGNED_IN = "signed_in"
    SIGNED = "signed"


# Project states that hold a committee (faults and replacements apply), and those in which a
# draw has placed seats that can be listed.
WITH_COMMITTEE: Final = frozenset({ProjectState.DRAWN, ProjectState.EVALUATING})
WITH_SEATS: Final = WITH_COMMITTEE | {ProjectState.REPORTED}
# Seat states of a member who has signed in (the evaluation has begun for that seat).
SAT: Final = frozenset({SeatState.SIGNED_IN, SeatState.SIGNED})
# Why a member leaves before scoring, and the seat state that records it.
DEPARTED: Final[Mapping[str, SeatState]] = {
    "declined": SeatState.DECLINED, "leave": SeatState.LEFT, "no_show": SeatState.NO_SHOW,
    "recusal": SeatState.RECUSED, "fault": SeatState.DISPLACED,
}
# Departures the member made themself and was answered then (a declined notice's reply, a
# recusal at the booth): no withdrawal notice. Every other departure (a no-show, a leave filed
# by an operator, a fault) is decided without the member, who is sent one.
SELF_DEPARTURES: Final = frozenset({"declined", "recusal"})


class Instruction(StrEnum):
    """What the shell carries out after a transition (the order of the table's lists)."""

    BOOK = "book"
    RELEASE = "release"
    SEND_COMMAND = "send command"
    NOTIFY = "notify"
    AUDIT = "audit"
    SEAL = "seal"
    DRAW = "draw"
    SUPPLEMENTARY_DRAW = "supplementary draw"
    REPORT = "report"


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened; `stimulus_id` ties it to the request or tick that caused it."""

    stimulus_id: str

    def __post_init__(self) -> None:
        if not self.stimulus_id.strip():
            raise ValueError(f"{type(self).__name__}.stimulus_id: required")

    @property
    def name(self) -> str:
        return _EVENT_NAMES[type(self)]


@dataclass(frozen=True, slots=True)
class DrawPlaced(Event):
    """A first draw's seats are booked and stored."""


@dataclass(frozen=True, slots=True)
class WindowOpened(Event):
    """The evaluation window opened (the schedule) or an operator started it."""


@dataclass(frozen=True, slots=True)
class ReportClosed(Event):
    """Every active seat signed: the report is written and the seats released."""


@dataclass(frozen=True, slots=True)
class MaterialsSealed(Event):
    """An incident ended the committee: materials sealed, the project awaits a new draw."""


@dataclass(frozen=True, slots=True)
class NoticeAccepted(Event):
    """The member accepted the notice."""


@dataclass(frozen=True, slots=True)
class Departed(Event):
    """The member leaves before scoring; `reason` is a key of DEPARTED."""

    reason: str = "declined"

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        if self.reason not in DEPARTED:
            raise ValueError(f"Departed.reason: {self.reason!r} is not one of "
                             f"{sorted(DEPARTED)}")


@dataclass(frozen=True, slots=True)
class SignedIn(Event):
    """The member signed in at the booth (online or forwarded from offline)."""


@dataclass(frozen=True, slots=True)
class SheetSigned(Event):
    """The member signed the score sheet: final unless the leader returns it."""


@dataclass(frozen=True, slots=True)
class SheetReturned(Event):
    """The committee leader returned the member's signed sheet."""


PROJECT_EVENTS: Final = (DrawPlaced, WindowOpened, ReportClosed, MaterialsSealed)
SEAT_EVENTS: Final = (NoticeAccepted, Departed, SignedIn, SheetSigned, SheetReturned)
_EVENT_NAMES: Final[dict[type[Event], str]] = {
    DrawPlaced: "draw placed", WindowOpened: "window opened", ReportClosed: "report closed",
    MaterialsSealed: "materials sealed", NoticeAccepted: "notice accepted",
    Departed: "departed", SignedIn: "signed in", SheetSigned: "sheet signed",
    SheetReturned: "sheet returned",
}


# --- the transition tables -----------------------------------------------------------------------

I = Instruction  # noqa: E741 (the tables read better short)
_DISSOLVE: Final = (I.SEAL, I.RELEASE, I.SEND_COMMAND, I.AUDIT, I.DRAW)

PROJECT_TABLE: Final[Mapping[tuple[ProjectState, type[Event]],
                             tuple[ProjectState, tuple[Instruction, ...]]]] = {
    (ProjectState.REGISTERED, DrawPlaced):
        (ProjectState.DRAWN, (I.BOOK, I.SEND_COMMAND, I.NOTIFY, I.AUDIT)),
    (ProjectState.DRAWN, WindowOpened): (ProjectState.EVALUATING, (I.AUDIT, I.SEND_COMMAND)),
    (ProjectState.EVALUATING, ReportClosed):
        (ProjectState.REPORTED, (I.REPORT, I.RELEASE, I.SEND_COMMAND, I.AUDIT)),
    (ProjectState.DRAWN, MaterialsSealed): (ProjectState.REGISTERED, _DISSOLVE),
    (ProjectState.EVALUATING, MaterialsSealed): (ProjectState.REGISTERED, _DISSOLVE),
}
# A repeat of what already happened (a resent request): no change and nothing to do.
PROJECT_REPEATS: Final = frozenset({
    (ProjectState.EVALUATING, WindowOpened), (ProjectState.REPORTED, ReportClosed)})

_LEAVE: Final = (I.RELEASE, I.SEND_COMMAND, I.AUDIT, I.SUPPLEMENTARY_DRAW)
# Seat departures: (reason, the states it may leave from).
_DEPARTS_FROM: Final[Mapping[str, frozenset[SeatState]]] = {
    "declined": frozenset({SeatState.NOTIFIED}),
    "leave": frozenset({SeatState.NOTIFIED, SeatState.ACCEPTED}),
    "no_show": frozenset({SeatState.NOTIFIED, SeatState.ACCEPTED}),
    "recusal": frozenset({SeatState.SIGNED_IN}),
    "fault": frozenset({SeatState.NOTIFIED, SeatState.ACCEPTED, SeatState.SIGNED_IN}),
}

SEAT_TABLE: Final[Mapping[tuple[SeatState, type[Event], str],
                          tuple[SeatState, tuple[Instruction, ...]]]] = {
    (SeatState.NOTIFIED, NoticeAccepted, ""): (SeatState.ACCEPTED, (I.AUDIT,)),
    (SeatState.NOTIFIED, SignedIn, ""): (SeatState.SIGNED_IN, (I.AUDIT,)),
    (SeatState.ACCEPTED, SignedIn, ""): (SeatState.SIGNED_IN, (I.AUDIT,)),
    (SeatState.SIGNED_IN, SheetSigned, ""): (SeatState.SIGNED, (I.SEAL, I.AUDIT)),
    (SeatState.SIGNED, SheetReturned, ""): (SeatState.SIGNED_IN, (I.AUDIT,)),
    **{(before, Departed, reason): (DEPARTED[reason], _LEAVE)
       for reason, sources in _DEPARTS_FROM.items() for before in sorted(sources)},
}
SEAT_REPEATS: Final = frozenset({
    (SeatState.SIGNED_IN, SignedIn), (SeatState.SIGNED, SignedIn),
    (SeatState.SIGNED, SheetSigned)})


class LifecycleRefused(Exception):
    """An event the state does not allow; names both (and the reason of a departure)."""

    def __init__(self, state: ProjectState | SeatState | str | None, event: Event) -> None:
        what = event.name + (f" ({event.reason})" if isinstance(event, Departed) else "")
        kind = "seat" if isinstance(state, SeatState) or isinstance(event, SEAT_EVENTS) \
            else "project"
        super().__init__(f"a {kind} that is {state} cannot take '{what}' "
                         f"(stimulus {event.stimulus_id})")
        self.state = state
        self.event = event


def _key(event: Event) -> str:
    return event.reason if isinstance(event, Departed) else ""


_S = TypeVar("_S", ProjectState, SeatState)


def _parse(kind: type[_S], state: str | None, event: Event) -> _S:
    """A state as stored (a plain string, or None where nothing is stored) or refused."""
    try:
        return kind(state or "")
    except ValueError:
        raise LifecycleRefused(None if state is None else str(state), event) from None


def handle_project(state: ProjectState | str | None, event: Event
                   ) -> tuple[ProjectState, list[Instruction]]:
    """The project's next state and what to do; a repeat yields (state, [])."""
    state = _parse(ProjectState, state, event)
    if (state, type(event)) in PROJECT_REPEATS:
        return state, []
    found = PROJECT_TABLE.get((state, type(event)))
    if found is None:
        raise LifecycleRefused(state, event)
    return found[0], list(found[1])


def handle_seat(state: SeatState | str, event: Event) -> tuple[SeatState, list[Instruction]]:
    """The seat's next state and what to do; a repeat yields (state, [])."""
    state = _parse(SeatState, state, event)
    if (state, type(event)) in SEAT_REPEATS:
        return state, []
    found = SEAT_TABLE.get((state, type(event), _key(event)))
    if found is None:
        raise LifecycleRefused(state, event)
    return found[0], list(found[1])


def handle(state: ProjectState | SeatState, event: Event
           ) -> tuple[ProjectState | SeatState, list[Instruction]]:
    """Dispatch on the kind of state (the shell mostly calls the typed variants)."""
    if isinstance(state, ProjectState):
        return handle_project(state, event)
    return handle_seat(state, event)


# --- invariants --------------------------------------------------------------------------------


class InvalidState(AssertionError):
    """validate_state found a project and its seats that no sequence of events can give."""


def validate_state(project: ProjectState, seats: Iterable[SeatState],
                   *, committee: int | None = None) -> None:
    """Invariants between a project's state and its seats' (run after every event when
    EVALGRID_VALIDATE_LIFECYCLE=1): no seats before a draw; nobody signs in before the
    window opens; at most `committee` seats active at once."""
    project = ProjectState(project)
    states = [SeatState(s) for s in seats]
    if project is ProjectState.REGISTERED and any(s in SAT for s in states):
        raise InvalidState("a registered project has a seat signed in: its committee was "
                           "sealed away, or it was never drawn")
    if project is ProjectState.DRAWN and any(s in SAT for s in states):
        raise InvalidState("a seat signed in before the evaluation started")
    active = [s for s in states if s not in DEPARTED.values()]
    if committee is not None and len(active) > committee:
        raise InvalidState(f"{len(active)} active seats for a committee of {committee}")


# --- the story ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One transition as the story keeps it (JSON in Redis, a line in the console)."""

    at: str  # ISO time, UTC
    stimulus_id: str
    event: str
    before: str
    after: str
    seat: str = ""  # the seat's opaque session id for a seat transition, else ""
    instructions: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "stimulus_id": self.stimulus_id, "event": self.event,
                "before": self.before, "after": self.after, "seat": self.seat,
                "instructions": list(self.instructions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoryEntry:
        return cls(at=str(data["at"]), stimulus_id=str(data["stimulus_id"]),
                   event=str(data["event"]), before=str(data["before"]),
                   after=str(data["after"]), seat=str(data.get("seat", "")),
                   instructions=tuple(str(i) for i in data.get("instructions", ())))


def story_entry(at: str, before: ProjectState | SeatState, after: ProjectState | SeatState,
                event: Event, instructions: Iterable[Instruction], *, seat: str = ""
                ) -> StoryEntry:
    what = event.name + (f" ({event.reason})" if isinstance(event, Departed) else "")
    return StoryEntry(at=at, stimulus_id=event.stimulus_id, event=what, before=before.value,
                      after=after.value, seat=seat,
                      instructions=tuple(i.value for i in instructions))


# --- the README table --------------------------------------------------------------------------


def markdown_table() -> str:
    """The transition tables as Markdown, for README "The lifecycle" (a test keeps it current)."""
    lines = ["| kind | from | event | to | instructions |", "|---|---|---|---|---|"]
    for (before, kind), (after, todo) in PROJECT_TABLE.items():
        lines.append(f"| project | {before.value} | {_EVENT_NAMES[kind]} | {after.value} | "
                     f"{', '.join(i.value for i in todo)} |")
    for (seat, kind, reason), (seat_after, todo) in SEAT_TABLE.items():
        name = _EVENT_NAMES[kind] + (f" ({reason})" if reason else "")
        lines.append(f"| seat | {seat.value} | {name} | {seat_after.value} | "
                     f"{', '.join(i.value for i in todo)} |")
    repeats = sorted(f"{s.value} + {_EVENT_NAMES[k]}" for s, k in [*PROJECT_REPEATS,
                                                                    *SEAT_REPEATS])
    lines.append("")
    lines.append("Repeats (no change, nothing to do): " + "; ".join(repeats) + ".")
    return "\n".join(lines) + "\n"


README_BEGIN: Final = "<!-- lifecycle table: python -m coordinator.lifecycle_table README.md -->"
README_END: Final = "<!-- end of lifecycle table -->"


def with_current_table(readme: str) -> str:
    """`readme` with the Markdown between its lifecycle markers replaced by the tables."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README: markers {README_BEGIN!r} ... {README_END!r} not found")
    return f"{head}{begin}\n{markdown_table()}{end}{tail}"
