"""Every console screen at 80x24 as text, against a reviewed snapshot (tests/tui/snapshots).

A change to a screen shows here as a diff to review; `EVALGRID_UPDATE_SNAPSHOTS=1` rewrites
the files after review. Each screen is also checked for what must never happen at 80x24: a
line over 80 columns, a name or a no-show time cut, a key an auditor must not have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.app import App
from textual.pilot import Pilot
from tui_testkit import START, FakeOperatorClient, FakeSiteClient, sample_grid, screen_text

from tui.operator_app import OperatorConsole
from tui.operator_client import SeedWaitRow
from tui.site_app import SiteConsole
from tui.states import hhmm

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
SIZE = (80, 24)
LONG_NAME = "Civic Centre Property Management, Cleaning and Security Services 2026-2028"
LONG_SITE = "Hangzhou Municipal Public Resources Trading Centre, Binjiang Branch"


def _grid() -> Any:
    """The sample grid with names longer than any column, and a tenderer's representative."""
    view = sample_grid()
    projects = tuple(
        replace(p, name=LONG_NAME) if p.project_id.endswith("1") else
        replace(p, committee_size=6, tenderer_reps=1) if p.project_id.endswith("2") else p
        for p in view.projects)
    sites = tuple(replace(s, name=LONG_SITE) if s.site_id == "S0001" else s for s in view.sites)
    return replace(view, projects=projects, sites=sites)


def _check(name: str, text: str) -> None:
    lines = text.splitlines()
    assert len(lines) == 24, (name, len(lines))
    assert all(cell_len(line) <= 80 for line in lines), name  # a CJK character is 2 columns

    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("EVALGRID_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8"), \
        f"{name}: the screen changed; review, then EVALGRID_UPDATE_SNAPSHOTS=1"


Step = Callable[[Pilot[Any]], Awaitable[None]]


def keys(*pressed: str) -> Step:
    async def step(pilot: Pilot[Any]) -> None:
        await pilot.press(*pressed)
        await pilot.pause()
        await pilot.pause()
    return step


OPERATOR_SCREENS: list[tuple[str, Step]] = [
    ("operator-province", keys("1")),
    ("operator-sites", keys("2")),
    ("operator-projects", keys("3")),
    ("operator-exceptions", keys("4")),
    ("operator-audit", keys("5")),
    ("operator-seats", keys("3", "down", "enter")),
    ("operator-draw", keys("4", "d")),
    ("operator-help", keys("question_mark")),
    ("operator-service", keys("s")),
    ("operator-service-month", keys("s", "p", "p", "down", "down")),
]


@pytest.mark.parametrize("name, step", OPERATOR_SCREENS, ids=[n for n, _ in OPERATOR_SCREENS])
async def test_operator_screens(name: str, step: Step) -> None:
    client = FakeOperatorClient(grid=_grid())
    app = OperatorConsole(client, "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await step(pilot)
        text = screen_text(app)
        _check(name, text)
        if name == "operator-projects":
            assert LONG_NAME in " ".join(text.split())  # whole, on the detail lines
        if name == "operator-sites":
            assert LONG_SITE in " ".join(text.split())
        if name == "operator-exceptions":
            assert "not signed in since 09:00" in text.splitlines()[5]
        if name == "operator-seats":
            assert "committee 6 = 5+1 rep." in text
            # The story pane: the project's transitions, in local time (+08).
            assert "03-01 11:00 ses-0000000000000006 departed (declined) notified→declined" \
                in text
            assert ("project_story", ("P20260302-0002", 6)) in client.calls
        if name == "operator-service":
            assert "2026-03-02 (today)" in text and "as of 09:20 +08:00" in text
            assert "S0001 workstations in use by half-day: 03-02 AM 3/4  03-02 PM 1/4" in text
        if name == "operator-service-month":
            assert "2026-03-01 .. 2026-03-02 (month)" in text


AUDITOR_SCREENS: list[tuple[str, Step]] = [
    ("auditor-province", keys("1")),
    ("auditor-exceptions", keys("4", "d")),
    ("auditor-seats", keys("3", "down", "enter", "d")),
    ("auditor-help", keys("question_mark")),
]


@pytest.mark.parametrize("name, step", AUDITOR_SCREENS, ids=[n for n, _ in AUDITOR_SCREENS])
async def test_auditor_screens_offer_no_draw(name: str, step: Step) -> None:
    client = FakeOperatorClient(grid=_grid())
    app = OperatorConsole(client, "aud-bob", role="auditor")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await step(pilot)
        text = screen_text(app)
        _check(name, text)
        assert text.splitlines()[0].startswith(" AUDITOR aud-bob")
        assert "draw" not in text.splitlines()[-1]  # the footer offers no draw
        assert "d: supplementary draw" not in text and "d suppl" not in text
        assert not [c for c in client.calls if c[0] == "replace_member"]


SITE_SCREENS: list[tuple[str, Step]] = [
    ("site-board", keys("1")),
    ("site-sessions", keys("2")),
    ("site-alerts", keys("3")),
    ("site-check-in", keys("c")),
    ("site-fault", keys("1", "f")),
    ("site-help", keys("question_mark")),
]


@pytest.mark.parametrize("name, step", SITE_SCREENS, ids=[n for n, _ in SITE_SCREENS])
async def test_site_screens(name: str, step: Step) -> None:
    app: App[Any] = SiteConsole(FakeSiteClient(), "S0001")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await step(pilot)
        text = screen_text(app)
        if name == "site-alerts":  # an alert is stamped with the wall clock, in +08
            text = re.sub(r"(?m)^\d\d:\d\d:\d\d ", "HH:MM:SS ", text)
        _check(name, text)


async def test_operator_sees_a_day_waiting_for_the_seed_share() -> None:
    """A day whose draws wait on the supervisor's share: in the status line and the queue."""
    view = _grid()
    fallback = view.now + timedelta(minutes=25)
    view = replace(view, seed_waits=(SeedWaitRow("2026-03-03", "committed", fallback),))
    app = OperatorConsole(FakeOperatorClient(grid=view), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await keys("4")(pilot)
        await pilot.press("down", "down")
        await pilot.pause()
        text = screen_text(app)
        _check("operator-seed-wait", text)
    assert "seed wait 03-03" in text.splitlines()[0]
    assert f"03-03: supervisor's share not revealed; fallback {hhmm(fallback)}" in text
    assert "the day's draws wait for it (`evalgrid seed reveal`)" in " ".join(text.split())


# --- the same screens in Chinese (`.zh.txt`): every label from the catalogue, still 80x24 ---


def untranslated(text: str) -> list[str]:
    """Catalogue texts that show in English on a Chinese screen (data such as names, ids and
    key names are not catalogue texts, so they never count)."""
    from evalgrid.i18n import catalogue

    found = []
    for msgid, zh in catalogue("zh_CN").items():
        if not isinstance(zh, str) or zh == msgid or "{" in msgid or len(msgid) < 4:
            continue
        if re.search(rf"(?<![\w-]){re.escape(msgid)}(?![\w-])", text):
            found.append(msgid)
    return found


@pytest.mark.parametrize("name, step", OPERATOR_SCREENS + [(f"auditor-{n}", s) for n, s in (
    ("help", keys("question_mark")),)], ids=[n for n, _ in OPERATOR_SCREENS] + ["auditor-help"])
async def test_operator_screens_zh(name: str, step: Step) -> None:
    from evalgrid.i18n import using

    with using("zh_CN"):
        role = "auditor" if name.startswith("auditor") else "operator"
        app = OperatorConsole(FakeOperatorClient(grid=_grid()), "op-alice", role=role)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await step(pilot)
            text = screen_text(app)
    _check(f"{name}.zh", text)
    assert untranslated(text) == [], name
    if name == "operator-projects":
        assert LONG_NAME in " ".join(text.split())  # the name is whole, as in English


@pytest.mark.parametrize("name, step", SITE_SCREENS, ids=[n for n, _ in SITE_SCREENS])
async def test_site_screens_zh(name: str, step: Step) -> None:
    from evalgrid.i18n import using

    with using("zh_CN"):
        app: App[Any] = SiteConsole(FakeSiteClient(), "S0001")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await step(pilot)
            text = screen_text(app)
    if name == "site-alerts":
        text = re.sub(r"(?m)^\d\d:\d\d:\d\d ", "HH:MM:SS ", text)
    _check(f"{name}.zh", text)
    assert untranslated(re.sub(r"Room 30\d", "", text)) == [], name  # the rooms' names are data


# --- an overdue evaluation's incident: the sites of the unsigned sheets, narrow ---

OVERDUE_SITES = ("S0001", "S0002", "S0003")


def _overdue_grid() -> Any:
    from tui.operator_client import IncidentRow

    view = _grid()
    end = START + timedelta(hours=3)
    overdue = IncidentRow(
        incident_id="inc-0000000000000001", project_id="P20260302-0001", site_id="",
        phase="during_evaluation", state="awaiting_repair",
        cause="evaluation window ended: 3 sheet(s) unsigned", failed_at=end,
        deadline=end + timedelta(hours=4), sites=OVERDUE_SITES)
    lost = IncidentRow(
        incident_id="inc-0000000000000002", project_id="P20260302-0002", site_id="S0003",
        phase="before_evaluation", state="decision_due", cause="guest site lost",
        failed_at=START, deadline=START + timedelta(hours=2), allowed=("wait", "postpone"),
        sites=("S0003",))
    return replace(view, now=end + timedelta(minutes=5), incidents=(overdue, lost))


async def test_an_overdue_incident_names_the_sites_of_the_unsigned_sheets() -> None:
    app = OperatorConsole(FakeOperatorClient(grid=_overdue_grid()), "op-alice")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await keys("4")(pilot)
        text = screen_text(app)
        row = next(i for i, line in enumerate(text.splitlines())
                   if "evaluation window ended" in line)
        await pilot.press(*["down"] * (row - 5))  # from the first row, one below the header
        await pilot.pause()
        text = screen_text(app)
        _check("operator-exceptions-overdue", text)
    lines = text.splitlines()
    overdue = next(line for line in lines if "evaluation window ended" in line)
    assert "S0001 +2" in overdue  # the column: the first site and how many more
    assert "S0003" in next(line for line in lines if "guest site lost" in line)
    # The selected row's detail line lists them all.
    assert "S0001, S0002, S0003" in " ".join(" ".join(lines[-4:]).split())


def test_the_incident_list_fits_80_columns_with_an_overdue_incident() -> None:
    """`evalgrid incident list`: the overdue incident's site column, within 80 columns."""
    from evalgrid_wire.v1 import operator_pb2
    from rich.console import Console

    from evalgrid.operator_client import OperatorLink, incident_table
    from evalgrid.wire import to_timestamp
    from tui.states import PROVINCE_TZ

    view = _overdue_grid()
    incidents = [operator_pb2.Incident(
        incident_id=i.incident_id, project_id=i.project_id, site_id=i.site_id,
        phase=i.phase, state=i.state, cause=i.cause, failed_at=to_timestamp(i.failed_at),
        deadline=to_timestamp(i.deadline), allowed=["reevaluate"] if i.site_id == "" else [],
        sites=list(i.sites)) for i in view.incidents]
    link = OperatorLink(Path("."), "op-alice", "localhost:0", PROVINCE_TZ)
    console = Console(width=80, record=True, force_terminal=False)
    console.print(incident_table(link, incidents))
    text = console.export_text()
    assert all(cell_len(line) <= 80 for line in text.splitlines())
    path = SNAPSHOTS / "cli-incident-list.txt"
    if os.environ.get("EVALGRID_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), \
        "cli-incident-list: the table changed; review, then EVALGRID_UPDATE_SNAPSHOTS=1"
    overdue = next(line for line in text.splitlines() if "P20260302-0001" in line)
    assert "S0001 +2" in overdue
