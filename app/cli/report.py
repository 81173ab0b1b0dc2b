"""`evalgrid report verify|html`: a committee's signed report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.options import CliError, add_trust, pinned_trust
from evalgrid.i18n import _


def cmd_report_verify(args: argparse.Namespace) -> int:
    from coordinator.report import verify_report

    trust = pinned_trust(args)
    problems = verify_report(Path(args.file), trust)
    if problems:
        print(_("report verification FAILED:"))
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(_("report verified: {file} is signed by the coordinator ({source}) and unaltered")
          .format(file=args.file, source=trust.source))
    return 0


def cmd_report_html(args: argparse.Namespace) -> int:
    """The page from the signed JSON, in this process's language (the body is the same)."""
    from coordinator.report_page import render_html

    try:
        signed = json.loads(Path(args.file).read_text(encoding="utf-8"))
        body, signature, key = signed["report"], signed["signature"], signed["public_key"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"file: {args.file} is not a signed report ({exc})") from None
    page = render_html(body, signature=str(signature), public_key=str(key))
    if args.out == "-":
        sys.stdout.write(page)
    else:
        Path(args.out).write_text(page, encoding="utf-8")
        print(_("wrote {path}").format(path=args.out))

    return 0


def register(sub: Any) -> Any:
    """`report verify|html`; returns the `report` subparsers (the records add `conduct` and
    `service` to them)."""
    report = sub.add_parser("report", help="committee reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    p = report_sub.add_parser("verify", help="check a report's signature")
    p.add_argument("file", help="a report JSON (DATA_DIR/reports/PROJECT.json)")
    add_trust(p)
    p.set_defaults(func=cmd_report_verify)
    p = report_sub.add_parser("html", help="print a report's page (HTML) in the chosen "
                              "language (--lang before the command)")
    p.add_argument("file", help="a report JSON (DATA_DIR/reports/PROJECT.json)")
    p.add_argument("-o", "--out", default="-", help="the HTML file; - writes to stdout")
    p.set_defaults(func=cmd_report_html)
    return report_sub
