"""`evalgrid audit verify|fairness|collusion`: the audit chain, the draw's law, scoring signals."""

from __future__ import annotations

import argparse
import asyncio
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


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from coordinator.offline import verify_audit
    from evalgrid.progress import phases

    if not data_dir(args).is_dir():
        raise CliError(f"--data-dir: {data_dir(args)} is not a directory")
    pinned = any((args.key, args.fingerprint, args.ca))
    trust = pinned_trust(args) if pinned else None  # a bad pin is refused before any progress shows
    with phases() as phase:
        phase("checking the chain and every signature")
        check = asyncio.run(verify_audit(data_dir(args), args.redis_url, trust))
    if not check.ok:
        print(_("audit trail BROKEN: {reason}").format(reason=check.reason))
        return 1
    print(_("audit trail intact: {n} entries, chain and signatures verified").format(
        n=check.entries_checked))
    return 0


def cmd_audit_fairness(args: argparse.Namespace) -> int:
    import hashlib

    from rich.console import Console
    from rich.table import Table

    from coordinator.batch.executor import make_executor
    from coordinator.domain.fairness import Tally, fairness_pool, fits, tally

    try:
        sizes = [int(x) for x in args.city_sizes.split(",")]
    except ValueError as exc:
        raise CliError(f"--city-sizes: comma-separated whole numbers, not "
                       f"{args.city_sizes!r}") from exc
    if len(sizes) < 2 or min(sizes) < 1 or args.seats > len(sizes) or args.draws < 1:
        raise CliError("--city-sizes: at least two cities, each with experts, and no more "
                       "seats than cities; --draws at least 1")
    pool = fairness_pool(sizes, seats=args.seats)
    seeds = [hashlib.sha256(f"{args.seed}:{i}".encode()).digest() for i in range(args.draws)]
    try:
        executor = make_executor(args.executor)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    from evalgrid.progress import phases

    chunk = max(1, args.draws // 32)
    chunks = [seeds[i:i + chunk] for i in range(0, len(seeds), chunk)]
    parts = []
    try:
        with phases() as phase:
            # Eight rounds of chunks: a bar that moves, at the cost of a few pool starts.
            step = phase(f"{args.draws:,} draws on {args.executor}", total=args.draws)
            per_round = max(1, len(chunks) // 8)
            for i in range(0, len(chunks), per_round):
                batch = chunks[i:i + per_round]
                parts.extend(executor.map_chunks(tally, pool, batch))
                step(sum(len(c) for c in batch))
    finally:
        executor.close()
    total = Tally()
    for part in parts:
        total.add(part)
    console = Console()
    table = Table(title=f"draw fairness: {total.draws} draws, {len(sizes)} venues, "
                        f"{len(pool.inputs.candidates)} experts, committee {args.seats}")
    for column in ("what", "categories", "chi-square", "dof", "p-value",
                   "furthest off (observed / expected)"):
        table.add_column(column)
    ok = True
    for fit in fits(pool, total):
        ok &= fit.p_value >= args.alpha
        name, obs, exp = fit.worst
        table.add_row(fit.what, str(fit.categories), f"{fit.statistic:.1f}", str(fit.dof),
                      f"{fit.p_value:.3f}", f"{name}: {obs} / {exp:.1f}")
    console.print(table)
    venue_rows = Table(title="venue selection frequency")
    for column in ("venue", "city experts", "drawn", "expected"):
        venue_rows.add_column(column)
    expected = total.draws * args.seats / len(sizes)
    assert total.venues is not None
    for venue, city in sorted(pool.city_of_venue.items()):
        venue_rows.add_row(venue, str(pool.city_size[city]), str(total.venues[venue]),
                           f"{expected:.1f}")
    console.print(venue_rows)
    verdict = "consistent with" if ok else "NOT consistent with"
    console.print(f"the draw is {verdict} the stated distribution at alpha = {args.alpha}")
    return 0 if ok else 1


def cmd_audit_collusion(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from coordinator.batch.collusion_jobs import ScoreHistory, collusion_signals_batch
    from coordinator.batch.executor import make_executor
    from coordinator.offline import scoring_history

    try:
        executor = make_executor(args.executor)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    records = asyncio.run(scoring_history(data_dir(args), args.redis_url))
    try:
        signals = collusion_signals_batch(ScoreHistory.from_records(records), executor,
                                          min_projects=args.min_projects)
    finally:
        executor.close()
    console = Console()
    console.print(f"{len(records)} signed scores from {len({r.project_id for r in records})} "
                  "reported projects; members under stable pseudonyms")
    favour = Table(title="experts who score a company above the other members (favour)")
    for column in ("expert", "company", "projects", "mean excess (share of max)", "z"):
        favour.add_column(column)
    for f in signals.favour[:args.top]:
        favour.add_row(f.expert_ref, f.bidder_id, str(f.projects), f"{f.mean_residual:+.3f}",
                       f"{f.z:.2f}")
    console.print(favour)
    lockstep = Table(title="pairs of experts who score in lock-step")
    for column in ("expert", "expert", "shared projects", "shared items", "correlation", "z"):
        lockstep.add_column(column)
    for pair in signals.lockstep[:args.top]:
        lockstep.add_row(pair.expert_a, pair.expert_b, str(pair.shared_projects),
                         str(pair.shared_items), f"{pair.correlation:.2f}", f"{pair.z:.2f}")
    console.print(lockstep)
    console.print("signals are leads for supervisors, not findings")
    return 0


def register(sub: Any) -> Any:
    """`audit verify|fairness|collusion`; returns the `audit` subparsers (the records add
    `inspect` to them)."""
    audit = sub.add_parser("audit", help="audit tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the hash chain and signatures")
    add_trust(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_audit_verify)

    p = audit_sub.add_parser("fairness", help="many draws on a fixed pool vs. the stated law")
    p.add_argument("--draws", type=int, default=20000, help="how many draws to tally")
    p.add_argument("--seed", type=int, default=1, help="seed of the draws' seeds")
    p.add_argument("--seats", type=int, default=5, help="committee size of each draw")
    p.add_argument("--city-sizes", default="8,12,16,20,24,30,40,60",
                   help="experts per city, one venue per city (comma separated)")
    p.add_argument("--executor", default="local:2",
                   help="local | local:N | ray | ray:N | ray:auto | ray://host:port")
    p.add_argument("--alpha", type=float, default=0.001,
                   help="a p-value below this fails the check (exit 1)")
    p.set_defaults(func=cmd_audit_fairness)

    p = audit_sub.add_parser("collusion", help="favour and lock-step signals over the history")
    add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.add_argument("--min-projects", type=int, default=3,
                   help="projects an expert or pair must share to be scored")
    p.add_argument("--top", type=int, default=10, help="rows per table")
    p.add_argument("--executor", default="local",
                   help="local | local:N | ray:N | ray:auto | ray://host:port")
    p.set_defaults(func=cmd_audit_collusion)
    return audit_sub
