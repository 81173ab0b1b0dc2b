"""The committee's paper: score sheets, clarification questions, the leader's review.

Carved out of the workflow (which keeps the seats and their lifecycle): a booth's sheet is
checked against the project's criteria and stored with the coordinator's signature; a signed
sheet moves the seat (`SheetSigned`) and a returned one moves it back (`SheetReturned`), each
through the workflow's `seat_event` and saved with its story entry in one MULTI
(`Workflow.save_allocation`). Bids are named by code at the booth, never by bidder.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import TYPE_CHECKING

from coordinator.allocation import Allocation, SeatRecord
from coordinator.domain import scoring
from coordinator.domain.lifecycle import SAT, ProjectState, SeatState, SheetReturned, SheetSigned
from coordinator.domain.model import Project
from coordinator.errors import WorkflowError
from coordinator.store.sheets import Sheets
from evalgrid.ids import opaque_id
from evalgrid.score_rules import parse_score

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

MAX_QUESTION_CHARS = 2000


class SheetDesk:
    def __init__(self, workflow: Workflow, store: Sheets) -> None:
        self.wf = workflow
        self.store = store

    async def sheet_form(self, site_id: str, session_id: str
                         ) -> tuple[Project, dict[str, str], SeatRecord, bool]:
        project, alloc, seat = await self.wf.open_seat(site_id, session_id)
        if seat.status not in SAT:
            raise WorkflowError("session_id", "no expert is signed in", code="precondition")
        return project, self.bid_codes(project), seat, seat.expert_ref == alloc.leader_ref

    def code_salt(self, project: Project) -> bytes:
        """Bid codes are stable per project, and unguessable without the coordinator key."""
        return hashlib.sha256(b"bid-codes" + self.wf.master_key + project.id.encode()).digest()

    def bid_codes(self, project: Project) -> dict[str, str]:
        return scoring.bid_codes(project, self.code_salt(project))

    async def submit_sheet(self, site_id: str, workstation_id: str, sheet_id: str,
                           session_id: str, scores: list[tuple[str, str, str]], signed: bool,
                           request_id: str = "") -> tuple[bool, bool, str]:
        """Store a sheet; a signed sheet is final and a resend of it changes nothing (a
        repeated request id gets the first answer again, if it carries the same sheet: a
        request id reused for other content must not be told its sheet was stored)."""
        request = hashlib.sha256(json.dumps(
            [site_id, workstation_id, sheet_id, session_id, sorted(scores), signed]
        ).encode()).hexdigest()
        replay = await self.wf.replay(request_id)
        if replay is not None:
            if replay.get("request", request) != request:
                raise WorkflowError("request_id", "already used for a different sheet",
                                    code="precondition")
            return bool(replay["accepted"]), bool(replay["duplicate"]), str(replay["digest"])
        accepted, duplicate, digest = await self._submit_sheet(
            site_id, workstation_id, sheet_id, session_id, scores, signed)
        await self.wf.remember(request_id, {"accepted": accepted, "duplicate": duplicate,
                                            "digest": digest, "request": request})
        return accepted, duplicate, digest

    async def _submit_sheet(self, site_id: str, workstation_id: str, sheet_id: str,
                            session_id: str, scores: list[tuple[str, str, str]], signed: bool,
                            ) -> tuple[bool, bool, str]:
        project, alloc, seat = await self.wf.open_seat(site_id, session_id, workstation_id)
        if seat.status not in SAT:
            raise WorkflowError("session_id", "no expert is signed in", code="precondition")
        codes = self.bid_codes(project)
        bidder_of = {code: bidder for bidder, code in codes.items()}
        parsed: dict[tuple[str, str], Decimal] = {}
        for i, (bid_code, criterion_id, value) in enumerate(scores):
            if bid_code not in bidder_of:
                raise WorkflowError(f"sheet.scores[{i}].bid_code", f"unknown bid {bid_code!r}")
            number = parse_score(value)
            if number is None:  # NaN or Infinity would break every comparison
                raise WorkflowError(f"sheet.scores[{i}].score",
                                    f"not a decimal number: {value[:40]!r}")
            parsed[(bidder_of[bid_code], criterion_id)] = number
        sheet = scoring.ExpertSheet(expert_ref=seat.expert_ref, scores=parsed, signed=signed)
        problems = scoring.validate_sheet(project, sheet)
        if not signed:  # a draft may be incomplete, but what it holds must be in bounds
            problems = [(f, why) for f, why in problems if why != "missing score"]
        if problems:
            # The booth knows bids by code only: never name the bidder in an answer to it.
            field_name, reason = problems[0]
            for bidder, code in codes.items():
                field_name = field_name.replace(f"[{bidder}]", f"[{code}]")
                reason = reason.replace(bidder, code)
            raise WorkflowError(field_name, reason)
        record = {"sheet_id": sheet_id, "session": session_id, "expert_ref": seat.expert_ref,
                  "signed": signed,
                  "scores": sorted([b, c, str(v)] for (b, c), v in parsed.items())}
        body = json.dumps(record, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        async with self.wf.project_lock(project.id):
            existing = await self.store.sheet(session_id)
            if existing.get("signed") == "1":
                same = existing.get("digest", "") == digest
                if not same:
                    raise WorkflowError("sheet", "this sheet is already signed and final",
                                        code="precondition")
                if existing.get("audited") != "1":  # stored, then the store went away
                    await self._sheet_signed(alloc, seat, project.id, digest, resume=True)
                return True, True, digest
            signature = self.wf.signing_key.sign(digest.encode()).hex()
            await self.store.store(session_id, {"body": body, "digest": digest,
                                                "signed": "1" if signed else "0",
                                                "signature": signature,
                                                "project": project.id, "audited": "0"})
            if signed:
                await self._sheet_signed(alloc, seat, project.id, digest)
        return True, False, digest

    async def _sheet_signed(self, alloc: Allocation, seat: SeatRecord, project_id: str,
                            digest: str, *, resume: bool = False) -> None:
        """The seat signed and the audit entry, then the sheet marked audited: a retry after
        an interruption (`resume`) finishes what is missing, once (it looks for the entry
        first: rare, so reading the log then is affordable)."""
        entry = self.wf.seat_event(seat, SheetSigned(f"sheet-{digest[:16]}"))
        seat.returned_reason = ""
        await self.wf.save_allocation(alloc, entry)
        recorded = resume and any(
            e.kind == "sheet.signed" and e.subject == project_id
            and e.detail.get("digest") == digest for e in await self.wf.audit.entries())
        if not recorded:
            await self.wf.record("sheet.signed", project_id,
                                 {"expert_ref": seat.expert_ref, "digest": digest})
        await self.store.mark(seat.session_id, "audited", "1")

    # --- clarification, through the coordinator only ---------------------------------------

    async def ask_clarification(self, site_id: str, session_id: str, workstation_id: str,
                                bid_code: str, question: str,
                                request_id: str) -> dict[str, str]:
        replay = await self.wf.replay(request_id)
        if replay is not None:
            return {k: str(v) for k, v in replay.items()}
        project, _, seat = await self.wf.open_seat(site_id, session_id, workstation_id)
        if seat.status not in SAT:
            raise WorkflowError("session_id", "no expert is signed in", code="precondition")
        bidder_of = {code: bidder for bidder, code in self.bid_codes(project).items()}
        if bid_code not in bidder_of:
            raise WorkflowError("bid_code", f"unknown bid {bid_code!r}")
        question = question.strip()
        if not question:
            raise WorkflowError("question", "empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise WorkflowError("question", f"longer than {MAX_QUESTION_CHARS} characters")
        record = {"question_id": opaque_id("q"), "bidder_id": bidder_of[bid_code],
                  "bid_code": bid_code, "question": question, "answer": "",
                  "asked_at": self.wf.clock.now().isoformat(), "answered_at": ""}
        await self.store.put_question(project.id, record)
        # The audit names the question and the bid, never the member who asked.
        await self.wf.record("clarification.asked", project.id,
                             {"question_id": record["question_id"], "bid_code": bid_code})
        await self.wf.remember(request_id, record)
        return record

    async def _questions(self, project_id: str) -> list[dict[str, str]]:
        return await self.store.questions(project_id)

    async def clarifications(self, site_id: str, session_id: str) -> list[dict[str, str]]:
        """Every question of the committee and its answer (shared with all members)."""
        project, _, _ = await self.wf.open_seat(site_id, session_id)
        return await self._questions(project.id)

    async def host_clarifications(self, site_id: str, project_id: str) -> list[dict[str, str]]:
        project = await self.wf.project(project_id)
        if project.host_site_id != site_id:
            raise WorkflowError("project_id", "only the host site relays to its bidders",
                                code="denied")
        return await self._questions(project_id)

    async def answer_clarification(self, site_id: str, project_id: str, question_id: str,
                                   answer: str, request_id: str) -> dict[str, str]:
        items = {r["question_id"]: r for r in
                 await self.host_clarifications(site_id, project_id)}
        record = items.get(question_id)
        if record is None:
            raise WorkflowError("question_id", "no such question", code="not_found")
        answer = answer.strip()
        if not answer or len(answer) > MAX_QUESTION_CHARS:
            raise WorkflowError("answer", f"must be 1 to {MAX_QUESTION_CHARS} characters")
        if record["answer"]:
            if record["answer"] == answer:
                return record  # a resend
            raise WorkflowError("question_id", "already answered", code="precondition")
        record = {**record, "answer": answer, "answered_at": self.wf.clock.now().isoformat()}
        await self.store.put_question(project_id, record)
        await self.wf.record("clarification.answered", project_id, {"question_id": question_id})
        return record

    # --- the committee leader's review --------------------------------------------------------

    async def review(self, site_id: str, session_id: str
                     ) -> tuple[bool, list[scoring.ScoreWarning], list[str], list[str],
                                dict[str, str]]:
        """Warnings on the signed sheets so far, for the leader: (leader, warnings, signed,
        pending, bid codes)."""
        project, alloc, seat = await self.wf.open_seat(site_id, session_id)
        leader = seat.expert_ref == alloc.leader_ref
        sheets = await self.signed_sheets(alloc)
        signed = [s.expert_ref for s in sheets]
        pending = [s.expert_ref for s in alloc.active_seats() if s.expert_ref not in signed]
        warnings = scoring.score_warnings(project, sheets) if leader and sheets else []
        return leader, warnings, signed, pending, self.bid_codes(project)

    async def return_sheet(self, site_id: str, session_id: str, workstation_id: str,
                           expert_ref: str, reason: str, request_id: str) -> str:
        replay = await self.wf.replay(request_id)
        if replay is not None:
            return str(replay["outcome"])
        project, alloc, seat = await self.wf.open_seat(site_id, session_id, workstation_id)
        if seat.expert_ref != alloc.leader_ref:
            raise WorkflowError("session_id", "only the committee leader returns sheets",
                                code="denied")
        if not reason.strip():
            raise WorkflowError("reason", "a returned sheet needs a reason")
        async with self.wf.project_lock(project.id):
            state = (await self.wf.registry.project_states()).get(project.id)
            if state != ProjectState.EVALUATING:
                raise WorkflowError("project_id", "the report is closed", code="precondition")
            target = next((s for s in alloc.active_seats() if s.expert_ref == expert_ref), None)
            if target is None or target.status != SeatState.SIGNED:
                raise WorkflowError("expert_ref", "no signed sheet from this member",
                                    code="precondition")
            await self.store.mark(target.session_id, "signed", "0")
            returned = SheetReturned(self.wf.stimulus(request_id, "return"))
            entry = self.wf.seat_event(target, returned)
            target.returned_reason = reason.strip()
            alloc.returns.append({"expert_ref": expert_ref, "by": seat.expert_ref,
                                  "reason": reason.strip(),
                                  "at": self.wf.clock.now().isoformat()})
            await self.wf.save_allocation(alloc, entry)
            await self.wf.record("sheet.returned", project.id,
                                 {"expert_ref": expert_ref, "by": seat.expert_ref,
                                  "reason": reason.strip()})
        await self.wf.remember(request_id, {"outcome": "returned"})
        return "returned"

    async def signed_sheets(self, alloc: Allocation) -> list[scoring.ExpertSheet]:
        sheets = []
        for seat in alloc.active_seats():
            raw = await self.store.sheet(seat.session_id)
            if raw.get("signed") == "1":
                body = json.loads(raw["body"])
                sheets.append(scoring.ExpertSheet(
                    expert_ref=body["expert_ref"],
                    scores={(b, c): Decimal(v) for b, c, v in body["scores"]}, signed=True))
        return sheets

    async def sheet_seals(self, alloc: Allocation) -> dict[str, dict[str, str]]:
        """Each signed sheet's digest and the coordinator's signature of it, for the report."""
        seals = {}
        for seat in alloc.active_seats():
            raw = await self.store.sheet(seat.session_id)
            if raw.get("signed") == "1":
                seals[seat.expert_ref] = {"digest": raw.get("digest", ""),
                                          "seal": raw.get("signature", "")}
        return seals
