"""The workflow of a day, end to end through the real parts of an in-process grid.

Host sites register over SiteLink with their own certificates; the operator draws; notices go to
the outbox; a decline triggers a chained supplementary draw; guest agents receive the
reservations; nothing can be checked in or signed in before the window; at the window start the
operator starts the evaluation; experts check in at the guest desk, sign in at the drawn booth
(which then locks to them), score, revise and sign; the operator closes each project; the
signed report, the independent checker, the audit chain and every draw's replay all agree.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, common_pb2, operator_pb2, site_link_pb2
from grid_fixture import Grid, fair_scores, focus_projects, wait_until

from app.cli.main import main as cli_main
from coordinator.checker import check_grid
from coordinator.domain.draw.inputs import pack_mask, unpack_mask
from coordinator.domain.rules import load_rules
from coordinator.offline import export_draws, reveal_seeds, verify_draw_file
from coordinator.registry_export import snapshot_registry
from coordinator.report import verify_report
from evalgrid.ids import request_id
from evalgrid.trust import PinnedTrust
from evalgrid.wire import UNARY_DEADLINE_S, from_window
from site_agent.booth_terminal import Score

SESSION_RE = re.compile(r"ses-[0-9a-f]{16}")
HEX64 = re.compile(r"[0-9a-f]{64}")


async def _code_of(call: object) -> grpc.StatusCode:
    """Await a gRPC call that must fail; return its status code."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_a_day_of_projects_end_to_end(grid: Grid) -> None:
    projects = sorted(grid.province.projects, key=lambda p: (p.window.start, p.id))
    focus = focus_projects(grid.province)[0]  # scored, in the earliest window

    # --- register: each host site registers its own projects; a resend is harmless ---------
    await grid.register_all()
    again = await grid.register(focus)
    assert again.project_id == focus.id and again.duplicate

    # --- draw every project; each draw sends one notice per seat -------------------------------
    notices_of: dict[str, list[dict[str, str]]] = {}
    for project in projects:
        reply, notices = await grid.draw(project.id)
        seats = sum(q.count for q in project.quotas)
        assert reply.project_id == project.id
        assert reply.seats == seats == len(notices)
        assert HEX64.fullmatch(reply.commitment) and HEX64.fullmatch(reply.input_digest)
        assert reply.venues == len({n["venue_id"] for n in notices})
        assert len({n["expert_id"] for n in notices}) == seats
        for notice in notices:
            assert datetime.fromisoformat(notice["start"]) == project.window.start
            assert datetime.fromisoformat(notice["end"]) == project.window.end
            # Guest venues only: never the project's city, never the host's city.
            site = next(s for s in grid.province.sites
                        if s.id == grid.site_of_venue(notice["venue_id"]))
            assert site.city != project.city
        notices_of[project.id] = notices
    with pytest.raises(grpc.aio.AioRpcError) as redraw:
        await grid.draw(focus.id)
    assert redraw.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await grid.draw("P-NOT-REGISTERED")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert unknown.value.details() == "project_id: no project 'P-NOT-REGISTERED'"

    # --- a decline: a supplementary draw replaces exactly that member ------------------------
    declined = notices_of[focus.id][0]
    others = {n["expert_id"] for n in notices_of[focus.id]}
    before = len(grid.notices())
    assert await grid.reply(declined["notice_id"], False, "schedule conflict") == \
        "declined-redrawn"
    fresh = grid.notices()[before:]
    assert len(fresh) == 1
    replacement = fresh[0]
    assert replacement["expert_id"] not in others  # not the old one, not any other member
    assert replacement["start"] == declined["start"] and replacement["end"] == declined["end"]
    assert replacement["notice_id"] != declined["notice_id"]
    assert await grid.reply(declined["notice_id"], True) == "already-declined"
    notices_of[focus.id] = [*notices_of[focus.id][1:], replacement]

    # Everyone else accepts.
    for notices in notices_of.values():
        for notice in notices:
            assert await grid.reply(notice["notice_id"], True) == "accepted"

    # --- the guest agents hold the reservations: opaque sessions and times only --------------
    expected: Counter[tuple[str, datetime]] = Counter(
        (grid.site_of_venue(n["venue_id"]), datetime.fromisoformat(n["start"]))
        for notices in notices_of.values() for n in notices)
    await grid.wait_held(expected)  # the declined seat's session was released, too
    # The desk board shows each reserved workstation with an opaque session and its window:
    # the earliest reservation the agent holds on it.
    for site in grid.province.sites:
        held = grid.held(site.id)
        earliest: dict[str, str] = {}
        for session_id, r in sorted(held.items(), key=lambda kv: from_window(kv[1].window)):
            earliest.setdefault(r.workstation_id, session_id)
        board = await grid.board(site.id)
        assert board.coordinator_connected and board.site_id == site.id
        shown = {w.workstation_id: w for w in board.workstations if w.session_id}
        assert {ws: w.session_id for ws, w in shown.items()} == earliest
        for w in shown.values():
            assert w.state == common_pb2.WORKSTATION_STATE_RESERVED
            assert SESSION_RE.fullmatch(w.session_id)
            assert from_window(w.window) == from_window(held[w.session_id].window)
        assert all(w.state == common_pb2.WORKSTATION_STATE_FREE
                   for w in board.workstations if not w.session_id)
    # Where the focus project's seats are, by site: workstation -> session.
    reserved_at = {site.id: {r.workstation_id: session_id
                             for session_id, r in grid.held(site.id).items()
                             if from_window(r.window)[0] == focus.window.start}
                   for site in grid.province.sites}

    # --- before the window: no check-in, no sign-in, no start -----------------------------------
    expert = grid.experts[replacement["expert_id"]]
    site_id = grid.site_of_venue(replacement["venue_id"])
    desk = grid.desk(site_id)
    checkin = desk.CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=replacement["code"]),
        timeout=UNARY_DEADLINE_S)
    assert await _code_of(checkin) == grpc.StatusCode.FAILED_PRECONDITION
    early_ws = next(iter(reserved_at[site_id]))
    early = await grid.booth(site_id, early_ws)
    await early.enrol()
    assert await _code_of(early.sign_in(expert.id_number, replacement["code"])) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert await _code_of(grid.operator.StartEvaluation(operator_pb2.ProjectRequest(
        request_id=request_id(), project_id=focus.id), timeout=UNARY_DEADLINE_S)) == \
        grpc.StatusCode.FAILED_PRECONDITION

    # --- the window opens ------------------------------------------------------------------------
    assert await grid.advance_to(focus.window.start) == focus.window.start
    assert await grid.start(focus.id) == "evaluating"
    assert await grid.start(focus.id) == "evaluating"  # a resend changes nothing

    # The declined expert's old code is dead.
    gone = grid.experts[declined["expert_id"]]
    assert await _code_of(grid.desk(grid.site_of_venue(declined["venue_id"])).CheckIn(
        booth_pb2.DeskCheckInRequest(request_id=request_id(), id_number=gone.id_number,
                                     code=declined["code"]), timeout=UNARY_DEADLINE_S)) == \
        grpc.StatusCode.PERMISSION_DENIED

    # Desk check-in names the drawn workstation, which the board shows reserved.
    checked = await desk.CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=replacement["code"]),
        timeout=UNARY_DEADLINE_S)
    ws_id = checked.workstation_id
    reserved = reserved_at[site_id]
    assert ws_id in reserved

    # Sign-in at the booth, with the workstation's own certificate.
    booth = await grid.booth(site_id, ws_id)
    enrolled = await booth.enrol()
    assert enrolled.workstation_id == ws_id and enrolled.room_id == checked.room_id
    signed_in = await booth.sign_in(expert.id_number, replacement["code"])
    assert signed_in.session_id == reserved[ws_id]
    assert signed_in.expert_name == expert.name
    assert signed_in.expert_ref.startswith("exp-") and expert.id not in signed_in.expert_ref
    board = await grid.board(site_id)
    state = {w.workstation_id: w.state for w in board.workstations}
    assert state[ws_id] == common_pb2.WORKSTATION_STATE_SIGNED_IN

    # The workstation is locked to that expert: another booth's certificate, or a wrong code,
    # cannot act on it.
    spare = next(w for w in grid.workstations_of(site_id)
                 if w not in {r.workstation_id for r in grid.held(site_id).values()})
    intruder = await grid.booth(site_id, spare)
    assert await _code_of(intruder.stub.SignIn(booth_pb2.BoothSignInRequest(
        request_id=request_id(), workstation_id=ws_id, id_number=expert.id_number,
        code=replacement["code"]), timeout=UNARY_DEADLINE_S)) == \
        grpc.StatusCode.PERMISSION_DENIED
    assert await _code_of(intruder.stub.GetSheetForm(booth_pb2.BoothFormRequest(
        workstation_id=ws_id), timeout=UNARY_DEADLINE_S)) == grpc.StatusCode.PERMISSION_DENIED
    wrong = "000000" if replacement["code"] != "000000" else "111111"
    assert await _code_of(booth.stub.SignIn(booth_pb2.BoothSignInRequest(
        request_id=request_id(), workstation_id=ws_id, id_number=expert.id_number,
        code=wrong), timeout=UNARY_DEADLINE_S)) == grpc.StatusCode.PERMISSION_DENIED

    # The form: the project's criteria and the valid bids under codes.
    form = await booth.form()
    assert form.session_id == signed_in.session_id and form.project_name == focus.name
    assert [c.id for c in form.criteria] == [c.id for c in focus.scoring.criteria]
    valid = [b for b in focus.bids if b.valid]
    assert len(form.bids) == len(valid) == len({b.code for b in form.bids})
    bidder_ids = {b.bidder_id for b in focus.bids}
    assert not any(b.code in bidder_ids for b in form.bids)
    names = {c.id: c.name for c in grid.province.companies}
    if focus.double_blind:
        assert all(b.bidder_name == "" for b in form.bids)
    else:
        assert {b.bidder_name for b in form.bids} == {names[b.bidder_id] for b in valid}

    # Scores: a draft, a revision, then the signature; signed is final.
    draft = await booth.submit(fair_scores(form, "0.5"), signed=False)
    assert draft.accepted and not draft.duplicate
    revised = await booth.submit(fair_scores(form, "0.7"), signed=False)
    assert revised.accepted and revised.digest != draft.digest
    over = [Score(s.bid_code, s.criterion_id, "1000") for s in fair_scores(form)]
    assert await _code_of(booth.submit(over, signed=True)) == grpc.StatusCode.INVALID_ARGUMENT
    final_scores = fair_scores(form, "0.8")
    final = await booth.submit(final_scores, signed=True)
    assert final.accepted and not final.duplicate and HEX64.fullmatch(final.digest)
    resent = await booth.submit(final_scores, signed=True)
    assert resent.accepted and resent.duplicate and resent.digest == final.digest
    changed = [*final_scores[:-1], Score(final_scores[-1].bid_code,
                                         final_scores[-1].criterion_id, "0")]
    assert await _code_of(booth.submit(changed, signed=True)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert await _code_of(booth.submit(changed, signed=False)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    await booth.close()

    # Closing before every member signed is refused.
    assert await _code_of(grid.operator.CloseEvaluation(operator_pb2.ProjectRequest(
        request_id=request_id(), project_id=focus.id), timeout=60)) == \
        grpc.StatusCode.FAILED_PRECONDITION

    # --- every other seat of every project, window by window; then close --------------------
    by_start: dict[datetime, list[str]] = defaultdict(list)
    for project in projects:
        by_start[project.window.start].append(project.id)
    reports: dict[str, Path] = {}
    for start in sorted(by_start):
        await grid.advance_to(start)
        for project_id in by_start[start]:
            if project_id != focus.id:
                assert await grid.start(project_id) == "evaluating"
            for notice in notices_of[project_id]:
                if notice is not replacement:
                    await grid.evaluate_seat(notice)
            closed = await grid.close(project_id)
            assert closed.state == "reported"
            reports[project_id] = Path(closed.detail)
    assert (await grid.close(focus.id)).state == "reported"  # a resend changes nothing

    # --- the signed reports ----------------------------------------------------------------------
    trust = PinnedTrust.from_data_dir(grid.data.root)
    for project_id, path in reports.items():
        assert path == grid.data.reports / f"{project_id}.json" and path.exists()
        assert verify_report(path, trust) == []
        assert (grid.data.reports / f"{project_id}.html").exists()
    body = json.loads(reports[focus.id].read_text())["report"]
    assert body["project"]["id"] == focus.id
    assert body["supplementary_draws"] == 1 and len(body["draws"]) == 2
    statuses = Counter(m["status"] for m in body["committee"])
    assert statuses == {"declined": 1, "signed": len(notices_of[focus.id])}
    text = reports[focus.id].read_text()
    assert all(n["expert_id"] not in text for n in [declined, *notices_of[focus.id]])

    # The host site fetches its result; another site may not.
    result = await grid.site_link(focus.host_site_id).GetResult(
        site_link_pb2.ResultRequest(project_id=focus.id), timeout=UNARY_DEADLINE_S)
    assert result.state == "reported" and json.loads(result.report_json) == json.loads(text)
    stranger = next(s.id for s in grid.province.sites if s.id != focus.host_site_id)
    assert await _code_of(grid.site_link(stranger).GetResult(
        site_link_pb2.ResultRequest(project_id=focus.id), timeout=UNARY_DEADLINE_S)) == \
        grpc.StatusCode.PERMISSION_DENIED

    # The guest agents were told to release the sessions.
    async def released() -> bool:
        for site in grid.province.sites:
            board = await grid.board(site.id)
            if any(w.session_id for w in board.workstations):
                return False
        return True

    await wait_until(released, "every session released after the reports")

    status = await grid.operator.Status(operator_pb2.StatusRequest(), timeout=UNARY_DEADLINE_S)
    assert status.projects == status.projects_reported == len(projects)

    # --- every draw replays from its archive, the supplementary one chained to the first -----
    # The day's seed round (the draws' seeds derive from it) is revealed with the awards.
    (day,) = {p.window.start.date().isoformat() for p in projects}
    _, day_seed = await reveal_seeds(day, grid.data.root, grid.redis_url)
    assert len(day_seed) == 64
    # An outside auditor holds ca.pem, the exports and the registry snapshot: every pool
    # re-derives (coordinator/domain/registry_snapshot.py; tests/test_registry_snapshot.py).
    registry_file = grid.root / "registry.json"
    await snapshot_registry(grid.data.root, grid.redis_url, load_rules(), registry_file)
    registry = json.loads(registry_file.read_text())
    outside = PinnedTrust.from_ca(grid.data.pki / "ca.pem")
    for project in projects:
        archive = await export_draws(project.id, grid.data.root, grid.redis_url)
        assert archive["project_id"] == project.id
        assert len(archive["draws"]) == (2 if project.id == focus.id else 1)
        out = grid.root / f"{project.id}.draws.json"
        out.write_text(json.dumps(archive))
        assert verify_draw_file(out, trust) == ([], len(archive["draws"]))
        assert verify_draw_file(out, outside, registry=registry) == ([], len(archive["draws"]))
        if project.id == focus.id:  # one candidate of the redraw's pool barred after the fact
            narrowed = json.loads(out.read_text())
            last = narrowed["draws"][-1]["inputs"]
            rows = narrowed["snapshots"][last["snapshot"]]["candidates"]
            barred = unpack_mask(last["barred"], len(rows), "barred").copy()
            codes = {q.specialty for q in project.quotas}
            row = next(i for i, c in enumerate(rows) if not barred[i] and any(
                s == q or s.startswith(q + ".") for s in c[2] for q in codes))
            barred[row] = True
            last["barred"] = pack_mask(barred)
            out.write_text(json.dumps(narrowed))
            problems, _ = verify_draw_file(out, outside, registry=registry)
            assert any(f"candidate {rows[row][0]} is missing from the pool" in p
                       for p in problems), problems
            assert cli_main(["draw", "verify", str(out), "--ca", str(grid.data.pki / "ca.pem"),
                             "--registry", str(registry_file)]) == 1
            out.write_text(json.dumps(archive))
            assert cli_main(["draw", "verify", str(out), "--ca", str(grid.data.pki / "ca.pem"),
                             "--registry", str(registry_file)]) == 0
        # Referenced inputs: the export carries the day snapshot each draw names, once.
        named = {d["inputs"]["snapshot"] for d in archive["draws"]}
        assert set(archive["snapshots"]) == named
        forged = json.loads(out.read_text())
        digest = next(iter(named))
        first = forged["snapshots"][digest]["candidates"][0]
        first[3] = [*first[3], "Elsewhere"]  # one catchment city added to one expert
        out.write_text(json.dumps(forged))
        problems, _ = verify_draw_file(out, trust)
        assert any(p.startswith(f"snapshots[{digest}]") for p in problems), problems
        del forged["snapshots"]
        out.write_text(json.dumps(forged))
        problems, _ = verify_draw_file(out, trust)
        assert any("not provided" in p for p in problems), problems
        out.write_text(json.dumps(archive))
        if project.id == focus.id:
            assert archive["draws"][1]["commitment"]["parent"]
            tampered = json.loads(out.read_text())
            seed = tampered["draws"][1]["seed"]
            tampered["draws"][1]["seed"] = ("0" if seed[0] != "0" else "1") + seed[1:]
            out.write_text(json.dumps(tampered))
            problems, _ = verify_draw_file(out, trust)
            assert problems and any("seed" in p for p in problems)

    # --- the independent checker over the final stored state --------------------------------
    check = await check_grid(grid.data.root, grid.redis_url)
    assert check.details == []
    assert check.double_bookings == 0 and check.rule_violations == 0
    assert check.audit_intact and check.audit_entries > 0


async def test_guest_agent_gets_reserve_commands_for_drawn_seats(grid: Grid) -> None:
    """Each seat of a draw becomes one Reserve command at its guest site, fenced in order."""
    project = min(grid.province.projects, key=lambda p: p.id)
    await grid.register(project)
    _, notices = await grid.draw(project.id)
    per_site = Counter(grid.site_of_venue(n["venue_id"]) for n in notices)

    async def delivered() -> bool:
        return all(sum(1 for c in grid.commands[s] if c.WhichOneof("body") == "reserve") == k
                   for s, k in per_site.items())

    await wait_until(delivered, "reserve commands at every drawn site")
    for site_id, count in per_site.items():
        reserves = [c for c in grid.commands[site_id] if c.WhichOneof("body") == "reserve"]
        assert len(reserves) == count
        fences = [c.fence for c in grid.commands[site_id]]
        assert fences == sorted(fences) and len(set(fences)) == len(fences)
        inventory = set(grid.workstations_of(site_id))
        for command in reserves:
            assert command.reserve.workstation_id in inventory
            assert from_window(command.reserve.window) == (project.window.start,
                                                           project.window.end)
    # No site that got no seat received a reservation.
    for site in grid.province.sites:
        if site.id not in per_site:
            assert not any(c.WhichOneof("body") == "reserve" for c in grid.commands[site.id])


async def test_a_stopped_agent_goes_offline(grid: Grid) -> None:
    site_id = grid.province.sites[0].id
    await grid.agents[site_id].stop()

    async def offline() -> bool:
        status = await grid.operator.Status(operator_pb2.StatusRequest(),
                                            timeout=UNARY_DEADLINE_S)
        return status.sites_online == len(grid.province.sites) - 1

    await wait_until(offline, f"{site_id} counted offline after its agent stopped", timeout=3)
