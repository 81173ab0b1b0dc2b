"""Small builders for domain tests: a province of a few cities, experts, companies, a project."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.draw.inputs import DrawInputs
from coordinator.domain.eligibility import DayScreen, PoolIndex, host_city_of
from coordinator.domain.model import (
    Bid,
    Company,
    Criterion,
    Expert,
    ExpertKind,
    Person,
    Project,
    Province,
    Quota,
    Room,
    ScoringMethod,
    Site,
    SiteRole,
    Sitting,
    Venue,
    Window,
    Workstation,
)
from coordinator.domain.rules import Rules, load_rules

TODAY = date(2026, 5, 1)
RULES = load_rules()


def seed_of(n: int | str) -> bytes:
    return hashlib.sha256(f"test-seed-{n}".encode()).digest()


def local_window(day: date, start_hour: int, hours: float) -> Window:
    """A window given in UTC+8 local time."""
    start = datetime(day.year, day.month, day.day, start_hour, tzinfo=UTC) - timedelta(hours=8)
    return Window(start, start + timedelta(hours=hours))


WINDOW = local_window(date(2026, 5, 10), 9, 3)


def scoring() -> ScoringMethod:
    return ScoringMethod(
        "comprehensive", Decimal("30"), (Criterion("c1", "Technical plan", Decimal("70")),)
    )


def expert(
    eid: str,
    city: str = "C1",
    *,
    work_city: str | None = None,
    kind: ExpertKind = "technical",
    specialties: Sequence[str] = ("W.01",),
    birth: date = date(1975, 6, 1),
    **kw: object,
) -> Expert:
    return Expert(
        id=eid,
        name=f"Expert {eid}",
        id_number=f"ID{eid}",
        phone=f"+86-{eid}",
        city=city,
        work_city=work_city or city,
        birth_date=birth,
        kind=kind,
        specialties=tuple(specialties),
        **kw,  # type: ignore[arg-type]
    )


def company(
    cid: str,
    name: str | None = None,
    *,
    code: str | None = None,
    group: str | None = None,
    key_staff: Sequence[str] = (),
    principal: str | None = None,
) -> Company:
    return Company(
        id=cid,
        name=name or f"{cid} Engineering Co., Ltd.",
        credit_code=code,
        group_id=group,
        legal_rep=Person(f"{cid}-rep", f"Rep of {cid}"),
        principal=Person(principal, "Principal") if principal else None,
        key_staff=tuple(Person(p, f"Staff {p}") for p in key_staff),
    )


def project(
    pid: str = "P1",
    *,
    city: str = "C0",
    host_site_id: str = "H0",
    tenderer: str = "T",
    bidders: Sequence[str] = ("B1", "B2"),
    quotas: Sequence[Quota] = (Quota("W.01", 5),),
    window: Window = WINDOW,
    department: str = "",
    reps: int = 0,
    large: bool = False,
) -> Project:
    size = sum(q.count for q in quotas) + reps
    return Project(
        id=pid,
        name=f"Project {pid}",
        host_site_id=host_site_id,
        city=city,
        tenderer_id=tenderer,
        category="works",
        committee_size=size,
        quotas=tuple(quotas),
        window=window,
        scoring=scoring(),
        bids=tuple(Bid(b, Decimal("1000000.00")) for b in bidders),
        competent_department=department,
        tenderer_reps=reps,
        large=large,
    )


def site(
    sid: str,
    city: str,
    *,
    rooms: int = 2,
    per_room: int = 2,
    roles: Iterable[SiteRole] = ("guest",),
) -> Site:
    vid = f"{sid}-v"
    room_list = tuple(
        Room(
            f"{vid}-r{r}",
            vid,
            f"Room {r}",
            tuple(
                Workstation(f"{vid}-r{r}-w{w}", sid, vid, f"{vid}-r{r}") for w in range(per_room)
            ),
        )
        for r in range(rooms)
    )
    return Site(
        sid, f"Site {sid}", city, frozenset(roles), (Venue(vid, sid, f"V {sid}", city, room_list),)
    )


def grid(
    cities: Sequence[str] = ("C1", "C2", "C3", "C4", "C5", "C6"), **kw: int
) -> tuple[Site, ...]:
    """A host site in C0 and one guest site per city."""
    host = Site("H0", "Host", "C0", frozenset({"host"}), ())
    return (host, *(site(f"S{c}", c, **kw) for c in cities))  # type: ignore[arg-type]


def parties() -> tuple[Company, ...]:
    return (company("T"), company("B1"), company("B2"), company("X"))


@dataclass(frozen=True)
class Screened:
    """One project screened by the coordinator's day screen, as the tests read it."""

    eligible: tuple[str, ...]  # matching a quota and barred by no rule, sorted
    excluded: dict[str, tuple[str, ...]]  # matching a quota but barred: the reason codes
    reasons: Counter[str]
    per_quota: tuple[tuple[int, int], ...]


def day_screen(
    prov: Province,
    *,
    rules: Rules = RULES,
    sittings: dict[str, list[Sitting]] | None = None,
    busy: Iterable[tuple[str, int, int]] = (),
    today: date = TODAY,
) -> DayScreen:
    pool = PoolIndex.build(prov.experts, rules)
    index = ConflictIndex.build(prov.experts, prov.companies, rules)
    history = [s for ss in (sittings or {}).values() for s in ss]
    return DayScreen(pool, index, prov.sites, rules, today, sittings=history, bookings=busy)


def screened(
    prov: Province,
    proj: Project,
    *,
    rules: Rules = RULES,
    sittings: dict[str, list[Sitting]] | None = None,
    today: date = TODAY,
) -> Screened:
    day = day_screen(prov, rules=rules, sittings=sittings, today=today)
    host_city = host_city_of(proj, prov.sites)
    excluded = day.explain(proj, host_city)
    matching = set().union(*(day.pool.matching(q) for q in proj.quotas))
    return Screened(
        eligible=tuple(sorted(matching - excluded.keys())),
        excluded=excluded,
        reasons=day.reason_counts(proj, host_city),
        per_quota=day.per_quota(proj, host_city),
    )


def inputs_for(
    prov: Province,
    proj: Project,
    *,
    rules: Rules = RULES,
    sittings: dict[str, list[Sitting]] | None = None,
    busy: Iterable[str] = (),
    today: date = TODAY,
) -> DrawInputs:
    """The coordinator's referenced inputs, resolved to explicit ones (the quota matches)."""
    w = proj.window
    day = day_screen(prov, rules=rules, sittings=sittings, today=today,
                     busy=[(ws, w.start_ts, w.end_ts) for ws in busy])
    referenced = day.inputs(proj, host_city_of(proj, prov.sites))
    matching = set().union(*(day.pool.matching(q) for q in proj.quotas))
    return DrawInputs(
        project=proj,
        rules_version=rules.version,
        venues=referenced.resolved_venues(),
        candidates=tuple(c for c in referenced.resolved_candidates()
                         if c.expert_id in matching),
        per_venue_cap=rules.per_venue_cap,
    )


def simple_province(n_per_city: int = 3, **kw: int) -> tuple[Province, Project]:
    """Six guest cities with `n_per_city` W.01 experts each, parties with no ties."""
    cities = ("C1", "C2", "C3", "C4", "C5", "C6")
    experts = tuple(
        expert(f"E{c}{i}", c, specialties=("W.01.02",) if i % 2 else ("W.01",))
        for c in cities
        for i in range(n_per_city)
    )
    proj = project()
    prov = Province(
        sites=grid(cities, **kw), experts=experts, companies=parties(), projects=(proj,)
    )
    return prov, proj
