"""The operator's derived views, as pure functions of one `GridView`: no I/O, no widgets.

The coordinator sends facts (seat states, workstation states, the clock); what counts as an
exception, and which supplementary draw resolves it, is decided here so it is unit-testable
and every console agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from evalgrid.i18n import N_, _
from tui.operator_client import GridView, ProjectRow, SeatRow
from tui.states import hhmm

# A member who signs in this long after the window opened is recorded as late; one who has
# not signed in by then is a no-show (before that, merely awaited).
LATE_AFTER = timedelta(minutes=15)
WAITING = ("notified", "accepted")
SEATED = ("signed_in", "signed")
DEPARTED = {"declined": "decline", "left": "leave", "no_show": "no-show", "recused": "recusal",
            "displaced": "displaced"}
IN_USE = ("reserved", "signed_in", "evaluating")


@dataclass(frozen=True)
class Issue:
    """One row of the exceptions queue."""

    key: str
    # no_show | awaited | fault | site_offline | late | decline | leave | no-show | recusal
    # | incident | seed wait
    kind: str
    project_id: str
    session_id: str
    site_id: str
    workstation_id: str
    status: str  # the seat's status, or the workstation's state for a fault without a seat
    detail: str
    action: str = ""  # the ReplaceMember reason that resolves it ("no_show" | "leave"), if any
    open: bool = True  # needs attention; closed rows are history (declines already redrawn)
    since: datetime | None = None
    sites: tuple[str, ...] = ()  # an incident's sites concerned (an overdue one's: several)


def _draw_reason(project: ProjectRow) -> str:
    """A supplementary draw is a `leave` before opening and a `no_show` once evaluating."""
    return {"drawn": "leave", "evaluating": "no_show"}.get(project.state, "")


def _active(seats: list[SeatRow]) -> int:
    return sum(1 for s in seats if s.status not in DEPARTED)


def _seat_issue(kind: str, seat: SeatRow, *, detail: str, action: str = "", open: bool = True,
                since: datetime | None = None) -> Issue:
    return Issue(key=f"{kind}:{seat.project_id}:{seat.session_id}", kind=kind,
                 project_id=seat.project_id, session_id=seat.session_id, site_id=seat.site_id,
                 workstation_id=seat.workstation_id, status=seat.status, detail=detail,
                 action=action, open=open, since=since)


def exceptions_queue(view: GridView) -> list[Issue]:
    """Declines, no-shows, faults, sites offline and late sign-ins; actionable ones first."""
    projects = {p.project_id: p for p in view.projects}
    sites = {s.site_id: s for s in view.sites}
    flagged = {(s.site_id, f.workstation_id): f for s in view.sites for f in s.flagged}
    by_project: dict[str, list[SeatRow]] = {}
    for seat in view.seats:
        by_project.setdefault(seat.project_id, []).append(seat)
    issues: list[Issue] = []
    covered: set[tuple[str, str]] = set()
    for project_id, seats in by_project.items():
        project = projects.get(project_id)
        if project is None:
            continue
        short = project.drawn_seats - _active(seats)
        for seat in seats:
            flag = flagged.get((seat.site_id, seat.workstation_id))
            site = sites.get(seat.site_id)
            if seat.status in DEPARTED:
                issues.append(_seat_issue(
                    DEPARTED[seat.status], seat, open=short > 0,
                    detail=_("redrawn") if short <= 0 else _("committee short by {n}").format(
                        n=short)))
                continue
            covered.add((seat.site_id, seat.workstation_id))
            if seat.status in WAITING:
                reason = _draw_reason(project)
                if flag is not None:
                    issues.append(_seat_issue(
                        "fault", seat, action=reason, since=project.start,
                        detail=_("workstation {state}").format(state=_(flag.state))
                        + (f": {flag.detail}" if flag.detail else "")))
                elif site is not None and not site.online:
                    issues.append(_seat_issue(
                        "site_offline", seat, action=reason, since=project.start,
                        detail=_("guest site {link}").format(link=_(site.link or "offline"))))
                elif project.state == "evaluating" and view.now >= project.start + LATE_AFTER:
                    issues.append(_seat_issue(
                        "no_show", seat, action=reason, since=project.start,
                        detail=_("not signed in since {time}").format(time=hhmm(project.start))))
                elif project.state == "evaluating" and view.now >= project.start:
                    # Within the grace period: expected, not yet an exception to act on.
                    issues.append(_seat_issue(
                        "awaited", seat, open=False, since=project.start,
                        detail=_("not signed in yet; a no-show after {time}").format(
                            time=hhmm(project.start + LATE_AFTER))))
            elif seat.status in SEATED:
                if flag is not None:
                    issues.append(_seat_issue(
                        "fault", seat, since=project.start,
                        detail=_("workstation {state} during evaluation "
                                 "(resumes if fixed within 4 h)").format(state=_(flag.state))))
                late = seat.signed_in_at
                if late is not None and late > project.start + LATE_AFTER:
                    minutes = int((late - project.start).total_seconds() // 60)
                    issues.append(_seat_issue("late", seat, open=False, since=late,
                                              detail=_("signed in {time}, {n} min late").format(
                                                  time=hhmm(late), n=minutes)))
    for site in view.sites:
        for flag in site.flagged:
            if (site.site_id, flag.workstation_id) in covered:
                continue
            issues.append(Issue(
                key=f"fault:{site.site_id}:{flag.workstation_id}", kind="fault",
                project_id="", session_id="", site_id=site.site_id,
                workstation_id=flag.workstation_id, status=flag.state,
                detail=_("workstation {state}, no session").format(state=_(flag.state))
                + (f": {flag.detail}" if flag.detail else "")))
    issues.extend(incident_issues(view))
    issues.extend(seed_wait_issues(view))
    start = {p.project_id: p.start for p in view.projects}
    far = datetime.max.replace(tzinfo=view.now.tzinfo)
    issues.sort(key=lambda i: (not i.open, not i.action, start.get(i.project_id, far),
                               i.project_id, i.kind, i.site_id, i.workstation_id))
    return issues


def seed_wait_issues(view: GridView) -> list[Issue]:
    """Days whose draws wait on the supervisor's seed share (coordinator/seed_shares.py):
    nothing is drawn for them until it is revealed, or the audited fallback comes."""
    return [Issue(
        key=f"seed:{w.day}", kind="seed wait", project_id="", session_id="", site_id="-",
        workstation_id="", status=w.state,
        detail=f"{w.day[5:]}: supervisor's share "
        + ("not committed" if w.state == "awaiting" else "not revealed")
        + (f"; fallback {hhmm(w.fallback_at)}" if w.fallback_at else ""))
        for w in view.seed_waits]


INCIDENT_OPEN = ("awaiting_repair", "decision_due", "waiting")
RULE = {"before_evaluation": N_("2 h from the window start"),
        "during_evaluation": N_("4 h from the failure")}


def incident_issues(view: GridView) -> list[Issue]:
    """Site failures at or during a window (DOMAIN "Faults"): the rules' clock and what is
    left to decide (`Operator.DecideIncident`); closed ones as history."""
    issues = []
    for incident in view.incidents:
        if incident.state == "awaiting_repair":
            left = max(incident.deadline - view.now, timedelta(0))
            minutes = int(left.total_seconds() // 60)
            detail = f"{incident.cause}: " + _("repair by {time} ({rule}; {left} left)").format(
                time=hhmm(incident.deadline), rule=_(RULE.get(incident.phase, "")),
                left=f"{minutes // 60}:{minutes % 60:02d}")
        elif incident.state in ("decision_due", "waiting"):
            who = _("the tenderer decides") if incident.phase == "before_evaluation" \
                else _("a new committee re-evaluates")
            detail = f"{incident.cause}: " + _("not repaired by {time}; {who} ({allowed})").format(
                time=hhmm(incident.deadline), who=who, allowed=" / ".join(incident.allowed))
        else:
            detail = f"{incident.cause}: {_(incident.state.replace('_', ' '))}"

        issues.append(Issue(
            key=f"incident:{incident.incident_id}", kind="incident",
            project_id=incident.project_id, session_id="", site_id=incident.site_id,
            workstation_id="", status=incident.state, detail=detail,
            open=incident.state in INCIDENT_OPEN, since=incident.failed_at,
            sites=incident.sites))
    return issues


@dataclass(frozen=True)
class CityUse:
    city: str
    sites: int
    online: int
    workstations: int
    in_use: int
    fault: int
    offline: int


def city_use(view: GridView) -> list[CityUse]:
    """Workstation use by city; a site that is offline counts all its workstations offline."""
    rows: dict[str, list[int]] = {}
    for site in view.sites:
        row = rows.setdefault(site.city, [0, 0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += site.online
        row[2] += site.workstations
        row[3] += sum(site.states.get(s, 0) for s in IN_USE)
        row[4] += site.states.get("fault", 0)
        row[5] += site.states.get("offline", 0) if site.online else site.workstations
    return [CityUse(city, *row) for city, row in sorted(rows.items())]


@dataclass(frozen=True)
class ProjectLine:
    project: ProjectRow
    seated: int  # active members
    draws: int  # the first draw and its supplementary draws
    issues: int  # open exceptions


def project_lines(view: GridView, issues: list[Issue]) -> list[ProjectLine]:
    seats: dict[str, list[SeatRow]] = {}
    for seat in view.seats:
        seats.setdefault(seat.project_id, []).append(seat)
    open_issues: dict[str, int] = {}
    for issue in issues:
        if issue.open and issue.project_id:
            open_issues[issue.project_id] = open_issues.get(issue.project_id, 0) + 1
    return [ProjectLine(p, _active(seats.get(p.project_id, [])),
                        len({s.draw_id for s in seats.get(p.project_id, []) if s.draw_id}),
                        open_issues.get(p.project_id, 0)) for p in view.projects]


def matches(query: str, *fields: str) -> bool:
    """Search by project or site: a case-insensitive substring of any field."""
    needle = query.strip().lower()
    return not needle or any(needle in f.lower() for f in fields)
