"""`evalgrid`: one command for every process and tool of the grid.

Subcommands import what they need when they run, so `evalgrid --help` is instant and the agent
never loads the coordinator's code (nor the other way round).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from app.cli import audit, draw, operator_steps, pki, plan, processes, province, records, report
from app.cli.options import CliError, shows_defaults, user_errors
from evalgrid.forking import keep_grpc_out_of_forks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalgrid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO (EVALGRID_LOG_LEVEL=DEBUG for more)")
    parser.add_argument("--lang", default=None,
                        help="language of consoles, booth, notices and reports: zh_CN or en "
                        "(default: EVALGRID_LANG, else zh_CN under a zh_* locale, else en)")
    sub = parser.add_subparsers(dest="command", required=True)

    pki.register(sub)
    province.register(sub)
    processes.register(sub)
    plan.register(sub)
    draw.register(sub)
    audit_sub = audit.register(sub)
    operator_steps.register(sub)
    report_sub = report.register(sub)
    records.register(sub, report_sub, audit_sub)  # conduct, report conduct|service, audit inspect
    shows_defaults(parser)
    return parser


def _choose_language(explicit: str | None) -> None:
    """One language for this process and the ones it starts (the demo's agents, booths)."""
    from evalgrid.i18n import LanguageError, choose, set_language

    try:
        lang = set_language(choose(explicit))
    except LanguageError as exc:
        raise CliError(str(exc)) from None
    os.environ["EVALGRID_LANG"] = lang


def main(argv: list[str] | None = None) -> int:
    keep_grpc_out_of_forks()  # before a subcommand loads grpc (evalgrid/forking.py)
    args = build_parser().parse_args(argv)
    try:
        _choose_language(args.lang)
    except CliError as exc:
        print(f"evalgrid: {exc}", file=sys.stderr)
        return 2
    # EVALGRID_LOG_LEVEL (e.g. DEBUG) reaches the demo's child processes too.
    level = os.environ.get("EVALGRID_LOG_LEVEL", "").upper() or (
        "INFO" if args.verbose else "WARNING")
    logging.basicConfig(level=level if level in logging.getLevelNamesMapping() else "WARNING",
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"evalgrid: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, user_errors()):
            print(f"evalgrid: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
