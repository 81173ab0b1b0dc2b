"""`evalgrid`: one command for every process and tool of the grid.

Subcommands import what they need when they run, so `evalgrid --help` is instant and the agent
never loads the coordinator's code (nor the other way round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path

DEFAULT_DATA_DIR = Path("data-dir")


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input or a missing file: a message, never a traceback."""
    from coordinator.domain.rules import RulesError
    from coordinator.offline import OfflineError
    from coordinator.store.embedded_redis import EmbeddedRedisError
    from coordinator.store.keys import KeyFileError
    from evalgrid.pki import PkiError

    return (OfflineError, KeyFileError, PkiError, RulesError, EmbeddedRedisError)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).resolve()


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                        help="where the grid keeps all its state (default: ./data-dir)")


# --- pki -----------------------------------------------------------------------------------


def cmd_pki_init(args: argparse.Namespace) -> int:
    from evalgrid.pki import PkiError, init_ca

    pki_dir = _data_dir(args) / "pki"
    try:
        path = init_ca(pki_dir, force=args.force)
    except PkiError as exc:
        raise CliError(str(exc)) from exc
    print(f"provincial CA created: {path}")
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from evalgrid.pki import PkiError, issue

    subject = args.id or ("coordinator" if args.role == "coordinator" else "")
    if not subject:
        raise CliError(f"pki issue {args.role}: an id is required")
    hosts = tuple(args.host) if args.host else ("localhost", "127.0.0.1", "::1")
    try:
        issued = issue(_data_dir(args) / "pki", args.role, subject, hosts=hosts)
    except PkiError as exc:
        raise CliError(str(exc)) from exc
    print(f"issued {issued.identity}: {issued.cert_path} (key {issued.key_path})")
    return 0


# --- province ------------------------------------------------------------------------------


SCALES = {
    "small": {"cities": 6, "sites": 18, "workstations": 360, "experts": 3000, "companies": 600,
              "projects": 24},
    "province": {"cities": 16, "sites": 150, "workstations": 3000, "experts": 20000,
                 "companies": 4000, "projects": 200},
    "national": {"cities": 300, "sites": 3000, "workstations": 30000, "experts": 300000,
                 "companies": 60000, "projects": 20000},
}


def cmd_province_generate(args: argparse.Namespace) -> int:
    from coordinator.province.files import write_province
    from coordinator.province.generator import generate_province

    params = dict(SCALES[args.scale])
    for key in ("cities", "sites", "workstations", "experts", "companies", "projects"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    day = date.fromisoformat(args.day) if args.day else date.today()
    province = generate_province(seed=args.seed, day=day, **params)
    out = Path(args.out)
    write_province(province, out)
    print(f"wrote {len(province.sites)} sites, {len(province.experts)} experts, "
          f"{len(province.companies)} companies, {len(province.projects)} projects to {out}")
    return 0


def cmd_province_import(args: argparse.Namespace) -> int:
    from coordinator.offline import import_province
    from coordinator.province.files import ImportFailed

    try:
        counts = asyncio.run(import_province(Path(args.dir), _data_dir(args), args.redis_url))
    except ImportFailed as exc:
        print(f"import refused, nothing stored: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print("imported: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


# --- processes -----------------------------------------------------------------------------


def cmd_coordinator(args: argparse.Namespace) -> int:
    from coordinator.server import CoordinatorConfig, run_forever

    try:
        sim = datetime.fromisoformat(args.sim_clock) if args.sim_clock else None
    except ValueError as exc:
        raise CliError(f"--sim-clock: not an ISO date-time: {args.sim_clock!r}") from exc
    if sim is not None and sim.tzinfo is None:
        raise CliError("--sim-clock: give a timezone, e.g. 2026-11-24T00:00:00+08:00")
    config = CoordinatorConfig(data_dir=_data_dir(args), bind=args.bind,
                               redis_url=args.redis_url, sim_clock_start=sim,
                               rules_path=Path(args.rules) if args.rules else None)
    asyncio.run(run_forever(config))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from site_agent.agent import AgentConfig
    from site_agent.inventory import InventoryError
    from site_agent.main import run_forever

    data = _data_dir(args)
    config = AgentConfig(site_id=args.site, pki_dir=data / "pki", coordinator=args.coordinator,
                         bind=args.bind)
    port_file = data / "agents" / args.site / "agent.port"
    try:
        asyncio.run(run_forever(config, Path(args.inventory), port_file))
    except InventoryError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_workstation(args: argparse.Namespace) -> int:
    from site_agent.booth_console import run_console

    return asyncio.run(run_console(pki_dir=_data_dir(args) / "pki", site_id=args.site,
                                   workstation_id=args.workstation, agent=args.agent))


def cmd_demo(args: argparse.Namespace) -> int:
    from evalgrid.demo import DemoOptions, run_demo

    if args.tui and args.json:
        raise CliError("--tui and --json do not go together: the console owns the terminal")
    options = DemoOptions(data_dir=_data_dir(args), sites=args.sites, projects=args.projects,
                          seed=args.seed, json_out=args.json, decline_rate=args.decline_rate,
                          fresh=not args.keep, tui=args.tui,
                          pace_s=args.pace if args.pace is not None else 0.4 if args.tui else 0)
    return asyncio.run(run_demo(options))


# --- consoles ------------------------------------------------------------------------------


def _target(given: str | None, port_file: Path, option: str) -> str:
    """The address given, else the loopback port a process of this data dir wrote down."""
    if given:
        return given
    if port_file.exists() and port_file.read_text().strip():
        return f"127.0.0.1:{port_file.read_text().strip()}"
    raise CliError(f"{option} HOST:PORT is needed ({port_file} does not exist)")


def _check_certificate(pki_dir: Path, role: str, subject: str) -> None:
    from evalgrid.pki import PkiError, load_identity_files

    try:
        load_identity_files(pki_dir, role, subject)
    except PkiError as exc:
        raise CliError(str(exc)) from exc


def cmd_tui_site(args: argparse.Namespace) -> int:
    from tui.main import run_site

    data = _data_dir(args)
    agent = _target(args.agent, data / "agents" / args.site / "agent.port", "--agent")
    _check_certificate(data / "pki", "site", args.site)
    asyncio.run(run_site(pki_dir=data / "pki", site_id=args.site, agent=agent))
    return 0


def cmd_tui_operator(args: argparse.Namespace) -> int:
    from tui.main import run_operator

    data = _data_dir(args)
    coordinator = args.coordinator or (
        _target(None, data / "coordinator.port", "--coordinator")
        if (data / "coordinator.port").exists() else "127.0.0.1:50051")
    _check_certificate(data / "pki", args.role, args.operator)
    asyncio.run(run_operator(pki_dir=data / "pki", coordinator=coordinator,
                             name=args.operator, role=args.role))
    return 0


# --- auditors' tools ----------------------------------------------------------------------


def cmd_draw_export(args: argparse.Namespace) -> int:
    from coordinator.offline import export_draws

    archive = asyncio.run(export_draws(args.project, _data_dir(args), args.redis_url))
    Path(args.out).write_text(json.dumps(archive, indent=1, sort_keys=True), encoding="utf-8")
    print(f"wrote {len(archive['draws'])} draw(s) of {args.project} to {args.out}")
    return 0


def cmd_draw_verify(args: argparse.Namespace) -> int:
    from coordinator.offline import verify_draw_file

    problems, checked = verify_draw_file(Path(args.file))
    if problems:
        print(f"draw verification FAILED ({checked} draw(s) checked):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"draw verified: {checked} draw(s) replayed, identical committee, venues and seats")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from coordinator.offline import verify_audit

    check = asyncio.run(verify_audit(_data_dir(args), args.redis_url))
    if not check.ok:
        print(f"audit trail BROKEN: {check.reason}")
        return 1
    print(f"audit trail intact: {check.entries_checked} entries, chain and signatures verified")
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
    chunk = max(1, args.draws // 32)
    try:
        parts = executor.map_chunks(tally, pool, [seeds[i:i + chunk]
                                                  for i in range(0, len(seeds), chunk)])
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

    from coordinator.domain.collusion import collusion_signals
    from coordinator.offline import scoring_history

    records = asyncio.run(scoring_history(_data_dir(args), args.redis_url))
    signals = collusion_signals(records, min_projects=args.min_projects)
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


def cmd_report_verify(args: argparse.Namespace) -> int:
    from coordinator.report import verify_report

    problems = verify_report(Path(args.file))
    if problems:
        print("report verification FAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"report verified: {args.file} is signed by the coordinator and unaltered")
    return 0


# --- the parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalgrid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    pki = sub.add_parser("pki", help="the provincial CA and certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    p = pki_sub.add_parser("init", help="create the provincial CA")
    _add_data_dir(p)
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p.set_defaults(func=cmd_pki_init)
    p = pki_sub.add_parser("issue", help="issue a certificate")
    _add_data_dir(p)
    p.add_argument("role", choices=["coordinator", "site", "operator", "auditor", "workstation"])
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--host", action="append", help="a host name or IP the server answers on")
    p.set_defaults(func=cmd_pki_issue)

    prov = sub.add_parser("province", help="province data files")
    prov_sub = prov.add_subparsers(dest="province_command", required=True)
    p = prov_sub.add_parser("generate", help="write a synthetic province (seeded)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--scale", choices=sorted(SCALES), default="province")
    p.add_argument("--day", help="day of the projects, YYYY-MM-DD (default today)")
    for key in ("cities", "sites", "workstations", "experts", "companies", "projects"):
        p.add_argument(f"--{key}", type=int)
    p.set_defaults(func=cmd_province_generate)
    p = prov_sub.add_parser("import", help="import province files into the coordinator's store")
    p.add_argument("dir")
    _add_data_dir(p)
    p.add_argument("--redis-url")
    p.set_defaults(func=cmd_province_import)

    p = sub.add_parser("coordinator", help="run the provincial coordinator")
    _add_data_dir(p)
    p.add_argument("--bind", default="127.0.0.1:50051")
    p.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    p.add_argument("--sim-clock", help="run on a simulated clock starting at this ISO time")
    p.add_argument("--rules", help="a rules file (default: the packaged rules v1)")
    p.set_defaults(func=cmd_coordinator)

    p = sub.add_parser("agent", help="run a site agent")
    _add_data_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--inventory", required=True, help="the site's inventory JSON")
    p.add_argument("--coordinator", default="127.0.0.1:50051")
    p.add_argument("--bind", default="127.0.0.1:0")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("workstation", help="run a booth terminal")
    _add_data_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--workstation", required=True)
    p.add_argument("--agent", required=True, help="the site agent, host:port")
    p.set_defaults(func=cmd_workstation)

    p = sub.add_parser("demo", help="run the whole grid on a sample province")
    _add_data_dir(p)
    p.add_argument("--sites", type=int, default=18)
    p.add_argument("--projects", type=int, default=24)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--decline-rate", type=float, default=0.05)
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--keep", action="store_true", help="keep existing state in the data dir")
    p.add_argument("--tui", action="store_true",
                   help="watch it in the operator console (q quits when you are done)")
    p.add_argument("--pace", type=float, help="seconds to pause after each draw and report, "
                   "so the day can be followed (default 0.4 with --tui, else 0)")
    p.set_defaults(func=cmd_demo)

    tui = sub.add_parser("tui", help="terminal consoles for site staff and operators")
    tui_sub = tui.add_subparsers(dest="tui_command", required=True)
    p = tui_sub.add_parser("site", help="the site staff console (talks to the site's agent)")
    _add_data_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--agent", help="the site agent, HOST:PORT (default: the port the agent "
                   "of this data dir wrote down)")
    p.set_defaults(func=cmd_tui_site)
    p = tui_sub.add_parser("operator", help="the operator console (talks to the coordinator)")
    _add_data_dir(p)
    p.add_argument("--operator", required=True, help="the name on the operator certificate")
    p.add_argument("--coordinator", help="HOST:PORT (default: the port the coordinator of "
                   "this data dir wrote down, else 127.0.0.1:50051)")
    p.add_argument("--role", choices=["operator", "auditor"], default="operator",
                   help="an auditor's certificate gives a read-only console")
    p.set_defaults(func=cmd_tui_operator)

    draw = sub.add_parser("draw", help="export and verify draws")
    draw_sub = draw.add_subparsers(dest="draw_command", required=True)
    p = draw_sub.add_parser("export", help="write a self-contained archive of a project's draws")
    p.add_argument("project")
    p.add_argument("--out", required=True)
    _add_data_dir(p)
    p.add_argument("--redis-url")
    p.set_defaults(func=cmd_draw_export)
    p = draw_sub.add_parser("verify", help="replay an archive; exit 0 only if identical")
    p.add_argument("file")
    p.set_defaults(func=cmd_draw_verify)

    audit = sub.add_parser("audit", help="audit tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the hash chain and signatures")
    _add_data_dir(p)
    p.add_argument("--redis-url")
    p.set_defaults(func=cmd_audit_verify)

    p = audit_sub.add_parser("fairness", help="many draws on a fixed pool vs. the stated law")
    p.add_argument("--draws", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seats", type=int, default=5)
    p.add_argument("--city-sizes", default="8,12,16,20,24,30,40,60",
                   help="experts per city, one venue per city (comma separated)")
    p.add_argument("--executor", default="local:2",
                   help="local | local:N | ray | ray:N | ray:auto | ray://host:port")
    p.add_argument("--alpha", type=float, default=0.001)
    p.set_defaults(func=cmd_audit_fairness)

    p = audit_sub.add_parser("collusion", help="favour and lock-step signals over the history")
    _add_data_dir(p)
    p.add_argument("--redis-url")
    p.add_argument("--min-projects", type=int, default=3)
    p.add_argument("--top", type=int, default=10)
    p.set_defaults(func=cmd_audit_collusion)

    report = sub.add_parser("report", help="committee reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    p = report_sub.add_parser("verify", help="check a report's signature")
    p.add_argument("file")
    p.set_defaults(func=cmd_report_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"evalgrid: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"evalgrid: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
