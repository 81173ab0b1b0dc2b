"""The grid's processes: `coordinator`, `agent`, `workstation` (a booth), `demo`, `tui`."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.cli.options import (
    CliError,
    add_data_dir,
    add_redis_server,
    check_certificate,
    coordinator_address,
    data_dir,
    province_tz,
    target_address,
)
from evalgrid.i18n import _


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

    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise CliError("--metrics-port: a port number 0-65535")
    if args.sign_in_attempts < 1:
        raise CliError("--sign-in-attempts: at least 1")
    if not 0 <= args.seed_wait_minutes <= 24 * 60:
        raise CliError("--seed-wait-minutes: 0 to 1440")
    config = CoordinatorConfig(lockout=LockoutPolicy(max_failures=args.sign_in_attempts),
                               data_dir=data_dir(args), bind=args.bind,
                               redis_url=args.redis_url, redis_server=args.redis_server,
                               sim_clock_start=sim,
                               rules_path=Path(args.rules) if args.rules else None,
                               executor=executor, notifier=args.notifier,
                               metrics_port=args.metrics_port,
                               seed_wait=timedelta(minutes=args.seed_wait_minutes),
                               failover=args.failover, health_bind=args.health_bind)
    host, _, port_text = (args.health_bind or "").rpartition(":")
    if args.health_bind is not None and not (host and port_text.isdigit()
                                             and int(port_text) <= 65535):
        raise CliError("--health-bind: HOST:PORT, e.g. 127.0.0.1:8081 (port 0: any free port)")
    if args.failover and not args.redis_url:
        raise CliError("--failover: give --redis-url, the one Redis every coordinator shares")
    asyncio.run(run_forever(config))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from site_agent.agent import AgentConfig
    from site_agent.inventory import InventoryError
    from site_agent.main import run_forever

    data = data_dir(args)
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
    from evalgrid.pki.directory import paths_for
    from site_agent.booth_console import run_console

    pki_dir = data_dir(args) / "pki"
    args.agent = target_address(args.agent, data_dir(args) / "agents" / args.site / "agent.port",
                         "--agent")
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

    check_certificate(pki_dir, "site", args.site)

    async def ask() -> tuple[str, datetime]:
        channel = secure_channel(args.agent, channel_credentials(pki_dir, "site", args.site))
        try:
            code = await booth_pb2_grpc.DeskStub(channel).IssueActivationCode(
                booth_pb2.DeskActivationRequest(request_id=request_id(),
                                                workstation_id=args.workstation),
                timeout=UNARY_DEADLINE_S)
        finally:
            await channel.close()
        return code.code, code.expires_at.ToDatetime(tzinfo=UTC)

    try:
        code, expires = asyncio.run(ask())
    except grpc.aio.AioRpcError as exc:
        raise CliError(_("activation refused: {reason}").format(reason=exc.details())) from exc
    print(_("activation code for {site}/{workstation}: {code} (one use, valid until {until})")
          .format(site=args.site, workstation=args.workstation, code=code,
                  until=f"{expires.astimezone(province_tz()):%H:%M %z}"))
    return 0


def _enrol_workstation(args: argparse.Namespace, pki_dir: Path) -> None:
    import grpc

    from site_agent.enrolment import enrol_workstation

    target = target_address(args.enrol_agent, data_dir(args) / "agents" / args.site / "enrol.port",
                     "--enrol-agent")
    try:
        enrolled = asyncio.run(enrol_workstation(
            pki_dir=pki_dir, site_id=args.site, workstation_id=args.workstation, agent=target,
            activation_code=args.code))
    except grpc.aio.AioRpcError as exc:
        raise CliError(_("enrolment refused: {reason}").format(reason=exc.details())) from exc
    print(_("enrolled {identity}: key made here, certificate {serial} in {path}").format(
        identity=enrolled.identity, serial=enrolled.serial, path=enrolled.cert_path))


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import DemoOptions, run_demo

    if args.tui and args.json:
        raise CliError("--tui and --json do not go together: the console owns the terminal")
    options = DemoOptions(data_dir=data_dir(args), sites=args.sites, projects=args.projects,
                          seed=args.seed, json_out=args.json, decline_rate=args.decline_rate,
                          fresh=not args.keep, tui=args.tui, redis_server=args.redis_server,
                          days=args.days, plant_no_show=args.plant_no_show,
                          pace_s=args.pace if args.pace is not None else 0.4 if args.tui else 0)
    return asyncio.run(run_demo(options))


def cmd_tui_site(args: argparse.Namespace) -> int:
    from tui.main import run_site

    data = data_dir(args)
    agent = target_address(args.agent, data / "agents" / args.site / "agent.port", "--agent")
    check_certificate(data / "pki", "site", args.site)
    asyncio.run(run_site(pki_dir=data / "pki", site_id=args.site, agent=agent))
    return 0


def cmd_tui_operator(args: argparse.Namespace) -> int:
    from tui.main import run_operator

    data = data_dir(args)
    coordinator = coordinator_address(args.coordinator, data)
    check_certificate(data / "pki", args.role, args.operator)
    asyncio.run(run_operator(pki_dir=data / "pki", coordinator=coordinator,
                             name=args.operator, role=args.role))
    return 0


def register(sub: Any) -> None:
    """`coordinator`, `agent`, `workstation`, `demo`, `tui site|operator`."""
    p = sub.add_parser("coordinator", help="run the provincial coordinator")
    add_data_dir(p)
    p.add_argument("--bind", default="127.0.0.1:50051", help="HOST:PORT to serve gRPC on "
                   "(port 0: any free port, written to DATA_DIR/coordinator.port)")
    p.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    add_redis_server(p)
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port "
                   "(HTTP /metrics, on the --bind host; 0: any free port, written to "
                   "DATA_DIR/metrics.port; default: no endpoint)")
    p.add_argument("--notifier", default="outbox", help="how notices reach experts: outbox "
                   "(DATA_DIR/outbox/notices.jsonl, read by a gateway) or webhook:URL (POSTed "
                   "as JSON to an SMS gateway; also kept in the outbox)")
    p.add_argument("--failover", action="store_true",
                   help="one of several coordinators on --redis-url: lead under a lease or "
                   "stand by (binding nothing) until the leader dies")
    p.add_argument("--health-bind", help="HOST:PORT for a plain gRPC health port (no TLS): "
                   "SERVING while this coordinator leads, NOT_SERVING while it stands by")
    p.add_argument("--sim-clock", help="run on a simulated clock starting at this ISO time")
    p.add_argument("--rules", help="a rules file (default: the packaged rules v1)")
    p.add_argument("--sign-in-attempts", type=int, default=5,
                   help="wrong one-time codes per seat or workstation within 15 minutes "
                   "before sign-in there locks for 30 (default 5)")
    p.add_argument("--executor", default="local",
                   help="batch work of the day plan: local (in-process), local:N processes, "
                   "ray or ray:N (a local Ray); with --ray-address, a Ray cluster")
    p.add_argument("--ray-address", help="auto | ray://host:port (needs --executor ray)")
    p.add_argument("--seed-wait-minutes", type=float, default=30,
                   help="how long a day's draws (plan or single) wait for the supervisor's seed "
                   "share before they fall back, audited, to the coordinator's alone (default 30; "
                   "0: at once, for rehearsals)")
    p.set_defaults(func=cmd_coordinator)

    p = sub.add_parser("agent", help="run a site agent")
    add_data_dir(p)
    p.add_argument("--site", required=True, help="the site id (its certificate must be in "
                   "DATA_DIR/pki)")
    p.add_argument("--inventory", required=True, help="the site's inventory JSON "
                   "(docs/inventory.md)")
    p.add_argument("--coordinator", default="127.0.0.1:50051", help="the coordinator, HOST:PORT")
    p.add_argument("--bind", default="127.0.0.1:0", help="HOST:PORT for the desk and booths "
                   "(port 0: any free port, written to DATA_DIR/agents/SITE/agent.port)")
    p.add_argument("--enrol-bind", default="127.0.0.1:0",
                   help="where new workstations enrol with a one-time code (server-only TLS); "
                   "'' for none")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("workstation", help="run a booth terminal (or issue its enrolment code)")
    p.add_argument("action", nargs="?", choices=["run", "activate"], default="run",
                   help="run: the booth (enrolling first with --code if it has no "
                   "certificate); activate: site staff issue a one-time enrolment code")
    add_data_dir(p)
    p.add_argument("--site", required=True, help="the site the booth is at")
    p.add_argument("--workstation", required=True, help="the workstation id at that site")
    p.add_argument("--agent", help="the site agent, HOST:PORT (default: the port the agent of "
                   "this data dir wrote down)")
    p.add_argument("--code", help="the one-time activation code from the site desk")
    p.add_argument("--enrol-agent", help="the agent's enrolment port, HOST:PORT (default: the "
                   "port the agent of this data dir wrote down)")
    p.set_defaults(func=cmd_workstation)

    p = sub.add_parser("demo", help="run the whole grid on a sample province")
    add_data_dir(p)
    p.add_argument("--sites", type=int, default=18, help="sites in the sample province")
    p.add_argument("--projects", type=int, default=24, help="projects of the day")
    p.add_argument("--seed", type=int, default=2026, help="the province's seed")
    p.add_argument("--decline-rate", type=float, default=0.05,
                   help="share of simulated experts who decline their notice")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--keep", action="store_true", help="keep existing state in the data dir")
    add_redis_server(p)
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
    add_data_dir(p)
    p.add_argument("--site", required=True, help="the site id (its certificate)")
    p.add_argument("--agent", help="the site agent, HOST:PORT (default: the port the agent "
                   "of this data dir wrote down)")
    p.set_defaults(func=cmd_tui_site)
    p = tui_sub.add_parser("operator", help="the operator console (talks to the coordinator)")
    add_data_dir(p)
    p.add_argument("--operator", required=True, help="the name on the operator certificate")
    p.add_argument("--coordinator", help="HOST:PORT (default: the port the coordinator of "
                   "this data dir wrote down, else 127.0.0.1:50051)")
    p.add_argument("--role", choices=["operator", "auditor"], default="operator",
                   help="an auditor's certificate gives a read-only console")
    p.set_defaults(func=cmd_tui_operator)
