"""The booth terminal as an expert uses it: the real `evalgrid workstation` program on a pty,
against the real grid. A value the server would refuse is refused at the booth and loses
nothing; the draft survives a SIGKILL; "N" at signing goes back to the sheet; the code is
never echoed; the project's name is shown; questions, recusal and the leader's review work."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal

from evalgrid_wire.v1 import booth_pb2, common_pb2, operator_pb2
from grid_fixture import Grid, focus_projects

from evalgrid.ids import request_id
from evalgrid.score_rules import cell_problem
from evalgrid.wire import UNARY_DEADLINE_S

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Booth:
    """`evalgrid workstation` on a pseudo-terminal: what the expert sees and types."""

    def __init__(self, grid: Grid, site_id: str, workstation_id: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from app.cli.main import main; sys.exit(main())",
             "workstation", "--data-dir", str(grid.data.root), "--site", site_id,
             "--workstation", workstation_id, "--agent", grid.agent_target(site_id)],
            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            env={**os.environ, "COLUMNS": "80", "LINES": "24"})
        os.close(slave)
        os.set_blocking(self.master, False)
        self.seen = ""  # everything shown so far
        self.mark = 0   # where the next `expect` starts looking

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            self.seen += ANSI.sub("", chunk.decode("utf-8", "replace")).replace("\r", "")

    async def expect(self, text: str, timeout: float = 30.0) -> str:
        """Wait until `text` shows after the previous match; return what came before it."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            at = self.seen.find(text, self.mark)
            if at >= 0:
                before = self.seen[self.mark:at]
                self.mark = at + len(text)
                return before
            exited = self.proc.poll() is not None
            if exited:
                self._drain()
            if time.monotonic() > deadline or (exited and self.seen.find(text, self.mark) < 0):
                raise AssertionError(f"waited for {text!r}; the booth shows:\n"
                                     f"{self.seen[self.mark:][-2000:]}")
            await asyncio.sleep(0.05)

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    async def answer(self, prompt: str, line: str) -> str:
        before = await self.expect(prompt)
        self.type(line)
        return before

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.master)

    async def wait(self) -> int:
        for _ in range(400):
            if self.proc.poll() is not None:
                self._drain()
                os.close(self.master)
                # Everything the booth showed fits an 80-column terminal.
                too_long = [line for line in self.seen.splitlines() if len(line) > 80]
                assert not too_long, too_long
                return self.proc.returncode
            await asyncio.sleep(0.05)
        self.kill()
        raise AssertionError("the booth did not exit")


async def _day_started(grid: Grid) -> tuple[str, list[dict[str, str]]]:
    project = focus_projects(grid.province)[0]
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    for notice in notices:
        await grid.reply(notice["notice_id"], True)
    await grid.advance_to(project.window.start)
    await grid.start(project.id)
    return project.id, notices


async def _at_desk(grid: Grid, notice: dict[str, str]) -> tuple[str, str]:
    expert = grid.experts[notice["expert_id"]]
    site_id = grid.site_of_venue(notice["venue_id"])
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    await grid.enrol(site_id, checked.workstation_id)
    return site_id, checked.workstation_id


async def _sign_in(booth: Booth, grid: Grid, notice: dict[str, str]) -> str:
    """Sign in; return what the booth showed up to the sheet menu."""
    await booth.answer("ID number (empty to quit): ", grid.experts[notice["expert_id"]].id_number)
    await booth.answer("(not shown): ", notice["code"])
    return await booth.expect("choice: ")


def words(text: str) -> str:
    """Text as words: a message wrapped at 80 columns reads the same."""
    return " ".join(text.split())


async def test_an_expert_scores_restarts_reviews_and_signs_at_the_real_booth(grid: Grid) -> None:
    project_id, notices = await _day_started(grid)
    project = grid.projects[project_id]
    notice = notices[1]
    site_id, ws = await _at_desk(grid, notice)
    draft_file = grid.data.root / "booths" / site_id / ws / "draft.json"

    booth = Booth(grid, site_id, ws)
    shown = await _sign_in(booth, grid, notice)
    assert f"project: {project.name}" in words(shown)
    assert notice["code"] not in booth.seen  # typed, never echoed
    assert "(+08)" in shown
    assert all(len(line) <= 80 for line in booth.seen.splitlines())
    criteria = project.scoring.criteria
    first = criteria[0]
    # 2.555 (three places) and a value above the maximum: refused here, as the server would.
    assert cell_problem("2.555", first.max_score) == "score has more than 2 decimal places"
    booth.type("1")
    await booth.answer(f"(0..{first.max_score}): ", "2.555")
    assert "score has more than 2 decimal places" in await booth.expect(
        f"(0..{first.max_score}): ")
    booth.type(str(first.max_score + Decimal("0.01")))
    assert f"score above the maximum {first.max_score}" in await booth.expect(
        f"(0..{first.max_score}): ")
    booth.type("abc")
    assert "not a decimal number" in await booth.expect(f"(0..{first.max_score}): ")
    booth.type("2.55")
    for c in criteria[1:]:
        await booth.answer(f"(0..{c.max_score}): ", str(c.max_score))
    await booth.expect("choice: ")
    saved = json.loads(draft_file.read_text())
    first_bid = saved["scores"][0][0]
    assert {(c, v) for _, c, v in saved["scores"]} == \
        {(first.id, "2.55"), *((c.id, str(c.max_score)) for c in criteria[1:])}
    assert oct(draft_file.stat().st_mode & 0o777) == "0o600"

    # The booth dies mid-sheet: nothing typed is lost.
    booth.kill()
    booth = Booth(grid, site_id, ws)
    shown = await _sign_in(booth, grid, notice)
    assert f"your draft is back: {len(criteria)} score(s) kept" in words(shown)
    assert re.search(rf"{first_bid}.*complete", shown)

    # Signing an incomplete sheet is refused locally, naming what is missing.
    booth.type("s")
    assert "not ready to sign" in await booth.expect("choice: ")

    # Score the rest; the kept values are offered in brackets (Enter keeps them).
    bids = [b.code for b in (await _real_form(grid, site_id, ws)).bids]
    for i, code in enumerate(bids, 1):
        if code == first_bid:
            continue
        booth.type(str(i))
        for c in criteria:
            await booth.answer(f"(0..{c.max_score}): ", str(c.max_score / 2))
        await booth.expect("choice: ")
    booth.type(str(bids.index(first_bid) + 1))
    await booth.expect(f"(0..{first.max_score}) [2.55]: ")  # the kept value, offered
    booth.type("")
    for c in criteria[1:]:
        await booth.answer(f"[{c.max_score}]: ", "")
    await booth.expect("choice: ")

    # The summary, then "N": back to the sheet, not to the ID prompt.
    booth.type("s")
    summary = await booth.expect("[y/N]: ")
    assert "summary of your sheet" in summary and "2.55" in summary
    assert f"C1 {first.name} (max {first.max_score})" in summary
    booth.type("n")
    after = await booth.expect("choice: ")
    assert "back to the sheet" in after and "ID number" not in after
    # A question to a bidder, through the coordinator.
    booth.type("c")
    await booth.answer("(its code; Enter to go back): ", bids[0])
    await booth.answer("your question: ", "Which warranty period applies?")
    assert "sent to the bidder" in await booth.expect("choice: ")
    booth.type("c")
    listed = await booth.answer("(its code; Enter to go back): ", "")
    assert f"bid {bids[0]}: Which warranty period applies?" in listed
    assert "awaiting the bidder's answer" in listed
    await booth.expect("choice: ")
    booth.type("s")
    await booth.answer("[y/N]: ", "y")
    signed = await booth.expect("choice: ")
    assert "sheet signed and delivered" in signed
    # The first member in leads: the booth stays for the review, the sheet is closed.
    assert "'l' reviews it" in signed and "s summary and sign" not in signed
    booth.type("q")
    assert await booth.wait() == 0
    # The signed sheet's draft stays for a return by the leader, for this session only.
    assert json.loads(draft_file.read_text())["session_id"] == \
        next(s.session_id for s in (await grid.operator.ProjectSeats(
            operator_pb2.ProjectRequest(project_id=project_id),
            timeout=UNARY_DEADLINE_S)).seats if s.status == "signed")
    seats = await grid.operator.ProjectSeats(operator_pb2.ProjectRequest(
        project_id=project_id), timeout=UNARY_DEADLINE_S)
    assert sum(s.status == "signed" for s in seats.seats) == 1


async def _real_form(grid: Grid, site_id: str, ws: str) -> common_pb2.SheetForm:
    """The form as the booth gets it (a second client on the same workstation certificate)."""
    terminal = await grid.booth(site_id, ws)
    reply: common_pb2.SheetForm = await terminal.form()
    return reply


async def test_a_conflict_is_declared_and_a_forged_draft_is_set_aside(grid: Grid) -> None:
    _, notices = await _day_started(grid)
    notice = notices[0]
    site_id, ws = await _at_desk(grid, notice)
    draft_file = grid.data.root / "booths" / site_id / ws / "draft.json"
    draft_file.parent.mkdir(parents=True, exist_ok=True)
    draft_file.write_bytes(b"\xff\xfe not json")
    booth = Booth(grid, site_id, ws)
    shown = await _sign_in(booth, grid, notice)
    assert "the saved draft was damaged" in words(shown) and "set aside" in words(shown)
    assert "you lead this committee" in shown  # the first member in leads
    assert "l committee review" in shown
    booth.type("l")
    review = await booth.answer("member (Enter to go back): ", "")
    assert "committee: 0 signed" in review
    await booth.expect("choice: ")
    before = len(grid.notices())
    booth.type("x")
    await booth.answer("(Enter to go back): ", "my spouse works for a bidder")
    await booth.answer("[y/N]: ", "y")
    assert "conflict recorded (recused-redrawn)" in await booth.expect("ID number")
    booth.type("")
    assert await booth.wait() == 0
    assert len(grid.notices()) == before + 1  # a replacement was drawn and notified


async def test_a_returned_sheet_comes_back_filled_in_with_the_reason(grid: Grid) -> None:
    project_id, notices = await _day_started(grid)
    project = grid.projects[project_id]
    # The leader is the first in: signed in here through the booth client.
    lead_site, lead_ws = await _at_desk(grid, notices[0])
    leader = await grid.booth(lead_site, lead_ws)
    await leader.enrol()
    await leader.sign_in(grid.experts[notices[0]["expert_id"]].id_number, notices[0]["code"])
    notice = notices[1]
    site_id, ws = await _at_desk(grid, notice)
    booth = Booth(grid, site_id, ws)
    await _sign_in(booth, grid, notice)
    nbids = len([b for b in project.bids if b.valid])
    for i in range(1, nbids + 1):
        booth.type(str(i))
        for c in project.scoring.criteria:
            await booth.answer(f"(0..{c.max_score}): ", str(c.max_score / 4))
        await booth.expect("choice: ")
    booth.type("s")
    await booth.answer("[y/N]: ", "y")
    assert await booth.wait() == 0  # a member (not the leader) is done once signed

    review = await leader.review()
    (member_ref,) = review.signed
    assert (await leader.return_sheet(member_ref, "T1 looks low: please check")).outcome == \
        "returned"
    booth = Booth(grid, site_id, ws)
    shown = await _sign_in(booth, grid, notice)
    assert "the leader returned your sheet: T1 looks low: please check" in words(shown)
    n = nbids * len(project.scoring.criteria)
    assert f"your draft is back: {n} score(s) kept" in words(shown)
    assert f"sheet: {n} of {n} scores entered" in shown
    booth.type("s")
    await booth.answer("[y/N]: ", "y")
    assert await booth.wait() == 0
    assert "sheet signed and delivered" in booth.seen
    assert set((await leader.review()).signed) == {member_ref}
