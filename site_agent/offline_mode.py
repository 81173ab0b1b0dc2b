"""Offline mode: the agent keeps serving its booths while the coordinator is unreachable.

- Sign-in: with the coordinator reachable it decides, as always. Without it, the agent opens
  the seat's pass (sent at evaluation start, see `evalgrid.seat_pass`) with the ID number and
  code the member typed: a pass that opens is the identity check; a few wrong tries per seat
  and offline sign-in for that seat waits for the coordinator. A refusal the outage caused
  (no pass here to check against) counts toward no lockout, nor does a member whose seat was
  released here (redrawn): their code still opens its pass, and the desk says so. The booth
  gets the member's name and reference, and the sheet form from the pass.
- Sheets: journaled (fsync) before anything else, then forwarded; when the coordinator cannot
  be reached the booth gets "accepted, will be forwarded" (`queued`) after the same checks the
  coordinator makes on the form's bids and criteria.
- The journal's unanswered sign-ins and sheets are forwarded in the order taken, each with its
  original request id (the coordinator answers a repeat without a second effect, so each lands
  exactly once): on every (re)connection, after every call the coordinator answered, and on a
  capped, jittered retry while any remain, whatever broke (the link, or only the coordinator's
  store: a Redis outage answers UNAVAILABLE while the stream stays up).
- Calls to the coordinator carry a deadline shorter than the booth's (`COORDINATOR_DEADLINE_S`):
  in a silent partition the call times out while the booth still waits, and offline mode
  answers it.
- Applied commands and faults marked by staff are journaled too: a restarted agent holds its
  reservations and passes again before the coordinator answers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
from evalgrid_wire.v1 import booth_pb2, common_pb2, site_link_pb2, site_link_pb2_grpc
from google.protobuf.message import DecodeError

from evalgrid.clock import PROVINCE_TZ
from evalgrid.lockout import (
    LockoutPolicy,
    ScopeState,
    desk_scope,
    locked_message,
    locked_scope,
    record_failure,
    session_scope,
)
from evalgrid.score_rules import sheet_problems
from evalgrid.seat_pass import SeatPassError, open_pass
from evalgrid.wire import UNARY_DEADLINE_S, to_timestamp
from site_agent.booths import BoothError, SiteBooths
from site_agent.offline_journal import OfflineJournal

log = logging.getLogger("evalgrid.agent")

# What says "the coordinator is not there" rather than "the coordinator said no".
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Wrong ID/code pairs offline: the coordinator's own lockout rule (evalgrid.lockout), counted
# here per seat and per desk; a locked scope opens after `lock_for`, or once the coordinator is
# back (sign-ins then go to it, where an operator can unlock).
OFFLINE_UNLOCK = "the coordinator decides again once it is reachable"
# An offline check-in whose identity and code open the pass of a seat released here: the
# member of a seat redrawn (or closed), not a guess; not counted either.
SEAT_RELEASED = ("this member's seat here was released (redrawn, or its evaluation closed): "
                 "it is no longer held; ask the operator")
# An offline check-in that opens no pass while a seat here has none: not counted (it could be
# that seat's member, kept out by the outage, not a guess).
PASS_MISSING = ("no seat's pass held here opens with this identity and code, and a seat held "
                "here has no pass yet (it comes at evaluation start): check in again once the "
                "coordinator is reachable")
JOURNALED = ("reserve", "release", "admit")
# The agent's deadline on a call to the coordinator a booth is waiting on: well inside the
# booth's own (UNARY_DEADLINE_S), so a silent partition falls back to offline mode in time.
COORDINATOR_DEADLINE_S = UNARY_DEADLINE_S * 0.4
FORWARD_RETRY_S = (0.5, 5.0)  # first and longest wait between retries of the journal


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SheetRefused(BoothError):
    """A sheet the coordinator would refuse too (bad bid, criterion or score)."""


def unreachable(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in UNREACHABLE


class OfflineMode:
    def __init__(self, booths: SiteBooths, journal: OfflineJournal, *,
                 link: site_link_pb2_grpc.SiteLinkStub, connected: asyncio.Event,
                 changed: Callable[[], None], now: Callable[[], datetime] | None = None,
                 lockout: LockoutPolicy | None = None) -> None:
        self.booths = booths
        self.journal = journal
        self.link = link
        self.connected = connected
        self.changed = changed
        self.now = now or (lambda: datetime.now(UTC))
        self.passes: dict[str, bytes] = {}  # session -> sealed pass
        self.opened: dict[str, site_link_pb2.SeatPass] = {}  # in memory only
        self.forms: dict[str, common_pb2.SheetForm] = {}  # from the coordinator, in memory
        self.fault_details: dict[str, str] = {}
        self.lockout = lockout or LockoutPolicy()
        self._lockouts: dict[str, ScopeState] = {}  # scope -> wrong tries offline (memory only)
        self._forwarding = asyncio.Lock()
        self.kick = asyncio.Event()  # set when the coordinator answered: try the journal now

    # --- the journal of state ------------------------------------------------------------------

    def restore(self, apply: Callable[[site_link_pb2.CoordinatorCommand], Any]) -> int:
        """Rebuild booths, passes, faults and sign-ins from the journal (at start)."""
        count = 0
        for record in self.journal.records:
            kind = record["kind"]
            if kind == "cmd":
                apply(site_link_pb2.CoordinatorCommand.FromString(
                    base64.b64decode(record["command"])))
            elif kind == "mark":
                booth = self.booths.booths.get(record["ws"])
                if booth is not None:
                    booth.fault = bool(record["fault"])
                    self.fault_details[booth.workstation_id] = str(record.get("detail", ""))
            elif kind == "signin":
                held = self.booths.reservations.get(record["session"])
                if held is not None and held.workstation_id == record["ws"]:
                    try:
                        self.booths.sign_in(record["ws"], record["session"],
                                            record["expert_ref"])
                    except BoothError as exc:
                        log.warning("journal: sign-in not restored: %s", exc)
            elif kind == "sheet" and record.get("signed"):
                booth = self.booths.booths.get(record["ws"])
                outcome = self.journal.outcome(str(record["rid"]))
                if booth is not None and booth.signed_in_session == record["session"] and \
                        (outcome is None or outcome["outcome"] == "accepted"):
                    booth.submitted = True
            count += 1
        return count

    def is_repeat(self, command: site_link_pb2.CoordinatorCommand) -> bool:
        """A resend of what the booths already hold (a reconnection resends every seat)."""
        kind = command.WhichOneof("body")
        if kind == "reserve":
            held = self.booths.reservations.get(command.reserve.session_id)
            return held is not None and held.workstation_id == command.reserve.workstation_id
        if kind == "release":
            return command.release.session_id not in self.booths.reservations
        if kind == "admit":
            return self.passes.get(command.admit.session_id) == command.admit.sealed_pass
        return False

    def applied(self, command: site_link_pb2.CoordinatorCommand) -> None:
        """Journal a command the booths accepted (the restart replays it)."""
        if command.WhichOneof("body") in JOURNALED:
            self.journal.append("cmd", command=_b64(command.SerializeToString()))

    def admit(self, command: site_link_pb2.CoordinatorCommand) -> None:
        """Hold a seat's pass; the same pass again is a resend (no fence check)."""
        admit = command.admit
        if not admit.session_id or not admit.sealed_pass:
            raise BoothError("admit: session_id and sealed_pass are required")
        if self.passes.get(admit.session_id) == admit.sealed_pass:
            self.booths.started.add(admit.session_id)
            return
        self.booths.check_fence(command.fence)
        self.passes[admit.session_id] = admit.sealed_pass
        self.booths.started.add(admit.session_id)

    def marked(self, workstation_id: str, fault: bool, detail: str) -> None:
        self.journal.append("mark", ws=workstation_id, fault=fault, detail=detail)

    # --- the booths ----------------------------------------------------------------------------

    async def sign_in(self, workstation_id: str, session_id: str, id_number: str, code: str,
                      rid: str) -> common_pb2.SignInReply:
        if self.connected.is_set():
            try:
                reply: common_pb2.SignInReply = await self.link.SignIn(
                    site_link_pb2.SignInRequest(
                        request_id=rid, session_id=session_id, workstation_id=workstation_id,
                        id_number=id_number, code=code),
                    timeout=COORDINATOR_DEADLINE_S)
            except grpc.aio.AioRpcError as exc:
                if not unreachable(exc) or session_id not in self.passes:
                    raise
                log.warning("coordinator unreachable (%s): signing in offline",
                            exc.code().name)
            else:
                self.answered()
                self.booths.sign_in(workstation_id, session_id, reply.expert_ref)
                self.journal.append("signin", rid=rid, ws=workstation_id, session=session_id,
                                    expert_ref=reply.expert_ref, at=self.now().isoformat(),
                                    forwarded=True)
                return reply
        return await self._sign_in_offline(workstation_id, session_id, id_number, code, rid)

    async def _sign_in_offline(self, workstation_id: str, session_id: str, id_number: str,
                               code: str, rid: str) -> common_pb2.SignInReply:
        sealed = self.passes.get(session_id)
        if sealed is None:
            raise BoothError("session_id: the coordinator is unreachable and this seat's pass "
                             "has not arrived (it comes at evaluation start): sign in later")
        self._refuse_if_locked([session_scope(session_id)])
        try:
            payload = await asyncio.to_thread(open_pass, sealed, session_id=session_id,
                                              id_number=id_number, code=code)
            seat = site_link_pb2.SeatPass.FromString(payload)
        except (SeatPassError, DecodeError) as exc:
            self._failed(session_scope(session_id))
            raise BoothError("code: identity or code does not match this session") from exc
        self.booths.sign_in(workstation_id, session_id, seat.expert_ref)
        self.opened[session_id] = seat
        self.journal.append("signin", rid=rid, ws=workstation_id, session=session_id,
                            expert_ref=seat.expert_ref, at=self.now().isoformat(),
                            proof=seat.proof)
        self.kick.set()  # forwarded as soon as the coordinator can store it
        self.changed()
        return common_pb2.SignInReply(session_id=session_id, expert_ref=seat.expert_ref,
                                      expert_name=seat.expert_name, offline=True)

    async def check_in(self, id_number: str, code: str) -> str:
        """The desk without the coordinator: the workstation of the held seat whose pass
        opens with this identity and code."""
        self._refuse_if_locked([desk_scope(self.booths.site_id)])
        for session_id, sealed in list(self.passes.items()):
            held = self.booths.reservations.get(session_id)
            if held is None:
                continue
            try:
                await asyncio.to_thread(open_pass, sealed, session_id=session_id,
                                        id_number=id_number, code=code)
            except SeatPassError:
                continue
            self.journal.append("checkin", session=session_id, ws=held.workstation_id,
                                at=self.now().isoformat())
            return held.workstation_id
        if self._pass_missing():
            # The member may hold that seat: refused for the outage, not for a wrong code.
            raise BoothError(f"code: {PASS_MISSING}")
        if await self._released_pass_opens(id_number, code):
            raise BoothError(f"code: {SEAT_RELEASED}")  # a true code: not a guess
        self._failed(desk_scope(self.booths.site_id))
        raise BoothError("code: no seat held here opens with this identity and code "
                         "(checked here: the coordinator is unreachable)")

    async def _released_pass_opens(self, id_number: str, code: str) -> bool:
        """The pass of a seat released here (redrawn while the member was away, or its
        evaluation closed) opens with this identity and code: the member, told so, as the
        coordinator tells them at its desk."""
        for session_id, sealed in list(self.passes.items()):
            if session_id in self.booths.reservations:
                continue
            try:
                await asyncio.to_thread(open_pass, sealed, session_id=session_id,
                                        id_number=id_number, code=code)
            except SeatPassError:
                continue
            return True
        return False

    def _pass_missing(self) -> bool:
        """A seat held here, its window not over, whose pass has not arrived (passes come at
        evaluation start; an outage can keep one away): a refusal now may be the outage's."""
        now = self.now()
        return any(r.session_id not in self.passes and r.end > now
                   for r in self.booths.reservations.values())

    def _refuse_if_locked(self, scopes: list[str]) -> None:
        found = locked_scope(self._lockouts, scopes, self.now())
        if found is not None:
            raise BoothError("code: " + locked_message(*found, self.lockout, PROVINCE_TZ,
                                                       unlock=OFFLINE_UNLOCK))

    def _failed(self, scope: str) -> None:
        self._lockouts[scope] = record_failure(self._lockouts.get(scope, ScopeState()), scope,
                                               self.now(), self.lockout)

    def cached_form(self, session_id: str) -> common_pb2.SheetForm | None:
        if session_id in self.forms:
            return self.forms[session_id]
        seat = self.opened.get(session_id)
        return seat.form if seat is not None else None

    async def form(self, session_id: str) -> common_pb2.SheetForm:
        try:
            form: common_pb2.SheetForm = await self.link.GetSheetForm(
                site_link_pb2.SheetFormRequest(session_id=session_id),
                timeout=COORDINATOR_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            cached = self.cached_form(session_id)
            if not unreachable(exc) or cached is None:
                raise
            return cached
        self.answered()
        self.forms[session_id] = form
        return form

    async def submit(self, workstation_id: str, request: booth_pb2.BoothSubmitRequest,
                     rid: str) -> common_pb2.SubmitSheetReply:
        """Journal, then forward; with the coordinator away, check against the form and queue
        ("accepted, will be forwarded")."""
        sheet = request.sheet
        online = self.connected.is_set()
        if not online:
            self._check_offline(sheet)
        self.journal.append("sheet", rid=rid, ws=workstation_id, session=sheet.session_id,
                            signed=sheet.signed, sheet=_b64(sheet.SerializeToString()),
                            at=self.now().isoformat())
        queued = common_pb2.SubmitSheetReply(sheet_id=sheet.sheet_id, accepted=True,
                                             queued=True)
        if not online:
            self.kick.set()
            return queued  # forwarded when the coordinator can store it
        if any(str(r["rid"]) != rid for r in self.journal.pending()):
            # Earlier records (this member's offline sign-in) must land first, in order.
            await self.forward_pending()
            outcome = self.journal.outcome(rid)
            if outcome is None:
                self.kick.set()
                return queued
            if outcome["outcome"] != "accepted":
                raise BoothError(f"sheet: refused by the coordinator: {outcome.get('error')}")
            return common_pb2.SubmitSheetReply(sheet_id=sheet.sheet_id, accepted=True,
                                               digest=str(outcome.get("digest", "")))
        try:
            reply = await self._forward_sheet(rid, workstation_id, sheet, None)
        except grpc.aio.AioRpcError as exc:
            if not unreachable(exc):
                self.journal.done(rid, "refused", error=exc.details() or "")
                raise
            try:
                self._check_offline(sheet)
            except BoothError as refused:
                self.journal.done(rid, "refused", error=str(refused))
                raise
            log.warning("coordinator unreachable (%s): sheet %s queued", exc.code().name,
                        sheet.sheet_id)
            self.kick.set()  # the retry loop takes it from here
            return queued
        self.journal.done(rid, "accepted", digest=reply.digest)
        self.answered()
        return reply

    def _check_offline(self, sheet: common_pb2.ScoreSheet) -> None:
        form = self.cached_form(sheet.session_id)
        if form is None:
            raise BoothError("sheet: the coordinator is unreachable and this booth holds no "
                             "form for the session to check the sheet against")
        _check_sheet(form, sheet)

    async def _forward_sheet(self, rid: str, workstation_id: str,
                             sheet: common_pb2.ScoreSheet,
                             taken_at: datetime | None) -> common_pb2.SubmitSheetReply:
        request = site_link_pb2.SubmitSheetRequest(request_id=rid, sheet=sheet,
                                                   workstation_id=workstation_id)
        if taken_at is not None:
            request.taken_at.CopyFrom(to_timestamp(taken_at))
        reply: common_pb2.SubmitSheetReply = await self.link.SubmitSheet(
            request, timeout=COORDINATOR_DEADLINE_S)
        return reply

    # --- forwarding --------------------------------------------------------------------------

    def answered(self) -> None:
        """The coordinator answered a call: if the journal holds anything, try it now."""
        if self.journal.pending():
            self.kick.set()

    async def keep_forwarding(self) -> None:
        """Forward the journal until it is empty, retrying with capped, jittered backoff; then
        sleep until a new record or a successful call wakes it (runs for the agent's life)."""
        first, longest = FORWARD_RETRY_S
        delay = first
        while True:
            self.kick.clear()
            if self.journal.pending():
                try:
                    await self.forward_pending()
                except Exception:  # a bug must not end forwarding for the agent's life
                    log.exception("forwarding the journal failed; retrying")
            if not self.journal.pending():
                delay = first
                await self.kick.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(),
                                       timeout=delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, longest)

    async def forward_pending(self) -> int:
        """Send what the journal holds unanswered, in order; stop at the first unreachable."""
        async with self._forwarding:
            sent = 0
            for record in self.journal.pending():
                rid = str(record["rid"])
                at = datetime.fromisoformat(record["at"])
                try:
                    if record["kind"] == "signin":
                        request = site_link_pb2.SignInRequest(
                            request_id=rid, session_id=record["session"],
                            workstation_id=record["ws"], signed_in_at=to_timestamp(at),
                            offline_proof=record.get("proof", ""))
                        await self.link.SignIn(request, timeout=COORDINATOR_DEADLINE_S)
                        self.journal.done(rid, "accepted")
                    else:
                        sheet = common_pb2.ScoreSheet.FromString(
                            base64.b64decode(record["sheet"]))
                        reply = await self._forward_sheet(rid, record["ws"], sheet, at)
                        self.journal.done(rid, "accepted", digest=reply.digest)
                except grpc.aio.AioRpcError as exc:
                    if unreachable(exc):
                        return sent
                    # The coordinator's answer is final (e.g. the seat was redrawn meanwhile):
                    # recorded, and the staff console shows it in the log.
                    log.warning("forwarded %s %s refused: %s %s", record["kind"], rid,
                                exc.code().name, exc.details())
                    self.journal.done(rid, "refused", error=exc.details() or "")
                sent += 1
            if sent:
                log.info("forwarded %d journaled sign-in(s)/sheet(s)", sent)
            return sent


def _check_sheet(form: common_pb2.SheetForm, sheet: common_pb2.ScoreSheet) -> None:
    """The coordinator's own rule (`evalgrid.score_rules`), against the form: known bids and
    criteria, bounds, two decimals, and every bid scored on every criterion once signed."""
    problems = sheet_problems([b.code for b in form.bids],
                              {c.id: Decimal(c.max_score) for c in form.criteria},
                              [(s.bid_code, s.criterion_id, s.score) for s in sheet.scores],
                              signed=sheet.signed)
    if problems:
        field_name, reason = problems[0]
        raise SheetRefused(f"sheet.{field_name}: {reason}")
