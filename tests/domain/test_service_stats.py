"""Site service statistics: counts and durations from audit entries, clipped to the period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from coordinator.domain.audit import AuditEntry, generate_signing_key, make_entry
from coordinator.domain.service_stats import SeatPlace, by_city, service_stats

T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)  # 09:00 local (UTC+8)
SITES = {"S1": ("Hangzhou", 10), "S2": ("Hangzhou", 4), "S3": ("Ningbo", 8)}
SEATS = [SeatPlace("a", "P1", "S1", "w1"), SeatPlace("b", "P1", "S1", "w2"),
         SeatPlace("c", "P2", "S1", "w1"), SeatPlace("d", "P2", "S3", "w9")]


def _trail(*rows: tuple[timedelta, str, str, dict[str, object]]) -> list[AuditEntry]:
    key = generate_signing_key()
    out: list[AuditEntry] = []
    for after, kind, subject, detail in rows:
        at = (T0 + after).isoformat().replace("+00:00", "Z")
        out.append(make_entry(out[-1] if out else None, at=at, kind=kind, subject=subject,
                              detail=detail, key=key))
    return out


TRAIL = _trail(
    (timedelta(hours=-20), "project.registered", "P1", {"host": "S2"}),
    (timedelta(0), "expert.signed_in", "P1", {"session": "a"}),
    (timedelta(minutes=1), "expert.signed_in", "P1", {"session": "b"}),
    (timedelta(hours=5), "expert.signed_in", "P2", {"session": "c"}),  # 14:00 local: PM
    (timedelta(hours=5), "expert.signed_in", "P2", {"session": "d"}),
    (timedelta(hours=1), "site.disconnected", "S3", {}),
    (timedelta(hours=1, minutes=30), "site.reconnected", "S3", {}),
    (timedelta(hours=2), "fault.incident_opened", "P2", {"incident": "i1", "site": "S1"}),
    (timedelta(hours=3), "fault.resumed", "P2", {"incident": "i1"}),
    (timedelta(hours=4), "seat.moved", "P2", {"session": "c"}),
    (timedelta(hours=6), "site.disconnected", "S2", {}),  # never back: up to the trail's end
    (timedelta(hours=8), "expert.signed_in", "P9", {"session": "zz"}),  # unknown session
    (timedelta(days=3), "expert.signed_in", "P1", {"session": "a"}),  # outside the period
)


def test_counts_and_durations_per_site() -> None:
    figures = {s.site_id: s for s in service_stats(
        TRAIL[:-1], SEATS, SITES, date(2026, 12, 4), date(2026, 12, 5), 480)}
    s1, s2, s3 = figures["S1"], figures["S2"], figures["S3"]
    assert (s1.seat_services, s1.guest_projects, s1.host_projects) == (3, 2, 0)
    assert s1.half_days == {("2026-12-05", "AM"): 2, ("2026-12-05", "PM"): 1}
    assert (s1.incidents, s1.incident_minutes, s1.seats_moved) == (1, 60.0, 1)
    assert (s2.host_projects, s2.outages, s2.outage_minutes) == (1, 1, 120.0)
    assert (s3.seat_services, s3.outages, s3.outage_minutes) == (1, 1, 30.0)
    cities = {c.city: c for c in by_city(figures.values())}
    assert (cities["Hangzhou"].sites, cities["Hangzhou"].workstations) == (2, 14)
    assert cities["Hangzhou"].seat_services == 3 and cities["Ningbo"].guest_projects == 1


def test_the_period_bounds_every_figure() -> None:
    later = {s.site_id: s for s in service_stats(
        TRAIL, SEATS, SITES, date(2026, 12, 6), date(2026, 12, 31), 480)}
    assert later["S1"].seat_services == 1 and later["S1"].incidents == 0
    assert later["S3"].outages == 0 and later["S2"].outages == 0
    before = service_stats(TRAIL, SEATS, SITES, date(2026, 11, 1), date(2026, 11, 30), 480)
    assert all(s.seat_services == 0 and s.outages == 0 for s in before)
