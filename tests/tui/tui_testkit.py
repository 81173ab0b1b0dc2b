"""Fakes of the console clients and a plain-text screenshot, for the Pilot tests.

The fakes keep every call they receive and let a test push the next board or grid view
through the same async-iterator seam the gRPC clients use.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.console import Console
from textual.app import App

from tui.client_errors import ClientError
from tui.operator_client import (
    AuditEvent,
    Flagged,
    GridView,
    ProjectRow,
    SeatRow,
    SiteRow,
    StoryLine,
)
from tui.operator_service import CityServiceRow, HalfDay, ServiceView, SiteServiceRow
from tui.site_client import Board, CheckedIn, Session, Workstation

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in the province (UTC+8)
END = START + timedelta(hours=3)


def screen_text(app: App[Any]) -> str:
    """The screen as plain text, trailing blanks cut (what `export_screenshot` draws as SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


# --- the site console ----------------------------------------------------------------------


def sample_board(connected: bool = True) -> Board:
    """Two rooms: free, reserved, signed in, evaluating, fault and offline are all there."""
    room1, room2 = "S0001-V1-R01", "S0001-V1-R02"
    ws = [
        Workstation(f"{room1}-W01", room1, "Room 301", "free"),
        Workstation(f"{room1}-W02", room1, "Room 301", "reserved", "ses-00000000000000a2",
                    START, END),
        Workstation(f"{room1}-W03", room1, "Room 301", "signed_in", "ses-00000000000000a3",
                    START, END),
        Workstation(f"{room2}-W01", room2, "Room 302", "evaluating", "ses-00000000000000b1",
                    START, END),
        Workstation(f"{room2}-W02", room2, "Room 302", "fault", "", None, None, "no power"),
        Workstation(f"{room2}-W03", room2, "Room 302", "offline"),
    ]
    sessions = tuple(Session(w.session_id, w.workstation_id, w.room_id, START, END)
                     for w in ws if w.session_id)
    return Board("S0001", connected, tuple(ws), sessions)


def with_state(board: Board, workstation_id: str, state: str, detail: str = "") -> Board:
    return replace(board, workstations=tuple(
        replace(w, state=state, detail=detail) if w.workstation_id == workstation_id else w
        for w in board.workstations))


@dataclass
class FakeSiteClient:
    """A desk whose board the test controls; `mark` changes it like the agent would."""

    board: Board = field(default_factory=sample_board)
    checkins: dict[tuple[str, str], CheckedIn] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    boards: asyncio.Queue[Board | Exception] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def __post_init__(self) -> None:
        self.boards.put_nowait(self.board)

    def push(self, board: Board | Exception) -> None:
        if isinstance(board, Board):
            self.board = board
        self.boards.put_nowait(board)

    async def watch_board(self) -> AsyncIterator[Board]:
        while True:
            item = await self.boards.get()
            if isinstance(item, Exception):
                raise item
            yield item

    async def check_in(self, id_number: str, code: str) -> CheckedIn:
        self.calls.append(("check_in", (id_number, code)))
        found = self.checkins.get((id_number, code))
        if found is None:
            raise ClientError("code: no reserved seat at this site matches this identity "
                              "and code", code="PERMISSION_DENIED")
        return found

    async def mark(self, workstation_id: str, fault: bool, detail: str = "") -> str:
        self.calls.append(("mark", (workstation_id, fault, detail)))
        old = next(w for w in self.board.workstations if w.workstation_id == workstation_id)
        state = "fault" if fault else ("reserved" if old.session_id else "free")
        self.push(with_state(self.board, workstation_id, state, detail if fault else ""))
        return state

    async def close(self) -> None:
        self.closed = True


# --- the operator console ------------------------------------------------------------------


def sample_grid(now: datetime = START + timedelta(minutes=20)) -> GridView:
    """Three sites in two cities, three projects; an evaluating one has a no-show seat,
    a late sign-in, a declined seat (redrawn) and a seat on a faulty workstation."""
    sites = (
        SiteRow("S0001", "Hangzhou Centre", "Hangzhou", True, 4,
                {"free": 1, "reserved": 1, "signed_in": 1, "fault": 1},
                (Flagged("S0001-V1-R01-W04", "fault", "no power"),)),
        SiteRow("S0002", "Ningbo Centre", "Ningbo", True, 3, {"free": 2, "signed_in": 1}),
        SiteRow("S0003", "Wenzhou Centre", "Wenzhou", False, 2, {"free": 2}),
    )
    projects = (
        ProjectRow("P20260302-0001", "Civic Centre Property Services", "evaluating", "S0003",
                   START, START + timedelta(hours=3), 5),
        ProjectRow("P20260302-0002", "Harbour Road Resurfacing", "drawn", "S0002",
                   START + timedelta(hours=5), START + timedelta(hours=8), 5),
        ProjectRow("P20260302-0003", "School Laptops", "registered", "S0001",
                   START + timedelta(hours=6), START + timedelta(hours=9), 5),
    )
    p1, p2 = "P20260302-0001", "P20260302-0002"
    seats = (
        SeatRow(p1, "ses-0000000000000001", "exp-1", "signed_in", "S0001", "S0001-V1-R01-W01",
                signed_in_at=START + timedelta(minutes=2), draw_id="d1"),
        SeatRow(p1, "ses-0000000000000002", "exp-2", "accepted", "S0002", "S0002-V1-R01-W01",
                draw_id="d1"),
        SeatRow(p1, "ses-0000000000000003", "exp-3", "signed", "S0002", "S0002-V1-R01-W02",
                signed_in_at=START + timedelta(minutes=18), draw_id="d1"),
        SeatRow(p1, "ses-0000000000000004", "exp-4", "declined", "S0001", "S0001-V1-R01-W02",
                draw_id="d1"),
        SeatRow(p1, "ses-0000000000000005", "exp-5", "signed_in", "S0001", "S0001-V1-R01-W03",
                signed_in_at=START, draw_id="d2"),
        SeatRow(p1, "ses-0000000000000006", "exp-6", "signed_in", "S0002", "S0002-V1-R01-W03",
                signed_in_at=START, draw_id="d1"),
        SeatRow(p2, "ses-0000000000000007", "exp-7", "notified", "S0001", "S0001-V1-R01-W04",
                draw_id="d3"),
        SeatRow(p2, "ses-0000000000000008", "exp-8", "accepted", "S0002", "S0002-V1-R01-W01",
                draw_id="d3"),
    )
    return GridView(now=now, sites=sites, projects=projects, seats=seats, experts=1200,
                    audit_head=42)


def sample_events() -> list[AuditEvent]:
    return [
        AuditEvent(40, "draw.placed", "P20260302-0001", START - timedelta(hours=6),
                   '{"draw_id":"d1","seats":5}'),
        AuditEvent(41, "site.connected", "S0002", START - timedelta(hours=5), "{}"),
        AuditEvent(42, "expert.signed_in", "P20260302-0001", START,
                   '{"expert_ref":"exp-1"}'),
    ]


def sample_story(project_id: str) -> list[StoryLine]:
    """A drawn project whose first member declined and was replaced."""
    draw = START - timedelta(days=1)
    return [
        StoryLine(draw, "", "draw placed", "registered", "drawn", "drw-0000000000000003"),
        StoryLine(draw + timedelta(hours=2), "ses-0000000000000006", "departed (declined)",
                  "notified", "declined", "req-1"),
        StoryLine(draw + timedelta(hours=3), "ses-0000000000000008", "notice accepted",
                  "notified", "accepted", "req-2"),
    ] if project_id.endswith("2") else []
def sample_service(start: date, end: date, now: datetime = START + timedelta(minutes=20)
                   ) -> ServiceView:
    """The sample grid's sites served: Hangzhou two sites (one with an outage), Ningbo one."""
    day = START.date()
    sites = (
        SiteServiceRow("S0001", "Hangzhou", 4, 2, 5, 1,
                       (HalfDay(day, "AM", 3), HalfDay(day, "PM", 1)),
                       outages=1, outage_minutes=12.0, seats_moved=1),
        SiteServiceRow("S0004", "Hangzhou", 6, 1, 2, 0, (HalfDay(day, "AM", 2),)),
        SiteServiceRow("S0002", "Ningbo", 3, 1, 3, 1, (HalfDay(day, "AM", 3),),
                       incidents=1, incident_minutes=35.0),
    )
    cities = (CityServiceRow("Hangzhou", 2, 10, 3, 7, 1, 1, 12.0),
              CityServiceRow("Ningbo", 1, 3, 1, 3, 1, 0, 0.0, 1, 35.0))
    return ServiceView(start, end, now, sites, cities)


@dataclass
class FakeOperatorClient:
    grid: GridView = field(default_factory=sample_grid)
    events: list[AuditEvent] = field(default_factory=sample_events)
    outcome: str = "no_show-redrawn"
    step_answer: str = "done"
    step_refusal: Exception | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    grids: asyncio.Queue[GridView | Exception] = field(default_factory=asyncio.Queue)
    audit: asyncio.Queue[AuditEvent] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def __post_init__(self) -> None:
        self.grids.put_nowait(self.grid)
        for event in self.events:
            self.audit.put_nowait(event)

    def push(self, item: GridView | AuditEvent | Exception) -> None:
        if isinstance(item, AuditEvent):
            self.audit.put_nowait(item)
        else:
            self.grids.put_nowait(item)

    async def watch_grid(self) -> AsyncIterator[GridView]:
        while True:
            item = await self.grids.get()
            if isinstance(item, Exception):
                raise item
            yield item

    async def watch_audit(self, *, after: int = 0, tail: int = 0) -> AsyncIterator[AuditEvent]:
        self.calls.append(("watch_audit", (after, tail)))
        while True:
            event = await self.audit.get()
            if event.seq > after:
                yield event

    async def replace_member(self, project_id: str, session_id: str, reason: str,
                             note: str) -> str:
        self.calls.append(("replace_member", (project_id, session_id, reason, note)))
        return self.outcome

    async def project_story(self, project_id: str, last: int) -> list[StoryLine]:
        self.calls.append(("project_story", (project_id, last)))
        return sample_story(project_id)[-last:]

    async def step(self, name: str, fields: Mapping[str, str]) -> str:
        self.calls.append(("step", (name, dict(fields))))
        if self.step_refusal is not None:
            raise self.step_refusal
        return self.step_answer

    async def service_stats(self, start: date, end: date) -> ServiceView:
        self.calls.append(("service_stats", (start, end)))
        if self.step_refusal is not None:
            raise self.step_refusal
        return sample_service(start, end)

    async def close(self) -> None:
        self.closed = True
