"""The operator's steps of a day, each one Operator RPC (evalgrid/operator_client.py):
`projects`, `evaluation`, `notice`, `signin unlock`, `clock advance`, `incident`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, tzinfo
from typing import Any

from app.cli.options import (
    CliError,
    add_data_dir,
    check_certificate,
    coordinator_address,
    data_dir,
    iso_day,
    only_certificate,
    province_tz,
)


def _operator_link(args: argparse.Namespace) -> Any:
    from evalgrid.operator_client import OperatorLink

    data = data_dir(args)
    role = getattr(args, "role", "operator")
    name = args.operator or only_certificate(data / "pki", role, "--operator")
    coordinator = coordinator_address(args.coordinator, data)
    check_certificate(data / "pki", role, name)
    return OperatorLink(pki_dir=data / "pki", name=name, coordinator=coordinator,
                        tz=province_tz(), role=role)


def _run_step(step: Any) -> int:
    """Run one operator step; a refusal is printed with the coordinator's reason (exit 2)."""
    from rich.console import Console

    from evalgrid.operator_client import OperatorCallError

    try:
        shown = asyncio.run(step)
    except OperatorCallError as exc:
        raise CliError(str(exc)) from None
    Console().print(shown)
    return 0


def _required_text(value: str, option: str) -> str:
    if not value.strip():
        raise CliError(f"{option}: required (it goes to the audit trail)")
    return value.strip()


def _local_time(value: str | None, option: str, tz: tzinfo) -> datetime | None:
    """An ISO date-time; without an offset it is the province's local time."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: not an ISO date-time (e.g. 2026-03-03T09:00): "
                       f"{value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def cmd_evaluation(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    link = _operator_link(args)
    if args.action == "start":
        return _run_step(op.start_evaluation(link, args.project, args.request_id))
    return _run_step(op.close_evaluation(link, args.project, args.request_id))


def cmd_notice(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    link = _operator_link(args)
    if args.action == "list":
        return _run_step(op.list_notices(link, args.id))
    if args.action == "resend":
        return _run_step(op.resend_notice(link, args.id, _required_text(args.reason, "--reason"),
                                          args.request_id))
    if args.accept == args.decline:
        raise CliError("notice reply: give --accept or --decline")
    reason = args.reason.strip()
    if args.decline and not reason:
        raise CliError("--reason: required with --decline (it goes to the audit trail)")
    return _run_step(op.reply_to_notice(link, args.id, accept=args.accept, reason=reason,
                                        rid=args.request_id))


def cmd_signin_unlock(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    if not (args.workstation or args.session):
        raise CliError("signin unlock: give --workstation and/or --session (the locked scope)")
    link = _operator_link(args)
    return _run_step(op.unlock_sign_in(link, site_id=args.site,
                                       workstation_id=args.workstation or "",
                                       session_id=args.session or "",
                                       reason=_required_text(args.reason, "--reason"),
                                       rid=args.request_id))


def cmd_incident(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    link = _operator_link(args)
    if args.action == "list":
        return _run_step(op.list_incidents(link, args.all))
    start = _local_time(args.new_start, "--new-start", link.tz)
    end = _local_time(args.new_end, "--new-end", link.tz)
    if (start is None) != (end is None):
        raise CliError("--new-start and --new-end: give both or neither")
    window = (start, end) if start is not None and end is not None else None
    return _run_step(op.decide_incident(link, args.incident, args.decision,
                                        _required_text(args.note, "--note"), window,
                                        args.request_id))


def cmd_projects(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    if args.action == "story":
        if not (args.project or "").strip():
            raise CliError("PROJECT: required (evalgrid projects story PROJECT)")
        if args.last < 0:
            raise CliError("--last: must be 0 (all) or more")
        return _run_step(op.project_story(_operator_link(args), args.project, args.last))
    if args.project:
        raise CliError(f"PROJECT: {args.project!r} unexpected (the story of one project is "
                       "`evalgrid projects story PROJECT`)")
    if args.day:
        iso_day(args.day, "--day")
    return _run_step(op.list_projects(_operator_link(args), args.day or ""))


def cmd_clock_advance(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    link = _operator_link(args)
    to = _local_time(args.to, "TIME", link.tz)
    assert to is not None
    return _run_step(op.advance_clock(link, to))


def _operator_options(parser: argparse.ArgumentParser, *, writes: bool = True) -> None:
    add_data_dir(parser)
    parser.add_argument("--operator", help="the name on the operator certificate (default: the "
                        "only one in the data dir)")
    parser.add_argument("--coordinator", help="HOST:PORT (default: the port the coordinator of "
                        "this data dir wrote down, else 127.0.0.1:50051)")
    if writes:
        parser.add_argument("--request-id", help="resend an earlier request: it is applied "
                            "once, the same answer comes back (default: a fresh id)")


def register(sub: Any) -> None:
    """The operator's steps of a day, each one RPC (authorized and audited by the coordinator)."""
    p = sub.add_parser("projects", help="list the projects and their states, or `story "
                       "PROJECT`: every transition of one project (operator)")
    _operator_options(p, writes=False)
    p.add_argument("action", nargs="?", choices=["story"],
                   help="story: the project's transitions and what caused each")
    p.add_argument("project", nargs="?", metavar="PROJECT", help="the project id (story)")
    p.add_argument("--day", help="only windows starting on this local day, YYYY-MM-DD "
                   "(default: all)")
    p.add_argument("--last", type=int, default=0,
                   help="story: only the newest N transitions (default: all)")
    p.set_defaults(func=cmd_projects)

    p = sub.add_parser("evaluation", help="start an evaluation (unseal) or close it (aggregate, "
                       "signed report, seed revealed)")
    p.add_argument("action", choices=["start", "close"],
                   help="start: unseal at the window (audited); close: every sheet signed")
    p.add_argument("project", help="the project id")
    _operator_options(p)
    p.set_defaults(func=cmd_evaluation)

    notice = sub.add_parser("notice", help="notices to drawn experts: list, record an answer, "
                            "send again")
    notice_sub = notice.add_subparsers(dest="notice_command", required=True)
    p = notice_sub.add_parser("list", help="a project's notices (opaque ids, venue, status)")
    p.add_argument("id", metavar="PROJECT", help="the project id")
    _operator_options(p, writes=False)
    p.set_defaults(func=cmd_notice, action="list")
    p = notice_sub.add_parser("reply", help="record an expert's answer (a decline is redrawn "
                              "at once: a supplementary draw)")
    p.add_argument("id", metavar="NOTICE", help="the notice id")
    p.add_argument("--accept", action="store_true", help="the expert accepts")
    p.add_argument("--decline", action="store_true", help="the expert declines")
    p.add_argument("--reason", default="", help="why (required with --decline)")
    _operator_options(p)
    p.set_defaults(func=cmd_notice, action="reply")
    p = notice_sub.add_parser("resend", help="send a notice again through the notifier "
                              "(same code; audited)")
    p.add_argument("id", metavar="NOTICE", help="the notice id")
    p.add_argument("--reason", required=True, help="why it is sent again (audited)")
    _operator_options(p)
    p.set_defaults(func=cmd_notice, action="resend")

    signin = sub.add_parser("signin", help="sign-in lockouts")
    signin_sub = signin.add_subparsers(dest="signin_command", required=True)
    p = signin_sub.add_parser("unlock", help="lift a sign-in lockout (too many wrong codes)")
    p.add_argument("--site", required=True, help="the guest site")
    p.add_argument("--workstation", help="the locked workstation (its id at that site)")
    p.add_argument("--session", help="the locked seat (its opaque session id)")
    p.add_argument("--reason", required=True, help="why the lock is lifted (audited)")
    _operator_options(p)
    p.set_defaults(func=cmd_signin_unlock)

    clock = sub.add_parser("clock", help="a rehearsal's simulated clock (--sim-clock)")
    clock_sub = clock.add_subparsers(dest="clock_command", required=True)
    p = clock_sub.add_parser("advance", help="move the coordinator's simulated clock forward")
    p.add_argument("to", metavar="TIME", help="ISO date-time (province time unless an offset "
                   "is given), e.g. 2026-03-02T09:00")
    _operator_options(p, writes=False)
    p.set_defaults(func=cmd_clock_advance)

    incident = sub.add_parser("incident", help="site failures at or during a window")
    incident_sub = incident.add_subparsers(dest="incident_command", required=True)
    p = incident_sub.add_parser("list", help="open incidents, their deadlines and the "
                                "decisions open now")
    p.add_argument("--all", action="store_true", help="closed ones too")
    _operator_options(p, writes=False)
    p.set_defaults(func=cmd_incident, action="list")
    p = incident_sub.add_parser("decide", help="record the decision the rules leave to people")
    p.add_argument("incident", help="the incident id")
    p.add_argument("decision", choices=["wait", "postpone", "reevaluate"],
                   help="what was decided (the incident list says which are open now)")
    p.add_argument("--note", required=True, help="whose decision and why (audited)")
    p.add_argument("--new-start", help="postpone / reevaluate: when the new committee sits, "
                   "ISO date-time (province time unless an offset is given)")
    p.add_argument("--new-end", help="the end of that new window")
    _operator_options(p)
    p.set_defaults(func=cmd_incident, action="decide")
