"""`evalgrid workstation`: the booth as an expert uses it, in a plain terminal (80x24).

Enrol, wait for the expert, check identity and code (not echoed), show the project, then a
sheet menu: score bids (each value checked by the coordinator's own rule and kept at once in a
draft on the booth's disk), ask the bidders a question, declare a conflict, review the
committee (leader), and a summary of the whole sheet before signing. Everything goes through
the agent; a refused value or a lost link loses nothing already written.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
from evalgrid_wire.v1 import common_pb2
from rich.cells import cell_len

from evalgrid.clock import local_text
from evalgrid.i18n import N_, _, fit, pad, refusal, wrap
from evalgrid.score_rules import cell_problem, sheet_problems
from evalgrid.wire import from_timestamp, from_window
from site_agent.booth_draft import Draft, load_draft
from site_agent.booth_terminal import BoothTerminal, Score

WIDTH = 80
PAGE = 20  # lines shown before "more": the screen is 24 lines, with room for the prompt

WARNING_PHRASES = {"deviation": N_("far from the committee's mean"),
                   "objective_inconsistent": N_("objective item scored differently")}


def _read_line(prompt: str) -> str:
    print(prompt, end="", flush=True)  # flushed: the booth may run behind a pipe or a kiosk
    line = sys.stdin.readline()
    if not line:
        raise EOFError("input closed")
    return line.strip()


@contextlib.contextmanager
def _no_echo() -> Iterator[None]:
    """Typing not echoed on a terminal (as getpass does); a pipe echoes nothing anyway."""
    if not sys.stdin.isatty():
        yield
        return
    import termios

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)
        print(flush=True)  # the Enter the expert typed was not echoed either


def _read_secret(prompt: str) -> str:
    with _no_echo():
        return _read_line(prompt)


async def _ask(prompt: str) -> str:
    return await asyncio.to_thread(_read_line, prompt)


async def _ask_secret(prompt: str) -> str:
    return await asyncio.to_thread(_read_secret, prompt)


def _say(text: str) -> None:
    """A message, wrapped to the 80 columns of the booth's screen (nothing is cut)."""
    print("\n".join(wrap(text, WIDTH, subsequent_indent="  ")))


def _cut(text: str, width: int) -> str:
    return fit(text, width, "~")


async def _page(lines: list[str]) -> None:
    """Show `lines` a screen at a time; a line wider than the screen wraps (names and
    questions are read whole)."""
    lines = [part for line in lines
             for part in (wrap(line, WIDTH, subsequent_indent="    ")
                          if cell_len(line) > WIDTH else [line])]
    for start in range(0, len(lines), PAGE):
        for line in lines[start:start + PAGE]:
            print(line)
        if start + PAGE < len(lines):
            await _ask(_("-- more: Enter --"))


def _refusal(exc: grpc.aio.AioRpcError) -> str:
    return refusal(exc.details() or exc.code().name)


class SheetSession:
    """One signed-in expert at this booth: the form, the draft, and the menu."""

    def __init__(self, booth: BoothTerminal, form: common_pb2.SheetForm, draft: Draft) -> None:
        self.booth = booth
        self.form = form
        self.draft = draft
        self.bids = [b.code for b in form.bids]
        self.maxima = {c.id: Decimal(c.max_score) for c in form.criteria}
        self.signed = False

    # --- what the sheet holds --------------------------------------------------------------

    def scores(self) -> list[Score]:
        return [Score(b, c, v) for (b, c), v in sorted(self.draft.scores.items())]

    def missing(self, bid_code: str | None = None) -> list[tuple[str, str]]:
        bids = self.bids if bid_code is None else [bid_code]
        return [(b, c.id) for b in bids for c in self.form.criteria
                if (b, c.id) not in self.draft.scores]

    def bid_label(self, bid: common_pb2.BidInfo) -> str:
        return bid.code + (f" {bid.bidder_name}" if bid.bidder_name else "")

    def header(self) -> list[str]:
        start, end = from_window(self.form.window)
        lines = [_("project: {name}").format(name=self.form.project_name),
                 _("window {start} to {end}").format(start=local_text(start),
                                                     end=local_text(end, "%H:%M"))]
        if self.form.leader:
            lines.append(_("you lead this committee"))
        if self.form.returned_reason:
            lines.append(_("the leader returned your sheet: {reason}").format(
                reason=self.form.returned_reason))
        return lines

    # --- the menu ----------------------------------------------------------------------------

    async def run(self) -> str:
        """Until the sheet is signed ("signed"), the seat recused ("recused"), or the expert
        leaves with the draft kept ("left")."""
        await _page(self.header())
        if self.draft.note:
            _say(self.draft.note)
        while True:
            done = len(self.draft.scores)
            total = len(self.bids) * len(self.maxima)
            print("\n" + _("sheet: {done} of {total} scores entered").format(done=done,
                                                                            total=total))
            if self.signed:
                print(_("your sheet is signed"))
            for i, bid in enumerate([] if self.signed else self.form.bids, 1):
                left = len(self.missing(bid.code))
                state = _("complete") if not left else _("{n} to score").format(n=left)
                print(pad(_cut(f" {i:>2}  " + _("bid {bid}").format(bid=self.bid_label(bid)),
                               60), 60) + state)
            line = ""
            for key in self.menu():
                if cell_len(line) + cell_len(key) + 3 > WIDTH:
                    print(line)
                    line = ""
                line += "   " + key
            print(line)
            choice = (await _ask(_("choice: "))).lower()
            if choice.isdigit() and 1 <= int(choice) <= len(self.form.bids) and not self.signed:
                await self.score_bid(self.form.bids[int(choice) - 1])
                await self.save_to_server()
            elif choice == "s" and not self.signed:
                if await self.summary_and_sign():
                    if not self.form.leader:
                        return "signed"
                    self.signed = True  # the leader stays: the review comes once all signed
                    print(_("you lead the committee: 'l' reviews it once every member signed"))
            elif choice == "c":
                await self.clarifications()
            elif choice == "x" and not self.signed:
                if await self.recuse():
                    return "recused"
            elif choice == "l" and self.form.leader:
                await self.leader_review()
            elif choice == "q":
                return "signed" if self.signed else "left"
            else:
                _say(_("no such choice: {choice}").format(choice=repr(choice)))

    def menu(self) -> list[str]:
        keys = [] if self.signed else [_("s summary and sign"), _("x declare a conflict")]
        keys.append(_("c questions"))
        if self.form.leader:
            keys.append(_("l committee review"))
        keys.append(_("q leave") if self.signed else _("q leave (draft kept)"))
        return keys

    async def score_bid(self, bid: common_pb2.BidInfo) -> None:
        name = f": {bid.bidder_name}" if bid.bidder_name else ""
        _say(_("bid {bid}, price {price}").format(bid=bid.code, price=bid.price) + name)
        print(_("Enter keeps the value in [brackets]; '-' goes back to the sheet"))
        for criterion in self.form.criteria:
            top = Decimal(criterion.max_score)
            key = (bid.code, criterion.id)
            while True:
                now = self.draft.scores.get(key)
                shown = f" [{now}]" if now is not None else ""
                name = _cut(criterion.name, 44)
                text = await _ask(f"  {name} (0..{top}){shown}: ")

                if text == "-":
                    return
                if not text:
                    if now is not None:
                        break
                    print(_("  a score is needed here ('-' to go back)"))
                    continue
                reason = cell_problem(text, top)
                if reason is not None:
                    _say("  " + _("refused: {reason}; nothing else changed").format(
                        reason=reason))
                    continue
                self.draft.put(bid.code, criterion.id, text)
                break

    async def save_to_server(self) -> None:
        """Send the draft unsigned: the coordinator keeps it too, checked by the same rule."""
        try:
            await self.booth.submit(self.scores(), signed=False)
        except grpc.aio.AioRpcError as exc:
            _say(_("draft kept at this booth; the coordinator said: {reason}").format(
                reason=_refusal(exc)))

    def summary(self) -> list[str]:
        criteria = list(self.form.criteria)
        lines = [_("summary of your sheet (scores as you entered them)")]
        for i, c in enumerate(criteria, 1):
            lines.append(f"  C{i} {c.name} " + _("(max {n})").format(n=c.max_score))
        per_row = 8  # columns of criteria that fit 80 columns next to the bid code
        for first in range(0, len(criteria), per_row):
            part = criteria[first:first + per_row]
            lines.append(pad(_("bid"), 8) + "".join(f"{'C' + str(first + j + 1):>8}"
                                               for j in range(len(part))))
            for bid in self.form.bids:
                cells = "".join(f"{self.draft.scores.get((bid.code, c.id), '--'):>8}"
                                for c in part)
                lines.append(f"{bid.code:<8}{cells}")
        return lines

    async def summary_and_sign(self) -> bool:
        await _page(self.summary())
        problems = sheet_problems(self.bids, self.maxima,
                                  [(s.bid_code, s.criterion_id, s.score) for s in self.scores()],
                                  signed=True)
        if problems:
            names = {c.id: c.name for c in self.form.criteria}
            missing = self.missing()
            print(_("not ready to sign: {n} score(s) missing or refused").format(
                n=len(problems)))
            first = (_("bid {bid}, {criterion}: missing").format(
                bid=missing[0][0], criterion=names[missing[0][1]]) if missing
                     else f"{problems[0][0]}: {problems[0][1]}")
            print(_cut("  " + _("first: {problem}").format(problem=first), WIDTH))
            return False
        answer = await _ask(_("sign the sheet now? it cannot be changed after [y/N]: "))
        if answer.lower() != "y":
            print(_("not signed: back to the sheet"))
            return False
        try:
            reply = await self.booth.submit(self.scores(), signed=True)
        except grpc.aio.AioRpcError as exc:
            _say(_("not signed: {reason}; your draft is kept").format(reason=_refusal(exc)))
            return False
        if reply.queued:
            print(_("sheet signed; kept by the site while the coordinator is away, sent later"))
        else:
            print(_("sheet signed and delivered (digest {digest}...)").format(
                digest=reply.digest[:16]))
        return True

    async def clarifications(self) -> None:
        try:
            listed = await self.booth.clarifications()
        except grpc.aio.AioRpcError as exc:
            _say(_("questions unavailable: {reason}").format(reason=_refusal(exc)))
            return
        lines = [_("questions to bidders ({n})").format(n=len(listed.items))]
        for item in listed.items:
            asked = local_text(from_timestamp(item.asked_at), "%H:%M")
            lines.append(f" {asked} " + _("bid {bid}").format(bid=item.bid_code)
                         + f": {item.question}")
            if item.answer:
                at = local_text(from_timestamp(item.answered_at), "%H:%M")
                lines.append("   " + _("answer {time}: {answer}").format(time=at,
                                                                       answer=item.answer))
            else:
                lines.append("   awaiting the bidder's answer")
        await _page(lines)
        code = (await _ask(_("ask about bid (its code; Enter to go back): "))).upper()
        if not code:
            return
        if code not in self.bids:
            _say(_("no bid {bid} on this sheet").format(bid=repr(code)))
            return
        question = await _ask(_("your question: "))
        if not question:
            print(_("nothing asked"))
            return
        try:
            await self.booth.ask(code, question)
        except grpc.aio.AioRpcError as exc:
            _say(_("not sent: {reason}").format(reason=_refusal(exc)))
            return
        print(_("sent to the bidder through the coordinator; the answer shows here"))

    async def recuse(self) -> bool:
        print(_("a conflict of interest (e.g. you worked for a bidder) ends your seat here;"))
        print(_("another expert is drawn in your place and your draft is discarded"))
        reason = await _ask(_("the conflict, in a few words (Enter to go back): "))
        if not reason:
            return False
        if (await _ask(_("declare it now? [y/N]: "))).lower() != "y":
            print(_("nothing declared: back to the sheet"))
            return False
        try:
            reply = await self.booth.declare_recusal(reason)
        except grpc.aio.AioRpcError as exc:
            _say(_("not recorded: {reason}").format(reason=_refusal(exc)))
            return False
        self.draft.discard()
        print(_("conflict recorded ({outcome}); thank you, you may leave the booth").format(
            outcome=_(reply.outcome)))
        return True

    async def leader_review(self) -> None:
        try:
            review = await self.booth.review()
        except grpc.aio.AioRpcError as exc:
            _say(_("review unavailable: {reason}").format(reason=_refusal(exc)))
            return
        names = {c.id: c.name for c in self.form.criteria}
        lines = [_("committee: {signed} signed, {pending} still scoring").format(
            signed=len(review.signed), pending=len(review.pending))]
        if not review.warnings:
            lines.append(_("no warnings"))
        for w in review.warnings:
            what = _(WARNING_PHRASES.get(w.kind, w.kind.replace("_", " ")))
            lines.append(" " + _("member {member} bid {bid} {criterion}: {score} "
                                 "(mean {mean}) {what}").format(
                member=w.expert_ref, bid=w.bid_code,
                criterion=names.get(w.criterion_id, w.criterion_id), score=w.score,
                mean=w.mean, what=what))
        await _page(lines)
        ref = await _ask(_("return a signed sheet: member (Enter to go back): "))
        if not ref:
            return
        reason = await _ask(_("reason given to the member: "))
        if not reason:
            print(_("a reason is required; nothing returned"))
            return
        try:
            reply = await self.booth.return_sheet(ref, reason)
        except grpc.aio.AioRpcError as exc:
            _say(_("not returned: {reason}").format(reason=_refusal(exc)))
            return
        _say(_("sheet of {member}: {outcome}").format(member=ref, outcome=_(reply.outcome)))


async def run_console(*, pki_dir: Path, site_id: str, workstation_id: str, agent: str,
                      draft_path: Path | None = None) -> int:
    booth = BoothTerminal(pki_dir=pki_dir, site_id=site_id, workstation_id=workstation_id,
                          agent=agent)
    draft_file = draft_path or pki_dir.parent / "booths" / site_id / workstation_id / "draft.json"
    try:
        enrolled = await booth.enrol()
        print(_("workstation {workstation} (room {room}) ready").format(
            workstation=enrolled.workstation_id, room=enrolled.room_id), flush=True)
        while True:
            id_number = await _ask(_("ID number (empty to quit): "))
            if not id_number:
                return 0
            code = await _ask_secret(_("one-time code from the notice (not shown): "))
            try:
                signed_in = await booth.sign_in(id_number, code)
                form = await booth.form()
            except grpc.aio.AioRpcError as exc:
                _say(_("sign-in refused: {reason}").format(reason=_refusal(exc)))
                continue
            _say(_("welcome, {name}; this workstation is now locked to you").format(
                name=signed_in.expert_name))
            draft = load_draft(draft_file, signed_in.session_id, [b.code for b in form.bids],
                               {c.id: Decimal(c.max_score) for c in form.criteria})
            outcome = await SheetSession(booth, form, draft).run()
            if outcome == "signed":
                return 0
            if outcome == "left":
                print(_("your draft is kept at this booth; sign in again to go on"))
    except grpc.aio.AioRpcError as exc:
        _say(_("error: {code}: {detail}").format(code=exc.code().name, detail=exc.details()))
        return 1
    except EOFError:
        print("\n" + _("input closed: nothing signed was lost; the draft is kept at this booth"))
        return 0
    finally:
        await booth.close()
