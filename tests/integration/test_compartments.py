"""Need-to-know, as each compartment sees it through the API and in the store.

- a guest site gets opaque sessions and times: no project, no expert, no party;
- a notice tells the expert the venue, the time and a code: no project, no party, no colleague;
- the host site learns nothing about the guest venues before the evaluation starts;
- a raw dump of Redis never puts a drawn expert's id next to the project's id, and a drawn
  expert's id appears only in the expert registry and in the expert's own booking set;
- the audit trail names no drawn expert before the evaluation starts.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

import grpc
import pytest
import redis.asyncio as aioredis
from evalgrid_wire.v1 import booth_pb2, site_link_pb2
from grid_fixture import Grid, fair_scores, focus_projects

from coordinator.domain.model import Project
from evalgrid.ids import request_id
from evalgrid.wire import UNARY_DEADLINE_S, from_window
from site_agent.booth_terminal import Score

# `text` is the notice as the expert reads it, made of the venue, the time and the code only.
NOTICE_KEYS = {"notice_id", "expert_id", "venue_id", "venue", "start", "end", "code", "text",
               "kind"}
BOOKING_MEMBER = re.compile(rb"(\d+):(\d+):(hold-[0-9a-f]{16})")


async def dump_redis(url: str) -> dict[str, bytes]:
    """Every key with all of its content, read type by type (DUMP for anything else)."""
    client = aioredis.Redis.from_url(url)
    out: dict[str, bytes] = {}
    try:
        async for raw_key in client.scan_iter(count=1000):
            kind = (await client.type(raw_key)).decode()
            parts: list[bytes] = [raw_key]
            if kind == "string":
                parts.append(await client.get(raw_key) or b"")
            elif kind == "hash":
                for field, value in (await client.hgetall(raw_key)).items():
                    parts += [field, value]
            elif kind == "zset":
                for member, score in await client.zrange(raw_key, 0, -1, withscores=True):
                    parts += [member, str(score).encode()]
            elif kind == "set":
                parts += sorted(await client.smembers(raw_key))
            elif kind == "list":
                parts += await client.lrange(raw_key, 0, -1)
            elif kind == "stream":
                for entry_id, fields in await client.xrange(raw_key):
                    parts.append(entry_id)
                    for field, value in fields.items():
                        parts += [field, value]
            else:
                parts.append(await client.dump(raw_key) or b"")
            out[raw_key.decode()] = b"\x00".join(parts)
    finally:
        await client.aclose()
    return out


def _token(value: str) -> re.Pattern[bytes]:
    """`value` as a whole token (not inside a longer id such as E00012)."""
    return re.compile(rb"(?<![A-Za-z0-9])" + re.escape(value.encode()) + rb"(?![A-Za-z0-9])")


def _party_strings(grid: Grid, project: Project) -> set[str]:
    """Everything that identifies a project or its parties."""
    companies = {c.id: c for c in grid.province.companies}
    ids = {project.tenderer_id, *(b.bidder_id for b in project.bids)}
    out = {project.id, project.name, project.competent_department}
    for company_id in ids:
        company = companies[company_id]
        out |= {company.id, company.name}
        out |= {p.name for p in company.people}
    return out


async def _draw_day(grid: Grid) -> dict[str, list[dict[str, str]]]:
    """Register and draw every project; decline one seat of the focus project; accept the rest.

    Returns every notice sent, by project (the declined one included).
    """
    await grid.register_all()
    notices_of: dict[str, list[dict[str, str]]] = {}
    for project in sorted(grid.province.projects, key=lambda p: p.id):
        _, notices = await grid.draw(project.id)
        notices_of[project.id] = notices
    focus = focus_projects(grid.province)[0]
    before = len(grid.notices())
    declined = notices_of[focus.id][0]
    assert await grid.reply(declined["notice_id"], False, "ill") == "declined-redrawn"
    notices_of[focus.id] += grid.notices()[before:]
    for notices in notices_of.values():
        for notice in notices:
            if notice is not declined:
                assert await grid.reply(notice["notice_id"], True) == "accepted"
    active = [n for ns in notices_of.values() for n in ns if n is not declined]
    await grid.wait_held(Counter((grid.site_of_venue(n["venue_id"]),
                                  datetime.fromisoformat(n["start"])) for n in active))
    return notices_of


def _assert_no_expert_next_to_project(dump: dict[str, bytes], grid: Grid,
                                      notices_of: dict[str, list[dict[str, str]]]) -> None:
    for project_id, notices in notices_of.items():
        project_token = _token(project_id)
        for notice in notices:
            expert_token = _token(notice["expert_id"])
            both = [k for k, blob in dump.items()
                    if project_token.search(blob) and expert_token.search(blob)]
            assert both == [], f"{notice['expert_id']} next to {project_id} in {both}"


async def test_guest_site_sees_only_opaque_sessions_and_times(grid: Grid) -> None:
    notices_of = await _draw_day(grid)
    forbidden: set[str] = set()
    for project in grid.province.projects:
        forbidden |= _party_strings(grid, project)
    for notices in notices_of.values():
        for n in notices:
            expert = grid.experts[n["expert_id"]]
            forbidden |= {expert.id, expert.name, expert.id_number, n["notice_id"]}
    patterns = [_token(s) for s in forbidden]

    reserves = 0
    for site in grid.province.sites:
        # The reserve commands the agent received: a session, a workstation, a window.
        for command in grid.commands[site.id]:
            body = command.WhichOneof("body")
            if body == "reserve":
                reserves += 1
                assert {f.name for f, _ in command.reserve.ListFields()} <= {
                    "session_id", "workstation_id", "window"}
            raw = command.SerializeToString()
            assert not [p.pattern for p in patterns if p.search(raw)]
        # The desk board, as serialized on the wire.
        board = await grid.board(site.id)
        raw = board.SerializeToString()
        leaked = [p.pattern for p in patterns if p.search(raw)]
        assert leaked == [], f"board of {site.id} shows {leaked}"
        for ws in board.workstations:
            assert {f.name for f, _ in ws.ListFields()} <= {
                "workstation_id", "room_id", "room_name", "state", "session_id", "window"}
    assert reserves == sum(len(ns) for ns in notices_of.values())  # declined one included

    # A booth before sign-in: its state and the session, nothing about the project.
    focus = focus_projects(grid.province)[0]
    notice = notices_of[focus.id][-1]
    site_id = grid.site_of_venue(notice["venue_id"])
    ws_id = next(r.workstation_id for r in grid.held(site_id).values()
                 if from_window(r.window)[0] == focus.window.start)
    booth = await grid.booth(site_id, ws_id)
    await booth.enrol()
    beat = await booth.heartbeat()
    assert beat.session_id in grid.held(site_id)
    assert not [p.pattern for p in patterns if p.search(beat.SerializeToString())]
    with pytest.raises(grpc.aio.AioRpcError) as no_form:
        await booth.form()
    assert no_form.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_notices_name_venue_time_and_code_only(grid: Grid) -> None:
    notices_of = await _draw_day(grid)
    venues = {v.id: (s, v) for s in grid.province.sites for v in s.venues}
    for project_id, notices in notices_of.items():
        project = grid.projects[project_id]
        hidden = _party_strings(grid, project) | {project.host_site_id}
        members = {n["expert_id"] for n in notices}
        for notice in notices:
            assert set(notice) == NOTICE_KEYS and notice["kind"] == "evaluation"
            assert re.fullmatch(r"\d{6}", notice["code"])
            site, venue = venues[notice["venue_id"]]
            assert venue.name in notice["venue"] and site.city in notice["venue"]
            assert datetime.fromisoformat(notice["start"]) == project.window.start
            assert notice["code"] in notice["text"] and notice["venue"] in notice["text"]

            text = " ".join(notice.values())
            assert not [s for s in hidden if _token(s).search(text.encode())]
            colleagues = members - {notice["expert_id"]}
            assert not [e for e in colleagues if _token(e).search(text.encode())]


async def test_host_site_learns_no_venue_before_the_start(grid: Grid) -> None:
    notices_of = await _draw_day(grid)
    for project in grid.province.projects:
        reply = await grid.site_link(project.host_site_id).GetResult(
            site_link_pb2.ResultRequest(project_id=project.id), timeout=UNARY_DEADLINE_S)
        assert reply.state == "drawn" and reply.report_json == ""
        raw = reply.SerializeToString()
        for notice in notices_of[project.id]:
            for secret in (notice["venue_id"], grid.site_of_venue(notice["venue_id"]),
                           notice["expert_id"]):
                assert not _token(secret).search(raw)


async def test_redis_never_pairs_an_expert_with_a_project(grid: Grid) -> None:
    notices_of = await _draw_day(grid)
    drawn = {n["expert_id"] for ns in notices_of.values() for n in ns}
    declined_notice = notices_of[focus_projects(grid.province)[0].id][0]
    # The declined expert may sit on another committee of the day (fresh seeds, random draws).
    seated = {n["expert_id"] for ns in notices_of.values() for n in ns if n is not declined_notice}

    dump = await dump_redis(grid.redis_url)
    assert "prov:experts" in dump and any(k.startswith("alloc:") for k in dump)
    _assert_no_expert_next_to_project(dump, grid, notices_of)

    # Where a drawn expert's id may appear at all: the registry (with its keyed-hash index of ID
    # numbers), and the expert's own booking set (whose members hold only times and an opaque
    # holder). `bk:~maxlen` is the booking store's index of resource keys (key -> longest
    # interval booked), part of the same thing.
    for expert_id in drawn:
        token = _token(expert_id)
        found = sorted(k for k, blob in dump.items() if token.search(blob))
        # `conduct:events:<expert>` holds the expert's own conduct record, sealed: its key
        # says only that the expert has one, never for which project.
        assert set(found) <= {"prov:experts", "prov:expert_ids", f"bk:ex:{expert_id}",
                              "bk:~maxlen", f"conduct:events:{expert_id}"}, found
        assert (f"bk:ex:{expert_id}" in found) == (expert_id in seated)
    # Exactly the members still on a committee hold a booking: the declined seat was released.
    ex_keys = [k for k in dump if k.startswith("bk:ex:")]
    assert {k.removeprefix("bk:ex:") for k in ex_keys} == seated
    for key in ex_keys:
        for member in dump[key].split(b"\x00")[1::2]:
            assert BOOKING_MEMBER.fullmatch(member), member

    # Names and identity numbers of drawn experts: only in the registry.
    for expert_id in drawn:
        expert = grid.experts[expert_id]
        for secret in (expert.id_number, expert.name):
            token = _token(secret)
            found = [k for k, blob in dump.items() if token.search(blob)]
            assert all(k.startswith("prov:") for k in found), (secret, found)

    # The audit trail, before the start, names no drawn expert in any way.
    audit = dump["audit"]
    for expert_id in drawn:
        expert = grid.experts[expert_id]
        for secret in (expert.id, expert.id_number, expert.name):
            assert not _token(secret).search(audit), secret

    # Evaluation starts, one expert signs in and signs a sheet: still no pairing in the store.
    focus = focus_projects(grid.province)[0]
    await grid.advance_to(focus.window.start)
    assert await grid.start(focus.id) == "evaluating"
    await grid.evaluate_seat(notices_of[focus.id][-1])
    after = await dump_redis(grid.redis_url)
    assert any(k.startswith("sheet:") for k in after)
    _assert_no_expert_next_to_project(after, grid, notices_of)


async def test_a_refused_sheet_names_the_bid_code_not_the_bidder(grid: Grid) -> None:
    notices_of = await _draw_day(grid)
    focus = focus_projects(grid.province)[0]
    await grid.advance_to(focus.window.start)
    assert await grid.start(focus.id) == "evaluating"
    notice = notices_of[focus.id][-1]
    expert = grid.experts[notice["expert_id"]]
    site_id = grid.site_of_venue(notice["venue_id"])
    checked = await grid.desk(site_id).CheckIn(booth_pb2.DeskCheckInRequest(
        request_id=request_id(), id_number=expert.id_number, code=notice["code"]),
        timeout=UNARY_DEADLINE_S)
    booth = await grid.booth(site_id, checked.workstation_id)
    await booth.enrol()
    await booth.sign_in(expert.id_number, notice["code"])
    form = await booth.form()
    scores = fair_scores(form)
    scores[0] = Score(scores[0].bid_code, scores[0].criterion_id, "100000")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await booth.submit(scores, signed=True)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    bidders = [b.bidder_id for b in focus.bids if _token(b.bidder_id).search(details.encode())]
    assert bidders == [], details
    assert scores[0].bid_code in details
