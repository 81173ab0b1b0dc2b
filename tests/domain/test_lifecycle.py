"""The lifecycle state machine: every allowed and every refused transition, from the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.allocation import DEPARTURES
from coordinator.domain.lifecycle import (
    DEPARTED,
    PROJECT_EVENTS,
    PROJECT_REPEATS,
    PROJECT_TABLE,
    SEAT_EVENTS,
    SEAT_REPEATS,
    SEAT_TABLE,
    WITH_COMMITTEE,
    Departed,
    DrawPlaced,
    Event,
    Instruction,
    InvalidState,
    LifecycleRefused,
    MaterialsSealed,
    ProjectState,
    SeatState,
    SignedIn,
    StoryEntry,
    WindowOpened,
    handle,
    handle_project,
    handle_seat,
    markdown_table,
    story_entry,
    validate_state,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _event(kind: type[Event], reason: str = "") -> Event:
    return Departed("s-1", reason) if kind is Departed else kind("s-1")


def test_stored_strings_are_the_enum_values() -> None:
    # Data written before the enums existed must read back unchanged.
    assert [s.value for s in ProjectState] == ["registered", "drawn", "evaluating", "reported"]
    assert {s.value for s in SeatState} == set(DEPARTURES.values()) | {
        "notified", "accepted", "signed_in", "signed"}
    assert {k: v.value for k, v in DEPARTED.items()} == DEPARTURES


@pytest.mark.parametrize(("before", "kind"), list(PROJECT_TABLE))
def test_project_allowed(before: ProjectState, kind: type[Event]) -> None:
    after, todo = handle_project(before, _event(kind))
    assert (after, tuple(todo)) == PROJECT_TABLE[(before, kind)]
    assert todo and all(isinstance(i, Instruction) for i in todo)


@pytest.mark.parametrize(("before", "kind"), [
    (s, k) for s in ProjectState for k in PROJECT_EVENTS
    if (s, k) not in PROJECT_TABLE and (s, k) not in PROJECT_REPEATS])
def test_project_refused(before: ProjectState, kind: type[Event]) -> None:
    with pytest.raises(LifecycleRefused) as caught:
        handle_project(before, _event(kind))
    assert before.value in str(caught.value) and _event(kind).name in str(caught.value)
    assert caught.value.state is before


@pytest.mark.parametrize(("before", "kind"), sorted(PROJECT_REPEATS | SEAT_REPEATS, key=str))
def test_repeats_change_nothing(before: ProjectState | SeatState, kind: type[Event]) -> None:
    assert handle(before, _event(kind)) == (before, [])


@pytest.mark.parametrize(("before", "kind", "reason"), list(SEAT_TABLE))
def test_seat_allowed(before: SeatState, kind: type[Event], reason: str) -> None:
    after, todo = handle_seat(before, _event(kind, reason))
    assert (after, tuple(todo)) == SEAT_TABLE[(before, kind, reason)]


@pytest.mark.parametrize(("before", "kind", "reason"), [
    (s, k, r) for s in SeatState for k in SEAT_EVENTS
    for r in (sorted(DEPARTED) if k is Departed else [""])
    if (s, k, r) not in SEAT_TABLE and (s, k) not in SEAT_REPEATS])
def test_seat_refused(before: SeatState, kind: type[Event], reason: str) -> None:
    with pytest.raises(LifecycleRefused, match=before.value):
        handle_seat(before, _event(kind, reason))


def test_project_events_refused_for_seats_and_back() -> None:
    with pytest.raises(LifecycleRefused):
        handle(SeatState.NOTIFIED, DrawPlaced("s"))
    with pytest.raises(LifecycleRefused):
        handle(ProjectState.DRAWN, SignedIn("s"))


def test_events_need_a_stimulus_and_a_known_reason() -> None:
    with pytest.raises(ValueError, match="stimulus_id"):
        WindowOpened(" ")
    with pytest.raises(ValueError, match="reason"):
        Departed("s", "bored")


def test_stored_strings_are_accepted_as_states() -> None:
    assert handle_project("drawn", WindowOpened("t"))[0] is ProjectState.EVALUATING  # type: ignore[arg-type]


def test_validate_state_catches_impossible_pictures() -> None:
    validate_state(ProjectState.EVALUATING, [SeatState.SIGNED, SeatState.DECLINED])
    with pytest.raises(InvalidState):
        validate_state(ProjectState.DRAWN, [SeatState.SIGNED_IN])
    with pytest.raises(InvalidState):
        validate_state(ProjectState.REGISTERED, [SeatState.SIGNED])
    with pytest.raises(InvalidState):
        validate_state(ProjectState.EVALUATING, [SeatState.NOTIFIED] * 3, committee=2)


_ANY_EVENT = st.sampled_from(
    [k("h") for k in PROJECT_EVENTS] + [Departed("h", r) for r in sorted(DEPARTED)]
    + [k("h") for k in SEAT_EVENTS if k is not Departed])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ANY_EVENT, st.integers(min_value=0, max_value=4)), max_size=40))
def test_random_sequences_keep_the_state_valid(steps: list[tuple[Event, int]]) -> None:
    """A project of 5 seats fed random events: refused ones change nothing; after every
    event the picture passes validate_state, with seats reset when a committee dissolves."""
    project = ProjectState.REGISTERED
    seats: list[SeatState] = []
    for event, which in steps:
        try:
            if isinstance(event, PROJECT_EVENTS):
                project, _ = handle_project(project, event)
                if isinstance(event, DrawPlaced):
                    seats = [SeatState.NOTIFIED] * 5
                if isinstance(event, MaterialsSealed):
                    seats = []
            else:
                if project is not ProjectState.EVALUATING and isinstance(event, SignedIn):
                    continue  # the shell refuses a sign-in before the window (_session)
                if project not in WITH_COMMITTEE or not seats:
                    continue
                seats[which], _ = handle_seat(seats[which], event)
        except LifecycleRefused:
            pass
        validate_state(project, seats, committee=5)


def test_story_entry_round_trips() -> None:
    entry = story_entry("2026-03-02T01:00:00+00:00", SeatState.NOTIFIED, SeatState.DECLINED,
                        Departed("req-1", "declined"), [Instruction.RELEASE], seat="ses_x")
    assert StoryEntry.from_dict(entry.to_dict()) == entry
    assert entry.event == "departed (declined)" and entry.instructions == ("release",)


def test_readme_lifecycle_table_is_current() -> None:
    """Regenerate with: python -m coordinator.lifecycle_table README.md"""
    assert markdown_table() in README.read_text(encoding="utf-8")
