"""The audit feed as a person reads it: local time, what happened in words, on what, by whom.

The coordinator's events carry a kind (`seat.no_show`) and compact JSON; the console shows one
line of at most 80 columns per event, never the raw JSON.
"""

from __future__ import annotations

import json
from typing import Any

from evalgrid.i18n import N_, _, fit, pad
from tui.operator_client import AuditEvent
from tui.states import PROVINCE_TZ

PHRASES = {
    "allocation.unsealed": N_("allocation unsealed"),
    "certificate.revoked": N_("certificate revoked"),
    "checkin.refused": N_("desk check-in refused"),
    "clarification.answered": N_("question answered"),
    "clarification.asked": N_("question to a bidder"),
    "coordinator.recovered": N_("coordinator recovered"),
    "draw.abandoned": N_("draw abandoned"),
    "draw.booking_conflict": N_("draw: booking conflict"),
    "draw.committed": N_("draw seed committed"),
    "draw.placed": N_("committee drawn"),
    "draw.recovered": N_("draw recovered"),
    "draw.refused": N_("draw refused"),
    "draw.rolled_back": N_("draw rolled back"),
    "draw.seed_revealed": N_("draw seed revealed"),
    "draw.starved": N_("draw: too few experts"),
    "evaluation.reported": N_("evaluation closed"),
    "evaluation.started": N_("evaluation started"),
    "expert.checked_in": N_("expert checked in"),
    "expert.signed_in": N_("expert signed in"),
    "fault.closed": N_("site failure closed"),
    "fault.decided": N_("site failure decided"),
    "fault.decision_due": N_("site failure: decide"),
    "fault.incident_opened": N_("site failure opened"),
    "materials.sealed": N_("materials sealed"),
    "notice.accepted": N_("notice accepted"),
    "notice.declined": N_("notice declined"),
    "plan.committed": N_("day plan committed"),
    "plan.completed": N_("day plan completed"),
    "plan.failed": N_("day plan failed"),
    "project.registered": N_("project registered"),
    "seat.moved": N_("seat moved"),
    "seat.no_show": N_("no-show"),
    "seat_pass.sent": N_("seat passes sent"),
    "sheet.returned": N_("sheet returned"),
    "sheet.signed": N_("sheet signed"),
    "signin.repeated": N_("repeated sign-in"),
    "signin.unlocked": N_("sign-in unlocked"),
    "site.connected": N_("site connected"),
    "site.disconnected": N_("site disconnected"),
    "site.registered": N_("site registered"),
    "workstation.activation_issued": N_("enrolment code issued"),
    "workstation.enrol_refused": N_("enrolment refused"),
    "workstation.enrolled": N_("workstation enrolled"),
    "checkin.locked": N_("desk check-in locked"),
    "conduct.bars_recorded": N_("conduct bar recorded"),
    "conduct.history_read": N_("conduct history read"),
    "conduct.report_written": N_("conduct report written"),
    "conduct.sanction_recorded": N_("sanction recorded"),
    "draw.exported": N_("draw exported"),
    "fault.repaired_late": N_("site failure: late fix"),
    "fault.resumed": N_("evaluation resumed"),
    "inspection.committed": N_("inspection committed"),
    "inspection.drawn": N_("inspection drawn"),
    "notice.resent": N_("notice resent"),
    "notice.withdrawn": N_("notice withdrawn"),
    "plan.seed_revealed": N_("plan seed revealed"),
    "seat.declined": N_("seat declined"),
    "seat.displaced": N_("seat displaced"),
    "seat.left": N_("member left"),
    "seat.recused": N_("member recused"),
    "seed.coordinator_committed": N_("seed share committed"),
    "seed.fallback": N_("day seed without supervisor"),
    "seed.supervisor_committed": N_("supervisor seed committed"),
    "seed.supervisor_revealed": N_("supervisor seed revealed"),
    "signin.locked": N_("sign-in locked"),
    "signin.wrong_window": N_("sign-in outside window"),
    "site.lost": N_("site lost"),
    "site.reconnected": N_("site reconnected"),
    "seed.fixed": N_("day seed fixed"),
    "seed.revealed": N_("day seed revealed"),
}

ALARMING = ("refused", "no_show", "declined", "starved", "conflict", "left", "recused",
            "disconnected", "failed", "revoked", "abandoned", "rolled_back", "decision_due",
            "fallback")


def phrase(kind: str) -> str:
    """An event kind in words; an unknown kind still reads as words, not as a code."""
    known = PHRASES.get(kind)
    return _(known) if known else kind.replace(".", ": ", 1).replace("_", " ")


def _detail(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def actor(detail: dict[str, Any]) -> str:
    """Who acted, as far as the event says: an operator, a site, a member (opaque), a seat."""
    for key, label in (("by", N_("by")), ("operator", N_("by")), ("site", N_("site")),
                       ("expert_ref", N_("member")), ("session", N_("seat"))):
        value = detail.get(key)
        if isinstance(value, str) and value:
            return f"{_(label)} {value}"
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
    line = f"{at}  {pad(phrase(event.kind), 20)} {event.subject:<15} {who}".rstrip()
    return fit(line, width, "~")
