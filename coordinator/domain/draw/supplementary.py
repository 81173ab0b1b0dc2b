"""Supplementary draws: refilling the seats of members who leave, under the same rules."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from coordinator.domain.draw.index import Mask
from coordinator.domain.draw.inputs import Candidate, DrawInputs, DrawSnapshot, VenueOffer
from coordinator.domain.draw.outcome import DrawOutcome, Seat


def supplementary_inputs(
    previous: DrawInputs,
    committee: Sequence[Seat],
    drop: Collection[str],
    *,
    venues: tuple[VenueOffer, ...],
    candidates: tuple[Candidate, ...],
    parent: str,
    rules_version: str | None = None,
    snapshot: DrawSnapshot | None = None,
    barred: Mask | None = None,
    unavailable: Mask | None = None,
) -> DrawInputs:
    """Inputs for redrawing the seats of `drop` under the same rules.

    `previous`: the inputs of the last draw in the chain (for the project, cap and exclusions);
    `committee`: the committee as it stands (all current seats, the dropped ones included);
    `venues` and `candidates`: a fresh screening at the time of the redraw; `parent`: the
    `record_digest` of the previous draw's archive, so the chain is tamper-evident.
    Everyone ever drawn for the project is excluded; members who stay keep their venue (counted
    toward the per-venue cap) and their room (not shared). With `snapshot` (and the `barred`
    and `unavailable` arrays over it) the inputs are referenced; `venues` and `candidates` are
    then empty.
    """
    members = {s.expert_id for s in committee}
    unknown = sorted(set(drop) - members)
    if unknown:
        raise ValueError(f"cannot drop experts not on the committee: {unknown}")
    seats = tuple(s.quota_index for s in committee if s.expert_id in drop)
    occupied = tuple(sorted((s.venue_id, s.room_id) for s in committee if s.expert_id not in drop))
    if snapshot is not None:
        if barred is None or unavailable is None:
            raise ValueError("a snapshot needs the barred and unavailable arrays")
        return DrawInputs.referenced(
            project=previous.project,
            rules_version=rules_version or previous.rules_version,
            snapshot=snapshot,
            barred=barred,
            unavailable=unavailable,
            per_venue_cap=previous.per_venue_cap,
            exclude=previous.exclude | members,
            parent=parent,
            seats=seats,
            occupied=occupied,
        )
    return DrawInputs(
        project=previous.project,
        rules_version=rules_version or previous.rules_version,
        venues=venues,
        candidates=candidates,
        per_venue_cap=previous.per_venue_cap,
        exclude=previous.exclude | members,
        parent=parent,
        seats=seats,
        occupied=occupied,
    )


def merge_committee(
    committee: Sequence[Seat], drop: Collection[str], outcome: DrawOutcome
) -> tuple[Seat, ...]:
    """The committee after a supplementary draw: members who stay, then the new seats."""
    return tuple(s for s in committee if s.expert_id not in drop) + outcome.seats
