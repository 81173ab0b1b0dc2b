"""DOMAIN "Faults" as pure rules: what a failed guest site means for a project, and when.

- Before the window opens, a failure is repaired by the draw: the member moves to a spare
  workstation at the venue, else venue and member are redrawn (a supplementary draw). No one
  has to decide anything.
- At the window, before the evaluation is under way: the project waits for the repair; if the
  site is not fixed within 2 hours of the window start, the tenderer decides between waiting
  (longer) and postponing (materials sealed, a new committee drawn).
- During the evaluation: it resumes if the site is fixed within 4 hours of the failure; after
  that the materials are sealed and a new committee re-evaluates.

"Under way" means a member of the committee has signed in: from then on, scores exist that
must not be lost, and the 4-hour rule applies. "Within" includes the limit itself: a repair
at exactly 2:00 (or 4:00) is in time; a decision is open only once the limit has passed.
No I/O, no clock: every call takes `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from coordinator.domain.rules import FaultRules, packaged_rules

# The limits live in the rules file's `[faults]` table; these are the packaged v1 values.
WAIT_LIMIT = packaged_rules().faults.wait_limit  # before evaluation: from the window start
RESUME_LIMIT = packaged_rules().faults.resume_limit  # during evaluation: from the failure


class Phase(StrEnum):
    BEFORE_WINDOW = "before_window"
    BEFORE_EVALUATION = "before_evaluation"
    DURING_EVALUATION = "during_evaluation"


class Response(StrEnum):
    REDRAW = "redraw"  # automatic: move to a spare, else a supplementary draw
    AWAIT_REPAIR = "await_repair"  # an incident, with its deadline, then a decision


class Decision(StrEnum):
    WAIT = "wait"
    POSTPONE = "postpone"
    REEVALUATE = "reevaluate"


class IncidentState(StrEnum):
    AWAITING_REPAIR = "awaiting_repair"
    DECISION_DUE = "decision_due"
    WAITING = "waiting"  # the tenderer chose to wait past the 2 hours
    RESUMED = "resumed"
    POSTPONED = "postponed"
    REEVALUATED = "reevaluated"  # a new committee re-evaluates


OPEN_STATES = frozenset({IncidentState.AWAITING_REPAIR, IncidentState.DECISION_DUE,
                         IncidentState.WAITING})


class FaultRuleError(ValueError):
    """A decision the rules do not allow (yet); the message names the field and the reason."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def phase_of(window_start: datetime, at: datetime, evaluation_begun: bool) -> Phase:
    if evaluation_begun:
        return Phase.DURING_EVALUATION
    return Phase.BEFORE_WINDOW if at < window_start else Phase.BEFORE_EVALUATION


def response_to(phase: Phase) -> Response:
    """A failure before the window is redrawn; at or during it, the rules' clock runs."""
    return Response.REDRAW if phase is Phase.BEFORE_WINDOW else Response.AWAIT_REPAIR


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    if minutes % 60:
        return f"{minutes} minutes"
    return f"{minutes // 60} hour{'s' if minutes != 60 else ''}"


def hhmm(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision: Decision
    at: datetime
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: str
    project_id: str
    site_id: str
    phase: Phase  # BEFORE_EVALUATION also covers a failure before the window not redrawn
    cause: str
    window_start: datetime
    failed_at: datetime
    deadline: datetime
    state: IncidentState = IncidentState.AWAITING_REPAIR
    repaired_at: datetime | None = None
    decisions: tuple[DecisionRecord, ...] = field(default=())
    workstation_id: str = ""  # set when one workstation failed, not the whole site
    # The guest sites concerned: the failed site, or, for an overdue evaluation (no one site
    # failed: site_id ""), the sites whose members left their sheets unsigned.
    sites: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def limit(self) -> str:
        """The rule that set the deadline, in words (the limit is the rules file's)."""
        if self.phase is Phase.DURING_EVALUATION:
            return f"{_span(self.deadline - self.failed_at)} from the failure"
        return f"{_span(self.deadline - self.window_start)} from the window start"

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id, "project_id": self.project_id,
            "site_id": self.site_id, "phase": self.phase.value, "cause": self.cause,
            "window_start": self.window_start.isoformat(),
            "failed_at": self.failed_at.isoformat(), "deadline": self.deadline.isoformat(),
            "state": self.state.value,
            "repaired_at": self.repaired_at.isoformat() if self.repaired_at else "",
            "decisions": [{"decision": d.decision.value, "at": d.at.isoformat(), "by": d.by,
                           "note": d.note} for d in self.decisions],
            "workstation_id": self.workstation_id, "sites": list(self.sites),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        return cls(
            incident_id=data["incident_id"], project_id=data["project_id"],
            site_id=data["site_id"], phase=Phase(data["phase"]), cause=data["cause"],
            window_start=datetime.fromisoformat(data["window_start"]),
            failed_at=datetime.fromisoformat(data["failed_at"]),
            deadline=datetime.fromisoformat(data["deadline"]),
            state=IncidentState(data["state"]),
            repaired_at=datetime.fromisoformat(data["repaired_at"])
            if data.get("repaired_at") else None,
            decisions=tuple(DecisionRecord(Decision(d["decision"]),
                                           datetime.fromisoformat(d["at"]), d["by"],
                                           d.get("note", ""))
                            for d in data.get("decisions", [])),
            workstation_id=data.get("workstation_id", ""),
            sites=tuple(data.get("sites") or ((data["site_id"],) if data["site_id"] else ())),
        )


def open_incident(incident_id: str, project_id: str, site_id: str, cause: str, *,
                  window_start: datetime, failed_at: datetime, evaluation_begun: bool,
                  now: datetime, workstation_id: str = "",
                  limits: FaultRules | None = None, sites: tuple[str, ...] = ()) -> Incident:
    """An incident for a failure the draw could not repair; reviewed at `now` at once.

    `limits` are the rules in force (the packaged rules' when None); `sites` are the sites
    concerned (the failed site's own when empty)."""
    limits = limits or packaged_rules().faults
    phase = phase_of(window_start, failed_at, evaluation_begun)
    if phase is Phase.DURING_EVALUATION:
        deadline = failed_at + limits.resume_limit
    else:
        phase, deadline = Phase.BEFORE_EVALUATION, window_start + limits.wait_limit
    return review(Incident(incident_id, project_id, site_id, phase, cause, window_start,
                           failed_at, deadline, workstation_id=workstation_id,
                           sites=sites or ((site_id,) if site_id else ())), now)


def review(incident: Incident, now: datetime) -> Incident:
    """Past its deadline and still awaiting repair, an incident needs a decision."""
    if incident.state is IncidentState.AWAITING_REPAIR and now > incident.deadline:
        return replace(incident, state=IncidentState.DECISION_DUE)
    return incident


def repaired(incident: Incident, at: datetime) -> Incident:
    """The site is back. Before evaluation, that ends the wait whenever it happens (until the
    tenderer postpones); during evaluation, only a repair within 4 hours resumes it."""
    if not incident.open:
        return incident
    if incident.phase is Phase.DURING_EVALUATION and at > incident.deadline:
        return replace(incident, state=IncidentState.DECISION_DUE, repaired_at=at)
    return replace(incident, state=IncidentState.RESUMED, repaired_at=at)


def allowed(incident: Incident, now: datetime) -> tuple[Decision, ...]:
    current = review(incident, now)
    if current.state not in (IncidentState.DECISION_DUE, IncidentState.WAITING):
        return ()
    if current.phase is Phase.DURING_EVALUATION:
        return (Decision.REEVALUATE,)
    return (Decision.WAIT, Decision.POSTPONE)


def decide(incident: Incident, decision: str, *, now: datetime, by: str,
           note: str = "") -> Incident:
    """Record the decision the rules leave to people; refuse one they do not (yet) allow."""
    try:
        chosen = Decision(decision)
    except ValueError:
        raise FaultRuleError("decision", f"unknown {decision!r}; one of "
                             f"{', '.join(d.value for d in Decision)}") from None
    current = review(incident, now)
    if not current.open:
        raise FaultRuleError("incident_id", f"{incident.incident_id} is already "
                             f"{current.state.value}")
    if current.state is IncidentState.AWAITING_REPAIR:
        raise FaultRuleError("decision", f"the site has {current.limit} to be repaired (until "
                             f"{current.deadline.isoformat()}); "
                             f"{hhmm(current.deadline - now)} left")
    options = allowed(current, now)
    if chosen not in options:
        raise FaultRuleError("decision", f"{chosen.value} is not open for a failure "
                             f"{current.phase.value.replace('_', ' ')}; allowed: "
                             f"{', '.join(o.value for o in options)}")
    state = {Decision.WAIT: IncidentState.WAITING, Decision.POSTPONE: IncidentState.POSTPONED,
             Decision.REEVALUATE: IncidentState.REEVALUATED}[chosen]
    record = DecisionRecord(chosen, now, by, note.strip())
    return replace(current, state=state, decisions=(*current.decisions, record))
