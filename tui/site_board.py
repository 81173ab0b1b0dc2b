"""The board: the site's workstations room by room, one coloured chip per workstation."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from evalgrid.i18n import _, pad
from tui.site_client import Board, Workstation
from tui.states import STATES, look, short_workstation

LABEL_WIDTH = 11


def rooms_of(board: Board) -> dict[str, list[Workstation]]:
    """Workstations grouped by room, rooms and workstations in id order."""
    rooms: dict[str, list[Workstation]] = {}
    for ws in sorted(board.workstations, key=lambda w: (w.room_id, w.workstation_id)):
        rooms.setdefault(ws.room_id, []).append(ws)
    return rooms


def room_label(room_id: str, workstations: list[Workstation]) -> str:
    name = workstations[0].room_name if workstations else ""
    return name or room_id


def legend() -> Text:
    text = Text()
    for state in STATES.values():
        text.append(f" {state.mark} {state.label} ", style=state.style)
        text.append(" ")
    return text


class BoardMap(Widget):
    """Rooms as lines of chips: the label, then `W03` coloured by state, with the state's mark.

    The chip of the workstation selected in the table below is underlined.
    """

    DEFAULT_CSS = """
    BoardMap { height: auto; max-height: 12; padding: 0 1; }
    """
    board: reactive[Board | None] = reactive(None, layout=True)
    selected: reactive[str] = reactive("")

    def render(self) -> Text:
        board = self.board
        if board is None:
            return Text(_("waiting for the agent..."), style="italic")
        width = max(self.size.width, 40)
        out = Text()
        for room_id, workstations in rooms_of(board).items():
            chips = [self._chip(ws) for ws in workstations]
            per_line = max(1, (width - LABEL_WIDTH) // (max(len(c) for c in chips) + 1))
            for i in range(0, len(chips), per_line):
                label = room_label(room_id, workstations) if i == 0 else ""
                out.append(pad(pad(label, LABEL_WIDTH - 1), LABEL_WIDTH), style="bold")

                for chip in chips[i:i + per_line]:
                    out.append_text(chip)
                    out.append(" ")
                out.append("\n")
        out.append_text(legend())
        return out

    def _chip(self, ws: Workstation) -> Text:
        state = look(ws.state)
        style = state.style + (" underline" if ws.workstation_id == self.selected else "")
        return Text(f"{short_workstation(ws.workstation_id, ws.room_id)}{state.mark}",
                    style=style)
