"""Alerts for the desk, derived from two successive boards (pure: unit-tested alone).

The agent streams the board; what changed between two boards is what staff must notice:
the coordinator link, faults, booths going offline, sign-ins, sessions placed or released.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.site_client import Board, Workstation
from tui.states import window_text

LINK_DOWN = "coordinator link lost: check-in and sign-in are unavailable"


@dataclass(frozen=True)
class Alert:
    level: str  # error | warning | info | ok
    text: str


def _name(ws: Workstation) -> str:
    return f"{ws.workstation_id} ({ws.room_name or ws.room_id})"


def board_alerts(old: Board | None, new: Board) -> list[Alert]:
    if old is None:
        alerts = [] if new.coordinator_connected else [Alert("error", LINK_DOWN)]
        alerts += [Alert("warning", f"{_name(w)} is marked faulty"
                         + (f": {w.detail}" if w.detail else ""))
                   for w in new.workstations if w.state == "fault"]
        return alerts
    alerts = []
    if old.coordinator_connected and not new.coordinator_connected:
        alerts.append(Alert("error", LINK_DOWN))
    elif new.coordinator_connected and not old.coordinator_connected:
        alerts.append(Alert("ok", "coordinator link restored"))
    before = {w.workstation_id: w for w in old.workstations}
    for ws in new.workstations:
        prev = before.get(ws.workstation_id)
        if prev is None or prev.state == ws.state:
            continue
        if ws.state == "fault":
            alerts.append(Alert("warning", f"{_name(ws)} marked faulty"
                                + (f": {ws.detail}" if ws.detail else "")))
        elif prev.state == "fault":
            alerts.append(Alert("ok", f"{_name(ws)} back in service"))
        elif ws.state == "offline":
            alerts.append(Alert("warning", f"{_name(ws)} went offline"))
        elif prev.state == "offline":
            alerts.append(Alert("ok", f"{_name(ws)} back online"))
        elif ws.state == "signed_in":
            alerts.append(Alert("info", f"expert signed in at {_name(ws)}"))
        elif ws.state == "evaluating":
            alerts.append(Alert("info", f"sheet signed at {_name(ws)}"))
    held = {s.session_id for s in old.sessions}
    now_held = {s.session_id for s in new.sessions}
    for s in new.sessions:
        if s.session_id not in held:
            alerts.append(Alert("info", f"session {s.session_id} reserved on "
                                f"{s.workstation_id}, {window_text(s.start, s.end)}"))
    for s in old.sessions:
        if s.session_id not in now_held:
            alerts.append(Alert("info", f"session {s.session_id} released"))
    return alerts
