"""CLI of the centres' records: `conduct`, `report conduct|service`, `audit inspect`.

Registered by `app.cli.main.build_parser`; the code runs only when a command is chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.options import CliError

if TYPE_CHECKING:
    from evalgrid.trust import PinnedTrust


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: a date YYYY-MM-DD, not {value!r}") from None


def _rules(args: argparse.Namespace) -> Path | None:
    return Path(args.rules) if args.rules else None


def _run(coro: Any) -> Any:
    from coordinator.domain.conduct import ConductError
    from coordinator.domain.inspection import InspectionError

    try:
        return asyncio.run(coro)
    except (ConductError, InspectionError) as exc:
        raise CliError(str(exc)) from None


def cmd_conduct_update(args: argparse.Namespace) -> int:
    from coordinator.centre_records import conduct_update, holds_operator_role

    data = Path(args.data_dir).resolve()
    holds_operator_role(data, args.operator)
    result = _run(conduct_update(data, args.redis_url, by=f"operator:{args.operator}",
                                 rules_path=_rules(args)))
    _print_bars(result)
    return 0


def _print_bars(result: dict[str, Any]) -> None:
    import textwrap

    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result["by_kind"].items())) or "none"
    print(textwrap.fill(f"conduct bars (version {result['version']}, audit seq "
                        f"{result['audit_seq']}): {result['bars']} bar(s) on "
                        f"{result['experts']} expert(s) from {result['events']} recorded "
                        f"event(s); {kinds}", width=79))


def cmd_conduct_sanction(args: argparse.Namespace) -> int:
    from coordinator.centre_records import conduct_sanction, holds_operator_role

    data = Path(args.data_dir).resolve()
    holds_operator_role(data, args.operator)
    result = _run(conduct_sanction(
        data, args.redis_url, expert_id=args.expert, start=_date(args.start, "--from"),
        end=_date(args.until, "--until"), reason=args.reason,
        by=f"operator:{args.operator}", rules_path=_rules(args)))
    print(f"sanction {result['sanction']} recorded (audit seq {result['sanction_seq']})")
    _print_bars(result)
    return 0


def cmd_report_conduct(args: argparse.Namespace) -> int:
    from coordinator.centre_records import conduct_report

    data = Path(args.data_dir).resolve()
    result = _run(conduct_report(data, args.redis_url, quarter=args.quarter,
                                 out_dir=Path(args.out) if args.out else data / "records",
                                 operator=args.operator, rules_path=_rules(args)))
    who = "named (operator)" if result["named"] else "under keyed pseudonyms"
    print(f"conduct {args.quarter}: {result['rows']} expert(s) {who}\n"
          f"  {result['csv']}\n  {result['html']}")
    return 0


def cmd_report_service(args: argparse.Namespace) -> int:
    from coordinator.centre_records import service_report

    data = Path(args.data_dir).resolve()
    result = _run(service_report(data, args.redis_url, start=_date(args.start, "--from"),
                                 end=_date(args.end, "--to"),
                                 out_dir=Path(args.out) if args.out else data / "records",
                                 rules_path=_rules(args)))
    if args.json:
        print(json.dumps(result, sort_keys=True, ensure_ascii=False))
    else:
        totals = result["totals"]
        print(f"service {args.start} - {args.end}: {totals['guest_projects']} guest "
              f"project(s), {totals['seat_services']} expert-seat service(s)\n"
              f"  {result['csv']}\n  {result['html']}")
    return 0


def cmd_audit_inspect(args: argparse.Namespace) -> int:
    from coordinator.centre_records import (
        InspectionRequest,
        inspect,
        parse_period,
        roster_from,
    )

    data = Path(args.data_dir).resolve()
    start, end = parse_period(args.period)
    roster = roster_from(data, Path(args.roster) if args.roster else None)
    out = Path(args.out) if args.out else data / "records" / f"inspection-{start}-{end}.json"
    record = _run(inspect(data, args.redis_url,
                          InspectionRequest(start, end, args.sample, args.inspectors, roster),
                          out=out, rules_path=_rules(args)))
    import textwrap

    weights = record["inputs"]["weights"]
    print(textwrap.fill("weights: " + ", ".join(f"{k} {v}" for k, v in sorted(
        weights.items())), width=79, subsequent_indent="  "))
    print(f"committed (audit seq {record['commitment']['audit_seq']}): seed hash "
          f"{record['commitment']['seed_hash'][:12]}..., inputs "
          f"{record['commitment']['input_digest'][:12]}...")
    for row in record["result"]:
        print(f"  {row['project_id']}  weight {row['weight']:>3}  inspector {row['inspector']}")
    print(f"record: {out}  (replay: evalgrid draw verify {out})")
    return 0


def verify_inspection_file(path: Path, trust: Callable[[], PinnedTrust], *,
                           accept_unanchored: bool = False) -> int | None:
    """`draw verify` on an inspection record: the exit status; None if it is not one.

    The replay shows that the record agrees with itself; its carried audit entries, checked
    with the pinned coordinator key, show that the commitment was signed before the draw and
    the result after it (a record of format /1 carries none: refused unless
    `accept_unanchored`)."""
    from coordinator.domain.anchoring import entries_from_export
    from coordinator.domain.inspection import FORMAT, FORMATS, anchor_problems, verify_inspection

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") not in FORMATS:
        return None
    problems = verify_inspection(record)
    anchored = record.get("format") == FORMAT
    if anchored:
        signer = record.get("signer")
        rows = record.get("audit")
        if not isinstance(signer, dict):
            problems.append("signer: the record names no signer")
        elif not isinstance(rows, list):
            problems.append("audit: the record carries no audit entries")
        else:
            key, refused = trust().signer(carried_key=signer.get("key"),
                                          carried_cert=signer.get("certificate") or None)
            if key is None:
                problems.append(refused)
            else:
                entries, unreadable = entries_from_export(rows)
                problems += unreadable + anchor_problems(record, entries, key)
    elif not accept_unanchored:
        problems.append(f"format: {record.get('format')} carries no signed audit entries: "
                        "the commitment is not anchored in the chain (replayed only; pass "
                        "--accept-unanchored to accept that)")
    if problems:
        print("inspection verification FAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"inspection verified: {len(record['result'])} project(s) and their inspectors "
          "replayed identically from the committed seed and inputs"
          + (", commitment and result anchored in the signed audit trail" if anchored else
             " (unanchored, accepted)"))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="data-dir",
                   help="where the grid keeps all its state (default: ./data-dir)")
    p.add_argument("--redis-url", help="the coordinator's Redis, redis://... (default: the "
                   "private one under the data dir)")
    p.add_argument("--rules", help="the coordinator's rules file (default: packaged v1)")


def register(sub: Any, report_sub: Any, audit_sub: Any) -> None:
    """Add the commands to the parsers of `evalgrid`, `evalgrid report`, `evalgrid audit`."""
    conduct = sub.add_parser("conduct", help="expert conduct: bars from the record, sanctions")
    conduct_sub = conduct.add_subparsers(dest="conduct_command", required=True)
    p = conduct_sub.add_parser("update", help="recompute the conduct bars the draw applies")
    _common(p)
    p.add_argument("--operator", required=True, help="the operator acting (certificate)")
    p.set_defaults(func=cmd_conduct_update)
    p = conduct_sub.add_parser("sanction", help="record a sanction by hand (audited)")
    p.add_argument("expert", help="the expert's id")
    p.add_argument("--from", dest="start", required=True, help="first day barred")
    p.add_argument("--until", required=True, help="last day barred")
    p.add_argument("--reason", required=True, help="why, as it will read in the audit trail")
    p.add_argument("--operator", required=True, help="the operator acting (certificate)")
    _common(p)
    p.set_defaults(func=cmd_conduct_sanction)

    p = report_sub.add_parser("conduct", help="a quarter's expert conduct (CSV and HTML)")
    p.add_argument("--quarter", required=True, help="e.g. 2026Q4")
    p.add_argument("--out", help="folder (default: DATA_DIR/records)")
    p.add_argument("--operator", help="name experts (needs the operator's certificate)")
    _common(p)
    p.set_defaults(func=cmd_report_conduct)
    p = report_sub.add_parser("service", help="site service statistics (CSV and HTML)")
    p.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--out", help="folder (default: DATA_DIR/records)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    _common(p)
    p.set_defaults(func=cmd_report_service)

    p = audit_sub.add_parser("inspect", help="double-random inspection draw (committed seed)")
    p.add_argument("--period", required=True, help="FROM..TO, a day, or a quarter (2026Q4)")
    p.add_argument("--sample", type=int, required=True, help="projects to inspect")
    p.add_argument("--inspectors", type=int, default=1, help="inspectors to draw")
    p.add_argument("--roster", help="auditor roster, one name a line (default: the data "
                                    "dir's auditor certificates)")
    p.add_argument("--out", help="the record (default: DATA_DIR/records/inspection-...json)")
    _common(p)
    p.set_defaults(func=cmd_audit_inspect)
