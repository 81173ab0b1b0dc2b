"""An independent check of a grid's final stored state: double bookings and rule violations.

It reads what is stored - the booking sets, the sealed allocations, the registry - and
re-derives every rule with `violations.find_violations`, which shares no code with the draw.
The per-venue cap is counted from the venue offers each draw recorded (its committed inputs,
`violations.cap_on_offers`): what the day looks like at its end is not what a redraw saw.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from coordinator.domain.draw.canonical import inputs_from_json
from coordinator.domain.draw.inputs import DrawSnapshot
from coordinator.domain.rules import load_rules
from coordinator.domain.violations import cap_on_offers, find_violations
from coordinator.offline import master_key, open_store, read_allocation, verify_audit
from coordinator.store.bookings import BookingItem, Bookings, expert_resource, ws_resource
from coordinator.store.draws import DrawArchives
from coordinator.store.registry import Registry
from coordinator.store.snapshots import read_snapshot


@dataclass
class CheckResult:
    double_bookings: int = 0
    rule_violations: int = 0
    audit_entries: int = 0
    audit_intact: bool = False
    details: list[str] = field(default_factory=list)


def overlapping_pairs(items: list[BookingItem]) -> list[tuple[BookingItem, BookingItem]]:
    """Pairs of bookings on one resource whose intervals overlap (sweep by start time)."""
    pairs = []
    ordered = sorted(items, key=lambda b: (b.start, b.end))
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if second.start >= first.end:
                break
            pairs.append((first, second))
    return pairs


async def check_grid(data_dir: Path, redis_url: str | None) -> CheckResult:
    result = CheckResult()
    key = master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        by_resource: dict[str, list[BookingItem]] = defaultdict(list)
        bookings = Bookings(redis)
        for resource in await bookings.resources():
            by_resource[resource].extend(await bookings.all_intervals(resource))
        for resource, items in by_resource.items():
            for first, second in overlapping_pairs(items):
                result.double_bookings += 1
                result.details.append(f"double booking on {resource}: {first.member} and "
                                      f"{second.member}")

        registry = Registry(redis)
        province = await registry.load_province()
        allocations = []
        offered_caps: dict[str, int] = {}
        short: set[str] = set()
        snapshots: dict[str, DrawSnapshot] = {}
        for project in province.projects:
            alloc = await read_allocation(redis, key, project.id)
            if alloc is None:
                continue
            caps = []
            for draw_id in alloc.draw_ids:
                archive = await DrawArchives(redis, key).sealed_archive(draw_id)
                if archive is None:
                    continue
                inputs = archive["inputs"]
                digest = inputs.get("snapshot")
                if digest is not None and digest not in snapshots:
                    found = await read_snapshot(redis, key, digest)
                    if found is not None:
                        snapshots[digest] = found
                caps.append(cap_on_offers(inputs_from_json(inputs, snapshots)))
            if caps:
                offered_caps[project.id] = max(caps)
            seats = alloc.active_seats()
            if len(seats) < project.drawn_seats and len(alloc.seats) > len(seats):
                short.add(project.id)  # departures no draw could replace: awaits an operator
            allocations.append((project.id, [(s.expert_id, s.venue_id, s.workstation_id)
                                             for s in seats]))
            for seat in seats:  # every seat must hold its bookings
                for resource, holder in ((ws_resource(seat.workstation_id), seat.session_id),
                                         (expert_resource(seat.expert_id), seat.expert_hold)):
                    if not any(b.holder == holder for b in by_resource.get(resource, [])):
                        result.rule_violations += 1
                        result.details.append(f"{project.id}: seat without booking on "
                                              f"{resource}")
        rules = load_rules()
        today = rules.local_date(min((p.window.start for p in province.projects),
                                     default=datetime.now(UTC)))
        violations = find_violations(province, allocations, [], rules, today, offered_caps,
                                     short)
        result.rule_violations += len(violations)
        result.details += violations

    check = await verify_audit(data_dir, redis_url)
    result.audit_entries = check.entries_checked
    result.audit_intact = check.ok
    if not check.ok:
        result.details.append(f"audit: {check.reason}")
    return result
