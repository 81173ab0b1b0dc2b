"""Alerts for the desk, derived from two successive boards (pure: unit-tested alone).

The agent streams the board; what changed between two boards is what staff must notice:
the coordinator link, faults, booths going offline, sign-ins, sessions placed or released.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalgrid.i18n import N_, _
from tui.site_client import Board, Workstation
from tui.states import window_text

LINK_DOWN = N_("coordinator link lost: check-in and sign-in are unavailable")


@dataclass(frozen=True)
class Alert:
    level: str  # error | warning | info | ok
    text: str


def _name(ws: Workstation) -> str:
    return f"{ws.workstation_id} ({ws.room_name or ws.room_id})"


def board_alerts(old: Board | None, new: Board) -> list[Alert]:
    if old is None:
        alerts = [] if new.coordinator_connected else [Alert("error", _(LINK_DOWN))]
        alerts += [Alert("warning", _("{workstation} is marked faulty").format(
                         workstation=_name(w)) + (f": {w.detail}" if w.detail else ""))
                   for w in new.workstations if w.state == "fault"]
        return alerts
    alerts = []
    if old.coordinator_connected and not new.coordinator_connected:
        alerts.append(Alert("error", _(LINK_DOWN)))
    elif new.coordinator_connected and not old.coordinator_connected:
        alerts.append(Alert("ok", _("coordinator link restored")))
    before = {w.workstation_id: w for w in old.workstations}
    for ws in new.workstations:
        prev = before.get(ws.workstation_id)
        if prev is None or prev.state == ws.state:
            continue
        if ws.state == "fault":
            alerts.append(Alert("warning", _("{workstation} marked faulty").format(
                workstation=_name(ws)) + (f": {ws.detail}" if ws.detail else "")))
        elif prev.state == "fault":
            alerts.append(Alert("ok", _("{workstation} back in service").format(
                workstation=_name(ws))))
        elif ws.state == "offline":
            alerts.append(Alert("warning", _("{workstation} went offline").format(
                workstation=_name(ws))))
        elif prev.state == "offline":
            alerts.append(Alert("ok", _("{workstation} back online").format(
                workstation=_name(ws))))
        elif ws.state == "signed_in":
            alerts.append(Alert("info", _("expert signed in at {workstation}").format(
                workstation=_name(ws))))
        elif ws.state == "evaluating":
            alerts.append(Alert("info", _("sheet signed at {workstation}").format(
                workstation=_name(ws))))
    held = {s.session_id for s in old.sessions}
    now_held = {s.session_id for s in new.sessions}
    for s in new.sessions:
        if s.session_id not in held:
            alerts.append(Alert("info", _("session {session} reserved on {workstation}, "
                                          "{window}").format(
                session=s.session_id, workstation=s.workstation_id,
                window=window_text(s.start, s.end))))
    for s in old.sessions:
        if s.session_id not in now_held:
            alerts.append(Alert("info", _("session {session} released").format(
                session=s.session_id)))

    return alerts
