"""The evaluation's start (the window opens) and close (the report), as lifecycle events.

Each loads the project's state, asks the transition table (`handle_project`) and carries out
the instructions it returns through `Workflow.carry_out`, in the table's order:

- window opened: audit `evaluation.started`, then send each member's seat pass (agents can
  then admit members while the coordinator is unreachable);
- report closed: the report written and the state stored with its story (one MULTI; the report
  first, so a stored `reported` always has its file), the sessions released from the sites'
  sets, the release commands queued, then `evaluation.reported` audited.

A repeated request (already evaluating, already reported) is answered without doing anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from coordinator.domain import scoring
from coordinator.domain.lifecycle import (
    Instruction,
    LifecycleRefused,
    ProjectState,
    ReportClosed,
    WindowOpened,
    handle_project,
)
from coordinator.errors import WorkflowError
from coordinator.report import write_report

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

I = Instruction  # noqa: E741 (the step tables read better short)


class EvaluationDesk:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    async def start(self, project_id: str, *, by: str, stimulus_id: str = "") -> str:
        wf = self.wf
        project = await wf.project(project_id)
        async with wf.project_lock(project_id):
            state = await wf.registry.project_state(project_id)
            event = WindowOpened(wf.stimulus(stimulus_id, "start"))
            try:
                after, todo = handle_project(state, event)
            except LifecycleRefused as exc:
                raise WorkflowError("project_id", f"{project_id} is {state}, not drawn",
                                    code="precondition") from exc
            if not todo:  # a repeat: already evaluating
                return ProjectState.EVALUATING.value
            now = wf.clock.now()
            if now < project.window.start:
                raise WorkflowError("project_id", f"the window opens at "
                                    f"{wf.local_text(project.window.start)}; it is "
                                    f"{wf.local_text(now)}", code="precondition")
            wf.allocations.forget(project_id)
            await wf.allocation(project_id, f"evaluation start by {by}")
            await wf.commit_project(project_id, ProjectState.DRAWN, after, event, todo)
            await wf.carry_out(todo, {
                I.AUDIT: lambda: wf.record("evaluation.started", project_id, {"by": by}),
                I.SEND_COMMAND: lambda: wf.faults.admit_seats(project_id)})
        return ProjectState.EVALUATING.value

    async def close(self, project_id: str, *, by: str,
                    stimulus_id: str = "") -> tuple[str, str]:
        wf = self.wf
        project = await wf.project(project_id)
        async with wf.project_lock(project_id):
            event = ReportClosed(wf.stimulus(stimulus_id, "close"))
            try:
                after, todo = handle_project(await wf.registry.project_state(project_id),
                                             event)
            except LifecycleRefused as exc:
                raise WorkflowError("project_id", f"{project_id} is not being evaluated",
                                    code="precondition") from exc
            if not todo:  # a repeat: already reported
                return ProjectState.REPORTED.value, str(wf.reports_dir / f"{project_id}.json")
            alloc = await wf.allocation(project_id, "close")
            sheets = await wf.sheets.signed_sheets(alloc)
            missing = len(alloc.active_seats()) - len(sheets)
            if missing:
                raise WorkflowError("project_id", f"{missing} sheet(s) not yet signed",
                                    code="precondition")
            seeds = [await self.reveal_seed(draw_id) for draw_id in alloc.draw_ids]
            lottery_seed = hashlib.sha256(b"lottery" + seeds[0]).digest()
            evaluation = scoring.evaluate(project, sheets, lottery_seed,
                                          code_salt=wf.sheets.code_salt(project),
                                          rules=wf.rules.scoring)
            seats = alloc.active_seats()
            written: list[Path] = []

            async def report() -> None:
                written.append(write_report(
                    wf.reports_dir, project=project, evaluation=evaluation, alloc=alloc,
                    sheets=sheets, bid_codes=wf.sheets.bid_codes(project),
                    draws=[await wf.draw_public(d) for d in alloc.draw_ids],
                    signing_key=wf.signing_key, now=wf.clock.now(),
                    bidder_names=wf.company_names(),
                    sheet_seals=await wf.sheets.sheet_seals(alloc),
                    signer_certificate=wf.signer_certificate))
                await wf.commit_project(project_id, ProjectState.EVALUATING, after, event, todo)

            async def release() -> None:
                for seat in seats:
                    await wf.sessions.leave_site(seat.site_id, seat.session_id)

            async def send() -> None:
                for seat in seats:
                    await wf.send_release(seat, "evaluation closed")

            async def audit() -> None:
                await wf.record("evaluation.reported", project_id, {
                    "by": by, "report_digest": hashlib.sha256(written[0].read_bytes())
                    .hexdigest(), "failed": evaluation.failed})

            await wf.carry_out(todo, {I.REPORT: report, I.RELEASE: release,
                                      I.SEND_COMMAND: send, I.AUDIT: audit})
        await wf.faults.evaluation_reported(project_id)
        return ProjectState.REPORTED.value, str(written[0])

    async def reveal_seed(self, draw_id: str) -> bytes:
        """After the award the seed is published so anyone can replay the draw."""
        wf = self.wf
        revealed, audited = await wf.draws.revealed_seed(draw_id)
        if revealed and audited:
            return bytes.fromhex(revealed)
        # Stored but not audited (the store went away in between): the retry audits it.
        seed = revealed or str((await wf.sealed_archive(draw_id))["seed"])
        if not revealed:
            await wf.draws.reveal_seed(draw_id, seed)
        await wf.record("draw.seed_revealed", draw_id, {"seed": seed})
        await wf.draws.seed_audited(draw_id)
        return bytes.fromhex(seed)
