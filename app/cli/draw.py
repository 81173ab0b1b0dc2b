"""`evalgrid draw export|verify` and `evalgrid registry snapshot`: a project's draws for an
auditor, replayed against the pinned key and, with a registry snapshot, the pools."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from app.cli.options import (
    REDIS_URL_HELP,
    CliError,
    add_data_dir,
    add_trust,
    data_dir,
    pinned_trust,
)
from evalgrid.i18n import _


def cmd_draw_export(args: argparse.Namespace) -> int:
    from coordinator.offline import export_draws

    archive = asyncio.run(export_draws(args.project, data_dir(args), args.redis_url))
    try:
        Path(args.out).write_text(json.dumps(archive, indent=1, sort_keys=True),
                                  encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(archive['draws'])} draw(s) of {args.project} to {args.out}")
    return 0


def cmd_registry_snapshot(args: argparse.Namespace) -> int:
    from coordinator.domain.rules import load_rules
    from coordinator.registry_export import snapshot_registry

    rules = load_rules(Path(args.rules) if args.rules else None)
    out = Path(args.out)
    try:
        detail = asyncio.run(snapshot_registry(data_dir(args), args.redis_url, rules, out))
    except OSError as exc:
        raise CliError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote the registry snapshot ({detail['experts']} experts, {detail['companies']} "
          f"companies, {detail['sites']} sites, {detail['projects']} projects) to {out}")
    print(f"pool digest {detail['pool_digest']}, signed into the audit chain")
    return 0


def _registry_file(args: argparse.Namespace) -> dict[str, Any] | None:
    """The --registry snapshot a verifier re-derives pools from (None: not asked)."""
    if not args.registry:
        return None
    try:
        found = json.loads(Path(args.registry).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"--registry: cannot read {args.registry}: {exc}") from None
    if not isinstance(found, dict):
        raise CliError(f"--registry: {args.registry} is not a registry snapshot")
    return found


def cmd_draw_verify(args: argparse.Namespace) -> int:
    from app.cli.records import verify_inspection_file
    from coordinator.domain.rules import load_rules
    from coordinator.offline import verify_draw_file
    from evalgrid.progress import phases

    inspection = verify_inspection_file(  # an inspection draw replays (and anchors) here too
        Path(args.file), lambda: pinned_trust(args), accept_unanchored=args.accept_unanchored)
    if inspection is not None:
        return inspection
    trust = pinned_trust(args)
    registry = _registry_file(args)
    if args.rules and registry is None:
        raise CliError("--rules: give it with --registry (the rules re-derive the pools)")
    rules = load_rules(Path(args.rules)) if args.rules else None
    with phases() as phase:
        phase(f"replaying the draws of {Path(args.file).name}")
        problems, checked = verify_draw_file(Path(args.file), trust,
                                             accept_unanchored=args.accept_unanchored,
                                             registry=registry, rules=rules)
    if problems:
        print(_("draw verification FAILED ({n} draw(s) checked):").format(n=checked))
        for problem in problems:
            print(f"  - {problem}")
        return 1
    try:
        anchored = json.loads(Path(args.file).read_text("utf-8"))["format"] != \
            "evalgrid-draw-archive/1"
    except (OSError, ValueError, KeyError, TypeError):
        anchored = False
    how = _("anchored in the signed audit chain and replayed") if anchored else \
        _("replayed (format 1: NOT anchored in the audit chain)")
    print(_("draw verified against {source}: {n} draw(s) {how}, identical committee, venues "
            "and seats").format(source=trust.source, n=checked, how=how))
    if registry is not None:
        print(_("pools re-derived from the registry snapshot and the rules: no candidate "
                "missing or extra (booking and conduct bars as declared)"))
    return 0


def register(sub: Any) -> None:
    """`draw export|verify`, `registry snapshot`."""
    draw = sub.add_parser("draw", help="export and verify draws")
    draw_sub = draw.add_subparsers(dest="draw_command", required=True)
    p = draw_sub.add_parser("export", help="write a self-contained archive of a project's draws")
    p.add_argument("project", help="the project id")
    p.add_argument("--out", required=True, help="the archive file to write (JSON)")
    add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_draw_export)
    p = draw_sub.add_parser("verify", help="check an archive's anchors, replay it; exit 0 only "
                            "if both hold")
    p.add_argument("file", help="an archive written by `draw export`")
    add_trust(p)
    p.add_argument("--accept-unanchored", action="store_true",
                   help="accept a format-1 archive, which carries no audit entries (replay only)")
    p.add_argument("--registry", metavar="SNAPSHOT",
                   help="a registry snapshot (`registry snapshot`): re-derive each draw's pool "
                   "and name any candidate missing or extra with the rule that decides it")
    p.add_argument("--rules", metavar="RULES",
                   help="with --registry: the rules file the draws used (default: the "
                   "packaged rules)")
    p.set_defaults(func=cmd_draw_verify)

    registry = sub.add_parser("registry", help="the registry as an auditor gets it")
    registry_sub = registry.add_subparsers(dest="registry_command", required=True)
    p = registry_sub.add_parser("snapshot", help="write the registry snapshot (no personal "
                                "data) and sign its digest into the audit chain")
    p.add_argument("--out", required=True, help="the snapshot file to write (JSON)")
    p.add_argument("--rules", metavar="RULES", help="the coordinator's rules file (default: "
                   "the packaged rules)")
    add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_registry_snapshot)
