"""`evalgrid`: one command for every process and tool of the grid.

Subcommands import what they need when they run, so `evalgrid --help` is instant and the agent
never loads the coordinator's code (nor the other way round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
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


def cmd_pki_revoke(args: argparse.Namespace) -> int:
    from evalgrid.pki import Identity, PkiError, revoke, validate_subject

    identity = None
    serial = None
    if args.serial:
        if args.role or args.id:
            raise CliError("pki revoke: give an identity or --serial, not both")
        try:
            serial = int(args.serial.removeprefix("0x"), 16)
        except ValueError as exc:
            raise CliError(f"--serial: not a hexadecimal serial number: {args.serial!r}") from exc
    else:
        subject = args.id or ("coordinator" if args.role == "coordinator" else "")
        if not args.role or not subject:
            raise CliError("pki revoke: give ROLE ID (e.g. operator alice, workstation "
                           "S0001/W-01) or --serial HEX")
        try:
            identity = Identity(validate_subject(args.role, subject), subject)
        except PkiError as exc:
            raise CliError(str(exc)) from exc
    done = revoke(_data_dir(args) / "pki", identity=identity, serial=serial, reason=args.reason)
    what = str(identity) if identity is not None else f"serial {serial:x}"
    listed = ", ".join(f"{s:x}" for s in done.serials) or "none new"
    print(f"revoked {what} ({args.reason}): {len(done.serials)} certificate(s) newly listed "
          f"[{listed}]; CRL #{done.crl_number} written to {done.crl_path}")
    print("the coordinator applies it within a second, audits it and sends it to the agents")
    return 0


# --- province ------------------------------------------------------------------------------


SCALES = ("national", "province", "small")  # their sizes: coordinator.province.generator.SCALES
SIZE_OPTIONS = ("cities", "sites", "workstations", "experts", "companies", "projects", "relations")


def cmd_province_generate(args: argparse.Namespace) -> int:
    from coordinator.province.files import write_province
    from coordinator.province.generator import SCALES as SIZES
    from coordinator.province.generator import generate_province

    params: dict[str, int] = dict(SIZES[args.scale])
    for key in SIZE_OPTIONS:
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
    from coordinator.day_plan import coordinator_executor

    try:
        executor = coordinator_executor(args.executor, args.ray_address)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    from evalgrid.lockout import LockoutPolicy

    if args.sign_in_attempts < 1:
        raise CliError("--sign-in-attempts: at least 1")
    config = CoordinatorConfig(lockout=LockoutPolicy(max_failures=args.sign_in_attempts),
                               data_dir=_data_dir(args), bind=args.bind,
                               redis_url=args.redis_url, sim_clock_start=sim,
                               rules_path=Path(args.rules) if args.rules else None,
                               executor=executor)
    asyncio.run(run_forever(config))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from site_agent.agent import AgentConfig
    from site_agent.inventory import InventoryError
    from site_agent.main import run_forever

    data = _data_dir(args)
    config = AgentConfig(site_id=args.site, pki_dir=data / "pki", coordinator=args.coordinator,
                         bind=args.bind, enrol_bind=args.enrol_bind or None,
                         data_dir=data / "agents" / args.site)  # its offline journal
    port_file = data / "agents" / args.site / "agent.port"
    try:
        asyncio.run(run_forever(config, Path(args.inventory), port_file))
    except InventoryError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_workstation(args: argparse.Namespace) -> int:
    from evalgrid.pki import paths_for
    from site_agent.booth_console import run_console

    pki_dir = _data_dir(args) / "pki"
    if args.action == "activate":
        return _activate_workstation(args, pki_dir)
    if not paths_for(pki_dir, "workstation", f"{args.site}/{args.workstation}")[1].exists():
        # No certificate yet: enrol with the one-time code the desk issued (device-bound key).
        if not args.code:
            raise CliError("this workstation has no certificate yet: ask the site desk for an "
                           "activation code (`evalgrid workstation activate`) and pass --code")
        _enrol_workstation(args, pki_dir)
    return asyncio.run(run_console(pki_dir=pki_dir, site_id=args.site,
                                   workstation_id=args.workstation, agent=args.agent))


def _activate_workstation(args: argparse.Namespace, pki_dir: Path) -> int:
    """Site staff: a one-time enrolment code for one workstation (site certificate)."""
    import grpc
    from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc

    from evalgrid.ids import request_id
    from evalgrid.tls import channel_credentials, secure_channel
    from evalgrid.wire import UNARY_DEADLINE_S

    _check_certificate(pki_dir, "site", args.site)

    async def ask() -> tuple[str, datetime]:
        channel = secure_channel(args.agent, channel_credentials(pki_dir, "site", args.site))
        try:
            code = await booth_pb2_grpc.DeskStub(channel).IssueActivationCode(
                booth_pb2.DeskActivationRequest(request_id=request_id(),
                                                workstation_id=args.workstation),
                timeout=UNARY_DEADLINE_S)
        finally:
            await channel.close()
        return code.code, code.expires_at.ToDatetime()

    try:
        code, expires = asyncio.run(ask())
    except grpc.aio.AioRpcError as exc:
        raise CliError(f"activation refused: {exc.details()}") from exc
    print(f"activation code for {args.site}/{args.workstation}: {code} "
          f"(one use, valid until {expires:%H:%M} UTC)")
    return 0


def _enrol_workstation(args: argparse.Namespace, pki_dir: Path) -> None:
    import grpc

    from site_agent.enrolment import enrol_workstation

    target = _target(args.enrol_agent, _data_dir(args) / "agents" / args.site / "enrol.port",
                     "--enrol-agent")
    try:
        enrolled = asyncio.run(enrol_workstation(
            pki_dir=pki_dir, site_id=args.site, workstation_id=args.workstation, agent=target,
            activation_code=args.code))
    except grpc.aio.AioRpcError as exc:
        raise CliError(f"enrolment refused: {exc.details()}") from exc
    print(f"enrolled {enrolled.identity}: key made here, certificate {enrolled.serial} "
          f"in {enrolled.cert_path}")


def cmd_demo(args: argparse.Namespace) -> int:
    from evalgrid.demo import DemoOptions, run_demo

    if args.tui and args.json:
        raise CliError("--tui and --json do not go together: the console owns the terminal")
    options = DemoOptions(data_dir=_data_dir(args), sites=args.sites, projects=args.projects,
                          seed=args.seed, json_out=args.json, decline_rate=args.decline_rate,
                          fresh=not args.keep, tui=args.tui, days=args.days,
                          plant_no_show=args.plant_no_show,
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


def cmd_plan(args: argparse.Namespace) -> int:
    """The day plan, as an operator client of the coordinator (Operator.PlanDay)."""
    from evalgrid.plan_client import PlanRequestError, run_plan_client

    try:
        day = date.fromisoformat(args.date)
    except ValueError as exc:
        raise CliError(f"DATE: a date YYYY-MM-DD, not {args.date!r}") from exc
    if args.ray_address and args.executor:
        raise CliError("--executor and --ray-address: give one (with --ray-address the plan "
                       "runs on the coordinator's own cluster, which it must be)")
    executor = args.executor or ""
    if args.ray_address:
        executor = "ray:auto" if args.ray_address == "auto" else args.ray_address
    data = _data_dir(args)
    operator = args.operator or _only_certificate(data / "pki", "operator", "--operator")
    coordinator = args.coordinator or (
        _target(None, data / "coordinator.port", "--coordinator")
        if (data / "coordinator.port").exists() else "127.0.0.1:50051")
    _check_certificate(data / "pki", "operator", operator)
    try:
        return asyncio.run(run_plan_client(pki_dir=data / "pki", operator=operator,
                                           coordinator=coordinator, day=day,
                                           executor=executor, request=args.request_id))
    except PlanRequestError as exc:
        raise CliError(str(exc)) from exc


def _only_certificate(pki_dir: Path, role: str, option: str) -> str:
    """The subject of the one certificate of `role` in this data dir; else ask for it."""
    found = sorted(p.stem for p in (pki_dir / role).glob("*.pem"))
    if len(found) != 1:
        raise CliError(f"{option} NAME is needed ({len(found)} {role} certificate(s) in "
                       f"{pki_dir / role})")
    return found[0]


# --- auditors' tools ----------------------------------------------------------------------


def cmd_draw_export(args: argparse.Namespace) -> int:
    from coordinator.offline import export_draws

    archive = asyncio.run(export_draws(args.project, _data_dir(args), args.redis_url))
    Path(args.out).write_text(json.dumps(archive, indent=1, sort_keys=True), encoding="utf-8")
    print(f"wrote {len(archive['draws'])} draw(s) of {args.project} to {args.out}")
    return 0


def cmd_draw_verify(args: argparse.Namespace) -> int:
    from coordinator.offline import verify_draw_file
    from evalgrid.records_cli import verify_inspection_file

    inspection = verify_inspection_file(Path(args.file))  # an inspection draw replays here too
    if inspection is not None:
        return inspection
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

    from coordinator.batch.collusion_jobs import ScoreHistory, collusion_signals_batch
    from coordinator.batch.executor import make_executor
    from coordinator.offline import scoring_history

    try:
        executor = make_executor(args.executor)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    records = asyncio.run(scoring_history(_data_dir(args), args.redis_url))
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
    p = pki_sub.add_parser("revoke", help="revoke a party's certificates (CA-signed CRL)")
    _add_data_dir(p)
    p.add_argument("role", nargs="?",
                   choices=["coordinator", "site", "operator", "auditor", "workstation"])
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--serial", help="revoke one certificate by its serial (hex)")
    p.add_argument("--reason", default="unspecified",
                   choices=["unspecified", "key_compromise", "affiliation_changed",
                            "superseded", "cessation_of_operation"])
    p.set_defaults(func=cmd_pki_revoke)

    prov = sub.add_parser("province", help="province data files")
    prov_sub = prov.add_subparsers(dest="province_command", required=True)
    p = prov_sub.add_parser("generate", help="write a synthetic province (seeded)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--scale", choices=sorted(SCALES), default="province")
    p.add_argument("--day", help="day of the projects, YYYY-MM-DD (default today)")
    for key in SIZE_OPTIONS:
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
    p.add_argument("--sign-in-attempts", type=int, default=5,
                   help="wrong one-time codes per seat or workstation within 15 minutes "
                   "before sign-in there locks for 30 (default 5)")
    p.add_argument("--executor", default="local",
                   help="batch work of the day plan: local (in-process), local:N processes, "
                   "ray or ray:N (a local Ray); with --ray-address, a Ray cluster")
    p.add_argument("--ray-address", help="auto | ray://host:port (needs --executor ray)")
    p.set_defaults(func=cmd_coordinator)

    p = sub.add_parser("plan", help="draw every project of a day (the day plan)")
    p.add_argument("date", help="the day, YYYY-MM-DD (local time of the windows)")
    _add_data_dir(p)
    p.add_argument("--operator", help="the name on the operator certificate (default: the "
                   "only one in the data dir)")
    p.add_argument("--coordinator", help="HOST:PORT (default: the port the coordinator of "
                   "this data dir wrote down, else 127.0.0.1:50051)")
    p.add_argument("--executor", help="narrow the coordinator's executor for this plan: "
                   "local | local:N | ray:N")
    p.add_argument("--ray-address", help="auto | ray://host:port: the coordinator's own "
                   "cluster (refused if it is not)")
    p.add_argument("--request-id", help="resend a plan request: the same summary comes back")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("agent", help="run a site agent")
    _add_data_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--inventory", required=True, help="the site's inventory JSON")
    p.add_argument("--coordinator", default="127.0.0.1:50051")
    p.add_argument("--bind", default="127.0.0.1:0")
    p.add_argument("--enrol-bind", default="127.0.0.1:0",
                   help="where new workstations enrol with a one-time code (server-only TLS); "
                   "'' for none")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("workstation", help="run a booth terminal (or issue its enrolment code)")
    p.add_argument("action", nargs="?", choices=["run", "activate"], default="run",
                   help="run: the booth (enrolling first with --code if it has no "
                   "certificate); activate: site staff issue a one-time enrolment code")
    _add_data_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--workstation", required=True)
    p.add_argument("--agent", required=True, help="the site agent, host:port")
    p.add_argument("--code", help="the one-time activation code from the site desk")
    p.add_argument("--enrol-agent", help="the agent's enrolment port, HOST:PORT (default: the "
                   "port the agent of this data dir wrote down)")
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
    p.add_argument("--days", type=int, default=1,
                   help="consecutive days of PROJECTS projects each; between days the operator "
                   "updates the conduct bars (default 1)")
    p.add_argument("--plant-no-show", action="store_true",
                   help="one expert drawn on the first day never shows up (see `evalgrid "
                   "report conduct`)")
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
    p.add_argument("--executor", default="local",
                   help="local | local:N | ray:N | ray:auto | ray://host:port")
    p.set_defaults(func=cmd_audit_collusion)

    report = sub.add_parser("report", help="committee reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    p = report_sub.add_parser("verify", help="check a report's signature")
    p.add_argument("file")
    p.set_defaults(func=cmd_report_verify)

    from evalgrid.records_cli import register as register_records  # conduct, service, inspect

    register_records(sub, report_sub, audit_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        if isinstance(exc, _user_errors()):
            print(f"evalgrid: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
