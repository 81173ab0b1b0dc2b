"""An independent checker: re-derive every rule from the raw province and report breaches.

The demo and the property tests use this to judge allocations produced by the fast path
(ConflictIndex, PoolIndex, draw). It deliberately shares none of that code: each rule is written
out again, directly and slowly, over the plain Province records, so a bug in an index or in the
draw shows up here as a violation instead of being repeated. The only shared pieces are the
name and credit-code normalisers (names.py), which are tested on their own.

Allocations are judged in the order given: the workstations and sittings of earlier allocations
count as booked for later ones (as they would for draws run in that order).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta

from coordinator.domain.draw.inputs import DrawInputs
from coordinator.domain.model import (
    Company,
    CompanyRef,
    Expert,
    Project,
    Province,
    Quota,
    Sitting,
    Venue,
)
from coordinator.domain.names import (
    normalise_company_name,
    normalise_credit_code,
    normalise_department,
)
from coordinator.domain.rules import Rules

Allocation = tuple[str, Sequence[tuple[str, str, str]]]  # project id, (expert, venue, workstation)


def _minus_years(day: date, years: int) -> date:
    if day.month == 2 and day.day == 29:
        day = day - timedelta(days=1)
    return date(day.year - years, day.month, day.day)


def _age(birth: date, today: date) -> int:
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def _same_company(ref: CompanyRef, company: Company) -> bool:
    a, b = normalise_company_name(ref.name), normalise_company_name(company.name)
    if a and a == b:
        return True
    ca, cb = normalise_credit_code(ref.credit_code), normalise_credit_code(company.credit_code)
    return ca is not None and ca == cb


def _under(code: str, quota: Quota) -> bool:
    c = ".".join(p for p in code.strip().split(".") if p)
    q = ".".join(p for p in quota.specialty.strip().split(".") if p)
    return c == q or c.startswith(q + ".")


def _fits(expert: Expert, quota: Quota) -> bool:
    if quota.kind is not None and expert.kind != quota.kind:
        return False
    return any(_under(code, quota) for code in expert.specialties)


def _half_days(start: datetime, end: datetime, offset_minutes: int) -> set[tuple[date, int]]:
    """(local date, 0 morning / 1 afternoon) for every half-day [start, end) touches."""
    shift = timedelta(minutes=offset_minutes)
    local, local_end = start + shift, end + shift
    out: set[tuple[date, int]] = set()
    cursor = local.replace(hour=0 if local.hour < 12 else 12, minute=0, second=0, microsecond=0)
    while True:
        out.add((cursor.date(), 0 if cursor.hour < 12 else 1))
        cursor += timedelta(hours=12)
        if cursor >= local_end:
            return out


def _cooled(a: Sitting, project: Project, cool_off_days: int) -> bool:
    """True if sitting `a` is for the project's tenderer within the cool-off of its window."""
    if a.tenderer_id != project.tenderer_id:
        return False
    gap = timedelta(days=cool_off_days)
    return a.window.start < project.window.end + gap and project.window.start - gap < a.window.end


def _quota_matching(experts: list[Expert], quotas: Sequence[Quota]) -> int:
    """Size of a maximum matching of experts to quota seats (Kuhn's augmenting paths)."""
    seats = [q for q in quotas for _ in range(q.count)]
    owner: list[int | None] = [None] * len(seats)

    def augment(e: int, seen: set[int]) -> bool:
        for s, quota in enumerate(seats):
            if s in seen or not _fits(experts[e], quota):
                continue
            seen.add(s)
            current = owner[s]
            if current is None or augment(current, seen):
                owner[s] = e
                return True
        return False

    return sum(1 for e in range(len(experts)) if augment(e, set()))


class _Province:
    """Plain look-ups over the raw province, built naively."""

    def __init__(self, province: Province) -> None:
        self.experts = {e.id: e for e in province.experts}
        self.companies = {c.id: c for c in province.companies}
        self.projects = {p.id: p for p in province.projects}
        self.sites = {s.id: s for s in province.sites}
        self.venues: dict[str, tuple[str, Venue]] = {}
        self.workstations: dict[str, tuple[str, str]] = {}  # ws -> (venue, room)
        for site in province.sites:
            for venue in site.venues:
                self.venues[venue.id] = (site.id, venue)
                for ws in venue.workstations:
                    self.workstations[ws.id] = (venue.id, ws.room_id)

    def parties(self, project: Project) -> list[tuple[str, Company, Company]]:
        """(role, party, company counted as that party): each party and its group's members."""
        out: list[tuple[str, Company, Company]] = []
        roles = [("tenderer", project.tenderer_id)] + [("bidder", b) for b in project.bidder_ids]
        for role, cid in roles:
            party = self.companies[cid]
            for other in self.companies.values():
                same_group = party.group_id is not None and other.group_id == party.group_id
                if other.id == party.id or same_group:
                    out.append((role, party, other))
        return out


def expert_breaches(
    p: _Province,
    project: Project,
    expert: Expert,
    sittings: Sequence[Sitting],
    rules: Rules,
    today: date,
) -> list[str]:
    """Every rule of "who may not sit" that `expert` breaches for `project`, re-derived."""
    out: list[str] = []
    if expert.status != "active":
        out.append(f"status is {expert.status}")
    since = _minus_years(today, rules.look_back_years)
    for pen in expert.penalties:
        if pen.on >= since:
            out.append(f"penalised on {pen.on} ({pen.reason})")
    if _age(expert.birth_date, today) > rules.age_limit:
        out.append(f"aged {_age(expert.birth_date, today)} > {rules.age_limit}")
    host_city = p.sites[project.host_site_id].city
    for city in {project.city, host_city}:
        if expert.city == city:
            out.append(f"lives in {city}")
        if expert.work_city == city:
            out.append(f"works in {city}")
    for role, party, company in p.parties(project):
        label = f"{role} {party.id}" + ("" if company.id == party.id else f" (group {company.id})")
        for job in expert.employments:
            in_period = job.start <= today and (job.end is None or job.end >= since)
            if in_period and _same_company(job.company, company):
                out.append(f"employed by {label}")
        for ref in expert.interests:
            if _same_company(ref, company):
                out.append(f"interest in {label}")
        for ref in expert.declared_conflicts:
            if _same_company(ref, company):
                out.append(f"declared conflict with {label}")
        if company.id == party.id:
            people = {person.person_id for person in party.people}
            for rel in expert.relatives:
                if rel.relation in rules.relations and rel.person_id in people:
                    out.append(f"{rel.relation} of {rel.person_id} ({label})")
    dept = normalise_department(project.competent_department)
    if dept and any(normalise_department(d) == dept for d in expert.departments):
        out.append(f"works for {project.competent_department}")
    mine = _half_days(project.window.start, project.window.end, rules.local_utc_offset_minutes)
    per_half: Counter[tuple[date, int]] = Counter()
    for s in sittings:
        if s.expert_id != expert.id:
            continue
        if s.window.start < project.window.end and project.window.start < s.window.end:
            out.append(f"overlapping session {s.project_id}")
        if _cooled(s, project, rules.cool_off_days):
            out.append(f"cool-off: sat for tenderer {s.tenderer_id} in {s.project_id}")
        for h in _half_days(s.window.start, s.window.end, rules.local_utc_offset_minutes):
            if h in mine:
                per_half[h] += 1
    for h, n in sorted(per_half.items()):
        if n + 1 > rules.workload_cap_per_half_day:
            out.append(
                f"workload: {n} other sitting(s) in half-day {h[0]} {'am' if h[1] == 0 else 'pm'}"
            )
    return out


def find_violations(
    province: Province,
    allocations: Sequence[Allocation],
    sittings_before: Sequence[Sitting],
    rules: Rules,
    today: date,
    offered_caps: Mapping[str, int] | None = None,
    short: Collection[str] = (),
) -> list[str]:
    """Every rule an allocation breaks, as readable lines; empty when all allocations are clean.

    `short`: projects whose committee lost members no replacement draw could fill (refused or
    starved: a state awaiting an operator, not a breach): fewer members than seats is allowed
    there, but never more, and every member must still fill a quota seat.

    `offered_caps` (project -> cap): the per-venue cap counted from the venue offers its draws
    recorded (`cap_on_offers`); a project not in it has its cap recomputed from the province,
    which after redraws (sites lost, venues taken meanwhile) no longer shows what each draw
    was offered.
    """
    p = _Province(province)
    out: list[str] = []
    sittings: list[Sitting] = list(sittings_before)
    booked: list[tuple[Project, str]] = []  # (project, workstation) of earlier allocations

    for pid, members in allocations:
        project = p.projects.get(pid)
        if project is None:
            out.append(f"{pid}: unknown project")
            continue
        cap = (offered_caps or {}).get(pid)
        out.extend(_check_allocation(p, project, members, sittings, booked, rules, today, cap,
                                     pid in short))
        for eid, _venue, ws in members:
            sittings.append(Sitting(eid, project.id, project.tenderer_id, project.window))
            booked.append((project, ws))
    return out


def _check_allocation(
    p: _Province,
    project: Project,
    members: Sequence[tuple[str, str, str]],
    sittings: Sequence[Sitting],
    booked: Sequence[tuple[Project, str]],
    rules: Rules,
    today: date,
    offered_cap: int | None = None,
    short: bool = False,
) -> list[str]:
    pid = project.id
    out: list[str] = []
    host_city = p.sites[project.host_site_id].city
    barred = {project.city, host_city}
    ids = [eid for eid, _, _ in members]
    for eid, n in Counter(ids).items():
        if n > 1:
            out.append(f"{pid}: {eid}: drawn {n} times")
    if len(members) > project.drawn_seats or (len(members) < project.drawn_seats and not short):
        out.append(f"{pid}: {len(members)} members drawn, {project.drawn_seats} seats")

    experts: list[Expert] = []
    for eid, venue_id, ws_id in members:
        expert = p.experts.get(eid)
        if expert is None:
            out.append(f"{pid}: {eid}: unknown expert")
            continue
        experts.append(expert)
        for breach in expert_breaches(p, project, expert, sittings, rules, today):
            out.append(f"{pid}: {eid}: {breach}")
        if venue_id not in p.venues:
            out.append(f"{pid}: {eid}: unknown venue {venue_id}")
            continue
        site_id, venue = p.venues[venue_id]
        if "guest" not in p.sites[site_id].roles:
            out.append(f"{pid}: {eid}: venue {venue_id} is not at a guest site")
        for city in sorted({venue.city, p.sites[site_id].city} & barred):
            out.append(f"{pid}: {eid}: venue {venue_id} is in {city}, a barred city")
        catchment = (expert.city,) if rules.catchment == "own_city" else expert.catchment_cities
        if venue.city not in catchment:
            out.append(f"{pid}: {eid}: venue {venue_id} ({venue.city}) outside catchment")
        if p.workstations.get(ws_id, ("", ""))[0] != venue_id:
            out.append(f"{pid}: {eid}: workstation {ws_id} is not at venue {venue_id}")
        for other, other_ws in booked:
            if other_ws == ws_id and other.window.overlaps(project.window):
                out.append(f"{pid}: workstation {ws_id} already booked for {other.id}")

    matched = _quota_matching(experts, project.quotas)
    if matched < (min(len(members), project.drawn_seats) if short
                  else sum(q.count for q in project.quotas)):
        out.append(
            f"{pid}: quotas not met: {matched} of {sum(q.count for q in project.quotas)} "
            "quota seats filled by experts of the right specialty and kind"
        )

    per_venue = Counter(v for _, v, _ in members)
    # The allowed cap costs a pass over the whole pool: only worth it above the configured cap.
    over = any(n > rules.per_venue_cap for n in per_venue.values())
    if offered_cap is not None:
        allowed = max(rules.per_venue_cap, offered_cap)
    else:
        allowed = _allowed_cap(p, project, sittings, booked, rules, today) if over else \
            rules.per_venue_cap
    for venue_id, n in sorted(per_venue.items()):
        if n > allowed:
            out.append(f"{pid}: venue {venue_id} seats {n} members, cap {allowed}")
    rooms: dict[tuple[str, str], list[str]] = defaultdict(list)
    for eid, venue_id, ws_id in members:
        if ws_id in p.workstations:
            rooms[(venue_id, p.workstations[ws_id][1])].append(eid)
    for (venue_id, room), who in sorted(rooms.items()):
        if len(who) > 1:
            out.append(f"{pid}: {sorted(who)} share room {room} at {venue_id}")
    for ws, n in Counter(ws for _, _, ws in members).items():
        if n > 1:
            out.append(f"{pid}: workstation {ws} given to {n} members")
    return out


def _allowed_cap(
    p: _Province,
    project: Project,
    sittings: Sequence[Sitting],
    booked: Sequence[tuple[Project, str]],
    rules: Rules,
    today: date,
) -> int:
    """The per-venue cap the rules allow: the configured cap, unless too few venues can serve.

    A venue can serve if it is a guest venue outside the project's and host's cities with a free
    workstation, and some eligible expert matching a quota has its city in their catchment; it
    can seat at most one member per room with a free workstation. The cap is the least value
    (not below the configured one) at which those venues can seat the whole committee.
    """
    host_city = p.sites[project.host_site_id].city
    barred = {project.city, host_city}
    busy = {ws for other, ws in booked if other.window.overlaps(project.window)}
    served: set[str] = set()
    for expert in p.experts.values():
        if not any(_fits(expert, q) for q in project.quotas):
            continue
        if expert_breaches(p, project, expert, sittings, rules, today):
            continue
        served.update((expert.city,) if rules.catchment == "own_city" else expert.catchment_cities)
    room_counts: list[int] = []
    for site_id, venue in p.venues.values():
        site = p.sites[site_id]
        if "guest" not in site.roles or venue.city in barred or site.city in barred:
            continue
        if venue.city not in served:
            continue
        rooms = {ws.room_id for ws in venue.workstations if ws.id not in busy}
        if rooms:
            room_counts.append(len(rooms))
    seats = project.drawn_seats
    cap = rules.per_venue_cap
    while sum(min(cap, r) for r in room_counts) < seats and cap < max(room_counts, default=0):
        cap += 1
    return cap


def cap_on_offers(inputs: DrawInputs) -> int:
    """The per-venue cap one recorded draw's own offers allow, counted again from them.

    The venues it was offered that some candidate matching a seat's quota (not excluded)
    serves, each with its rooms not used by members who stay; the cap is the configured one,
    raised to the least value at which those venues (less the members already seated there)
    hold every seat to fill, and no higher than the largest useful value.
    """
    quotas = [inputs.project.quotas[i] for i in sorted(set(inputs.seat_quotas()))]
    served: set[str] = set()
    for c in inputs.resolved_candidates():
        if c.expert_id in inputs.exclude:
            continue
        if any((q.kind is None or c.kind == q.kind) and any(_under(code, q)
                                                          for code in c.specialties)
               for q in quotas):
            served.update(c.catchment_cities)
    seated = Counter(venue for venue, _ in inputs.occupied)
    used = set(inputs.occupied)
    venues: list[tuple[int, int]] = []  # (members seated, usable rooms)
    for offer in inputs.resolved_venues():
        rooms = {room for _, room in offer.free if (offer.venue_id, room) not in used}
        if offer.city in served and rooms:
            venues.append((seated[offer.venue_id], len(rooms)))
    seats = len(inputs.seat_quotas())
    cap = inputs.per_venue_cap
    useful = max((n + r for n, r in venues), default=0)
    while sum(max(0, min(cap - n, r)) for n, r in venues) < seats and cap < useful:
        cap += 1
    return cap
