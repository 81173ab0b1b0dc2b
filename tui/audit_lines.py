"""The audit feed as a person reads it: local time, what happened in words, on what, by whom.

The coordinator's events carry a kind (`seat.no_show`) and compact JSON; the console shows one
line of at most 80 columns per event, never the raw JSON.
"""

from __future__ import annotations

import json
from typing import Any

from tui.operator_client import AuditEvent
from tui.states import PROVINCE_TZ

PHRASES = {
    "allocation.unsealed": "allocation unsealed",
    "certificate.revoked": "certificate revoked",
    "checkin.refused": "desk check-in refused",
    "clarification.answered": "question answered",
    "clarification.asked": "question to a bidder",
    "coordinator.recovered": "coordinator recovered",
    "draw.abandoned": "draw abandoned",
    "draw.booking_conflict": "draw: booking conflict",
    "draw.committed": "draw seed committed",
    "draw.placed": "committee drawn",
    "draw.recovered": "draw recovered",
    "draw.refused": "draw refused",
    "draw.rolled_back": "draw rolled back",
    "draw.seed_revealed": "draw seed revealed",
    "draw.starved": "draw: too few experts",
    "evaluation.reported": "evaluation closed",
    "evaluation.started": "evaluation started",
    "expert.checked_in": "expert checked in",
    "expert.signed_in": "expert signed in",
    "fault.closed": "site failure closed",
    "fault.decided": "site failure decided",
    "fault.decision_due": "site failure: decide",
    "fault.incident_opened": "site failure opened",
    "materials.sealed": "materials sealed",
    "notice.accepted": "notice accepted",
    "notice.declined": "notice declined",
    "plan.committed": "day plan committed",
    "plan.completed": "day plan completed",
    "plan.failed": "day plan failed",
    "project.registered": "project registered",
    "seat.moved": "seat moved",
    "seat.no_show": "no-show",
    "seat_pass.sent": "seat passes sent",
    "seed.fallback": "day seed without supervisor",
    "seed.fixed": "day seed fixed",
    "seed.revealed": "day seed revealed",
    "sheet.returned": "sheet returned",
    "sheet.signed": "sheet signed",
    "signin.repeated": "repeated sign-in",
    "signin.unlocked": "sign-in unlocked",
    "site.connected": "site connected",
    "site.disconnected": "site disconnected",
    "site.registered": "site registered",
    "workstation.activation_issued": "enrolment code issued",
    "workstation.enrol_refused": "enrolment refused",
    "workstation.enrolled": "workstation enrolled",
}
ALARMING = ("refused", "no_show", "declined", "starved", "conflict", "left", "recused",
            "disconnected", "failed", "revoked", "abandoned", "rolled_back", "decision_due",
            "fallback")


def phrase(kind: str) -> str:
    """An event kind in words; an unknown kind still reads as words, not as a code."""
    return PHRASES.get(kind) or kind.replace(".", ": ", 1).replace("_", " ")


def _detail(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def actor(detail: dict[str, Any]) -> str:
    """Who acted, as far as the event says: an operator, a site, a member (opaque), a seat."""
    for key, label in (("by", "by"), ("operator", "by"), ("site", "site"),
                       ("expert_ref", "member"), ("session", "seat")):
        value = detail.get(key)
        if isinstance(value, str) and value:
            return f"{label} {value}"
    return ""


def alarming(kind: str) -> bool:
    return any(word in kind for word in ALARMING)


def audit_line(event: AuditEvent, width: int = 80) -> str:
    """`HH:MM:SS  phrase  subject  actor (reason)` in the province's time, cut to `width`."""
    detail = _detail(event.detail)
    who = actor(detail)
    reason = detail.get("reason")
    if isinstance(reason, str) and reason:  # the why first: an id may be cut, not the why
        who = f"{reason}; {who}" if who else reason
    at = event.at.astimezone(PROVINCE_TZ).strftime("%H:%M:%S")
    line = f"{at}  {phrase(event.kind):<20} {event.subject:<15} {who}".rstrip()
    return line if len(line) <= width else line[: width - 1] + "~"
