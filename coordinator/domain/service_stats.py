"""Site service statistics: what each trading centre did as a guest site, from the audit trail.

Definitions (each a count of audit entries, so anyone can recount them):
- expert-seat services: `expert.signed_in` entries of sessions seated at the site;
- guest projects: the distinct projects of those sign-ins;
- host projects: `project.registered` entries naming the site as host;
- workstation use by half-day: per local date and half (AM [00:00, 12:00), PM), the distinct
  workstations of the site with a sign-in, against the site's workstations;
- faults: site outages (`site.disconnected` to the next `site.reconnected`, or the trail's
  last entry while still down) and incidents (`fault.incident_opened` to `fault.resumed` /
  `fault.repaired_late` / `fault.closed`), with their durations in minutes; and seats moved
  off a failed workstation (`seat.moved`).
Per city: the sums over the city's sites. Pure: entries and seat links in, figures out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from coordinator.domain.audit import AuditEntry

_INCIDENT_ENDS = ("fault.resumed", "fault.repaired_late", "fault.closed")


@dataclass(frozen=True, slots=True)
class SeatPlace:
    """Where a session sat: from the sealed allocation."""

    session_id: str
    project_id: str
    site_id: str
    workstation_id: str


@dataclass
class SiteService:
    site_id: str
    city: str
    workstations: int
    guest_projects: int = 0
    seat_services: int = 0
    host_projects: int = 0
    # (local date ISO, "AM" | "PM") -> workstations with a sign-in
    half_days: dict[tuple[str, str], int] = field(default_factory=dict)
    outages: int = 0
    outage_minutes: float = 0.0
    incidents: int = 0
    incident_minutes: float = 0.0
    seats_moved: int = 0


def _at(entry: AuditEntry) -> datetime:
    return datetime.fromisoformat(entry.at.replace("Z", "+00:00"))


def service_stats(entries: Iterable[AuditEntry], seats: Iterable[SeatPlace],
                  sites: Mapping[str, tuple[str, int]], start: date, end: date,
                  offset_minutes: int) -> list[SiteService]:
    """Figures per site (`sites`: id -> (city, workstations)) for the local days
    [start, end]; durations are clipped to the period."""
    offset = timedelta(minutes=offset_minutes)
    lo = datetime(start.year, start.month, start.day) - offset
    hi = datetime(end.year, end.month, end.day) + timedelta(days=1) - offset
    by_session = {s.session_id: s for s in seats}
    out = {sid: SiteService(sid, city, n) for sid, (city, n) in sorted(sites.items())}
    guest: dict[str, set[str]] = defaultdict(set)
    used: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    down_since: dict[str, datetime] = {}
    incident_open: dict[str, tuple[str, datetime]] = {}  # incident -> (site, since)
    moved: Counter[str] = Counter()
    last = lo  # the trail's last entry: what is still open is counted up to it

    def inside(at: datetime) -> bool:
        return lo <= at.replace(tzinfo=None) < hi

    def minutes(a: datetime, b: datetime) -> float:
        a_, b_ = max(a.replace(tzinfo=None), lo), min(b.replace(tzinfo=None), hi)
        return max(0.0, (b_ - a_).total_seconds() / 60)

    for entry in entries:
        at, d = _at(entry), entry.detail
        last = max(last, at.replace(tzinfo=None))
        if entry.kind == "expert.signed_in" and inside(at):
            seat = by_session.get(str(d.get("session", "")))
            if seat is not None and seat.site_id in out:
                out[seat.site_id].seat_services += 1
                guest[seat.site_id].add(seat.project_id)
                local = at.replace(tzinfo=None) + offset
                half = "AM" if local.hour < 12 else "PM"
                used[seat.site_id][(local.date().isoformat(), half)].add(seat.workstation_id)
        elif entry.kind == "project.registered" and inside(at):
            host = str(d.get("host", ""))
            if host in out:
                out[host].host_projects += 1
        elif entry.kind == "seat.moved" and inside(at):
            seat = by_session.get(str(d.get("session", "")))
            if seat is not None and seat.site_id in out:
                moved[seat.site_id] += 1
        elif entry.kind == "site.disconnected" and entry.subject in out:
            down_since.setdefault(entry.subject, at)
        elif entry.kind == "site.reconnected" and entry.subject in down_since:
            since = down_since.pop(entry.subject)
            if minutes(since, at) > 0 or inside(since):
                out[entry.subject].outages += 1
                out[entry.subject].outage_minutes += minutes(since, at)
        elif entry.kind == "fault.incident_opened":
            site = str(d.get("site", ""))
            if site in out:
                incident_open[str(d.get("incident", ""))] = (site, at)
        elif entry.kind in _INCIDENT_ENDS:
            opened = incident_open.pop(str(d.get("incident", "")), None)
            if opened is not None and (minutes(opened[1], at) > 0 or inside(opened[1])):
                out[opened[0]].incidents += 1
                out[opened[0]].incident_minutes += minutes(opened[1], at)
    until = min(hi, last)
    for site, since in down_since.items():  # still down when the trail ends
        if lo <= since.replace(tzinfo=None) < hi:
            out[site].outages += 1
            out[site].outage_minutes += minutes(since, until)
    for site, (_, since) in incident_open.items():
        if lo <= since.replace(tzinfo=None) < hi:
            out[site].incidents += 1
            out[site].incident_minutes += minutes(since, until)
    for sid, s in out.items():
        s.guest_projects = len(guest.get(sid, ()))
        s.half_days = {k: len(v) for k, v in sorted(used.get(sid, {}).items())}
        s.seats_moved = moved.get(sid, 0)
    return list(out.values())


@dataclass
class CityService:
    city: str
    sites: int = 0
    workstations: int = 0
    guest_projects: int = 0
    seat_services: int = 0
    host_projects: int = 0
    outages: int = 0
    outage_minutes: float = 0.0
    incidents: int = 0
    incident_minutes: float = 0.0


def by_city(sites: Iterable[SiteService]) -> list[CityService]:
    """Sums per city (guest projects: a project served in two sites of a city counts twice:
    each site served it)."""
    out: dict[str, CityService] = {}
    for s in sites:
        c = out.setdefault(s.city, CityService(s.city))
        c.sites += 1
        c.workstations += s.workstations
        c.guest_projects += s.guest_projects
        c.seat_services += s.seat_services
        c.host_projects += s.host_projects
        c.outages += s.outages
        c.outage_minutes += s.outage_minutes
        c.incidents += s.incidents
        c.incident_minutes += s.incident_minutes
    return [out[k] for k in sorted(out)]
