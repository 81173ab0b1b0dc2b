"""How a workstation state looks on a console: one colour and one label per state.

Each state also has a one-letter mark, so the board reads on a monochrome terminal too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

# The province runs on one local time (UTC+8); consoles show it, whatever the machine's zone.
from evalgrid.clock import PROVINCE_TZ as PROVINCE_TZ
from evalgrid.i18n import N_, _


@dataclass(frozen=True)
class StateLook:
    label_id: str  # the English label, the catalogue's key
    mark: str
    style: str  # a Rich style: the chip on the board and the state cell in tables

    @property
    def label(self) -> str:
        """The label in the console's language."""
        return _(self.label_id)


STATES: dict[str, StateLook] = {
    "free": StateLook(N_("free"), " ", "black on green"),
    "reserved": StateLook(N_("reserved"), "R", "black on yellow"),
    "signed_in": StateLook(N_("signed in"), "S", "white on blue"),
    "evaluating": StateLook(N_("evaluating"), "E", "white on dark_magenta"),
    "fault": StateLook(N_("fault"), "X", "bold white on red"),
    "offline": StateLook(N_("offline"), "-", "white on grey37"),
}
UNKNOWN = StateLook(N_("unknown"), "?", "reverse")



def look(state: str) -> StateLook:
    return STATES.get(state, UNKNOWN)


def hhmm(when: datetime | None, tz: tzinfo = PROVINCE_TZ) -> str:
    return when.astimezone(tz).strftime("%H:%M") if when else ""


def window_text(start: datetime | None, end: datetime | None, tz: tzinfo = PROVINCE_TZ) -> str:
    """`03-02 09:00-12:00` in province time; empty without a window."""
    if start is None or end is None:
        return ""
    return f"{start.astimezone(tz):%m-%d %H:%M}-{end.astimezone(tz):%H:%M}"


def short_workstation(workstation_id: str, room_id: str) -> str:
    """`S0001-V1-R01-W03` in room `S0001-V1-R01` shows as `W03` on the room's line."""
    prefix = room_id + "-"
    return workstation_id[len(prefix):] if workstation_id.startswith(prefix) else workstation_id
