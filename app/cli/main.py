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
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalgrid.i18n import _

if TYPE_CHECKING:

    from evalgrid.trust import PinnedTrust

DEFAULT_DATA_DIR = Path("data-dir")
REDIS_URL_HELP = ("the coordinator's Redis, redis://... (default: the private one under "
                  "DATA_DIR)")


class DefaultsShown(argparse.HelpFormatter):
    """Help that states each option's default, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and (action.option_strings or action.nargs in ("?", "*"))):
            text += " (default: %(default)s)"
        return text


def _shows_defaults(parser: argparse.ArgumentParser) -> None:
    """Give every parser of the tree the formatter that states defaults."""
    parser.formatter_class = DefaultsShown
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _shows_defaults(child)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that describe bad input or a missing file: a message, never a traceback."""
    from coordinator.domain.rules import RulesError
    from coordinator.notifier import NotifierConfigError
    from coordinator.offline import OfflineError
    from coordinator.store.embedded_redis import EmbeddedRedisError
    from coordinator.store.keys import KeyFileError
    from evalgrid.pki import PkiError
    from evalgrid.trust import TrustError

    return (OfflineError, KeyFileError, PkiError, RulesError, EmbeddedRedisError,
            NotifierConfigError, TrustError)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).resolve()


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                        help="where the grid keeps all its state")


def _add_redis_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-server", metavar="PATH",
        help="the Redis or Valkey server binary to run on the data dir (Redis 6.2-7.x, "
        "Valkey 7.2-9.x; default: $EVALGRID_REDIS_SERVER, else the one that last ran the data "
        "dir, else the bundled Valkey)")


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
    from evalgrid.progress import phases

    params: dict[str, int] = dict(SIZES[args.scale])
    for key in SIZE_OPTIONS:
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise CliError(f"--{key}: at least 1, not {value}")
            params[key] = value
    day = _iso_day(args.day, "--day") if args.day else datetime.now(province_tz()).date()
    out = Path(args.out)
    _writable_folder(out, "--out")
    with phases() as phase:
        phase(f"generating ({args.scale}, seed {args.seed})")
        try:
            province = generate_province(seed=args.seed, day=day, **params)
        except (ValueError, AssertionError) as exc:
            raise CliError(f"these sizes give no valid province: {exc}") from None
        phase(f"writing to {out}")
        try:
            write_province(province, out)
        except OSError as exc:
            raise CliError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {len(province.sites)} sites, {len(province.experts)} experts, "
          f"{len(province.companies)} companies, {len(province.projects)} projects to {out}")
    return 0


def _writable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that cannot be made or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{option}: cannot create {path}: {exc.strerror or exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"{option}: {path} is not a writable folder")


def cmd_province_import(args: argparse.Namespace) -> int:
    from coordinator.offline import import_province
    from coordinator.province.files import ImportFailed
    from evalgrid.progress import phases

    if not Path(args.dir).is_dir():
        raise CliError(f"DIR: {args.dir} is not a folder of province files")
    try:
        with phases() as phase:
            counts = asyncio.run(import_province(Path(args.dir), _data_dir(args),
                                                 args.redis_url, progress=phase))
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

    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise CliError("--metrics-port: a port number 0-65535")
    if args.sign_in_attempts < 1:
        raise CliError("--sign-in-attempts: at least 1")
    if not 0 <= args.seed_wait_minutes <= 24 * 60:
        raise CliError("--seed-wait-minutes: 0 to 1440")
    config = CoordinatorConfig(lockout=LockoutPolicy(max_failures=args.sign_in_attempts),
                               data_dir=_data_dir(args), bind=args.bind,
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
    args.agent = _target(args.agent, _data_dir(args) / "agents" / args.site / "agent.port",
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

    target = _target(args.enrol_agent, _data_dir(args) / "agents" / args.site / "enrol.port",
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
    options = DemoOptions(data_dir=_data_dir(args), sites=args.sites, projects=args.projects,
                          seed=args.seed, json_out=args.json, decline_rate=args.decline_rate,
                          fresh=not args.keep, tui=args.tui, redis_server=args.redis_server,
                          days=args.days, plant_no_show=args.plant_no_show,
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

    if args.date == "reveal":
        return _reveal_plan(args)
    if args.reveal_date is not None:
        raise CliError(f"one DATE, not {args.date!r} and {args.reveal_date!r}")
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


def _reveal_plan(args: argparse.Namespace) -> int:
    from coordinator.offline import reveal_seeds

    try:
        day = date.fromisoformat(args.reveal_date or "")
    except ValueError as exc:
        raise CliError(f"plan reveal DATE: a date YYYY-MM-DD, not {args.reveal_date!r}") from exc
    revealed, day_seed = asyncio.run(reveal_seeds(day.isoformat(), _data_dir(args),
                                                   args.redis_url))
    for plan_id, seed in revealed:
        print(_("plan {plan} of {day}: seed {seed}").format(plan=plan_id, day=day, seed=seed))
    if day_seed:
        print(_("seed round of {day}: seed {seed}").format(day=day, seed=day_seed))
    print(_("each draw's seed is HMAC-SHA256(day seed, project id, or id/n for the n-th "
            "redraw); `evalgrid draw verify` checks it"))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    """The supervisor's share of a day's seed (auditor certificate): commit, later reveal."""
    import hashlib
    import secrets

    import grpc
    from evalgrid_wire.v1 import operator_pb2, operator_pb2_grpc

    from evalgrid.ids import request_id
    from evalgrid.tls import channel_credentials, secure_channel

    try:
        day = date.fromisoformat(args.date)
    except ValueError as exc:
        raise CliError(f"DATE: a date YYYY-MM-DD, not {args.date!r}") from exc
    data = _data_dir(args)
    auditor = args.auditor or _only_certificate(data / "pki", "auditor", "--auditor")
    _check_certificate(data / "pki", "auditor", auditor)
    target = args.coordinator or (_target(None, data / "coordinator.port", "--coordinator")
                                  if (data / "coordinator.port").exists() else "127.0.0.1:50051")
    secret_file = Path(args.secret_file)
    if args.seed_command == "commit":
        if secret_file.exists():
            raise CliError(f"--secret-file: {secret_file} exists; a share is made once a day")
        secret = secrets.token_bytes(32)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret.hex() + "\n")
    else:
        try:
            secret = bytes.fromhex(secret_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise CliError(f"--secret-file: cannot read a hex secret from {secret_file}") from exc

    async def call() -> operator_pb2.SeedShareState:
        channel = secure_channel(target, channel_credentials(data / "pki", "auditor", auditor))
        stub = operator_pb2_grpc.OperatorStub(channel)
        try:
            reply: operator_pb2.SeedShareState
            if args.seed_command == "commit":
                reply = await stub.CommitSeedShare(operator_pb2.SeedShareCommit(
                    request_id=request_id(), day=day.isoformat(),
                    commitment=hashlib.sha256(secret).hexdigest(),
                    public_source=args.public_source or ""), timeout=30)
            else:
                reply = await stub.RevealSeedShare(operator_pb2.SeedShareReveal(
                    request_id=request_id(), day=day.isoformat(), secret=secret.hex(),
                    public_value=args.public_value or ""), timeout=30)
            return reply
        except grpc.aio.AioRpcError as exc:
            raise CliError(f"{exc.code().name}: {exc.details()}") from exc
        finally:
            await channel.close()

    state = asyncio.run(call())
    print(f"seed share of {day}: {state.state}; coordinator commitment "
          f"{state.coordinator_commitment[:16]}, supervisor commitment "
          f"{state.supervisor_commitment[:16]}")
    if args.seed_command == "commit":
        print(f"keep {secret_file} secret; reveal it once the coordinator's commitment above "
              "is in the audit trail: evalgrid seed reveal DATE --secret-file FILE")
    return 0


def _only_certificate(pki_dir: Path, role: str, option: str) -> str:
    """The subject of the one certificate of `role` in this data dir; else ask for it."""
    found = sorted(p.stem for p in (pki_dir / role).glob("*.pem"))
    if len(found) != 1:
        raise CliError(f"{option} NAME is needed ({len(found)} {role} certificate(s) in "
                       f"{pki_dir / role})")
    return found[0]


# --- the operator's steps of a day (Operator RPCs; evalgrid/operator_client.py) -----------


def province_tz() -> tzinfo:
    """The province's local time, from the rules (`local_utc_offset_minutes`)."""
    from coordinator.domain.rules import load_rules

    return timezone(timedelta(minutes=load_rules().local_utc_offset_minutes))


def _operator_link(args: argparse.Namespace) -> Any:
    from evalgrid.operator_client import OperatorLink

    data = _data_dir(args)
    role = getattr(args, "role", "operator")
    name = args.operator or _only_certificate(data / "pki", role, "--operator")
    coordinator = args.coordinator or (
        _target(None, data / "coordinator.port", "--coordinator")
        if (data / "coordinator.port").exists() else "127.0.0.1:50051")
    _check_certificate(data / "pki", role, name)
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
        _iso_day(args.day, "--day")
    return _run_step(op.list_projects(_operator_link(args), args.day or ""))


def cmd_clock_advance(args: argparse.Namespace) -> int:
    from evalgrid import operator_client as op

    link = _operator_link(args)
    to = _local_time(args.to, "TIME", link.tz)
    assert to is not None
    return _run_step(op.advance_clock(link, to))


def cmd_province_inventory(args: argparse.Namespace) -> int:
    """One site's inventory file for its agent: its line of sites.jsonl (docs/inventory.md)."""
    source = Path(args.dir) / "sites.jsonl"
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"DIR: cannot read {source}: {exc}") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError as exc:
            raise CliError(f"{source}:{number}: not JSON: {exc.msg}") from None
        if isinstance(record, dict) and record.get("id") == args.site:
            out = Path(args.out)
            try:
                out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n",
                               encoding="utf-8")
            except OSError as exc:
                raise CliError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
            workstations = sum(len(r["workstations"]) for v in record.get("venues", [])
                               for r in v.get("rooms", []))
            print(f"wrote the inventory of {args.site} ({workstations} workstations) to {out}")
            return 0
    raise CliError(f"--site: no site {args.site!r} in {source}")


def _iso_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: a date YYYY-MM-DD, not {value!r}") from None


# --- auditors' tools ----------------------------------------------------------------------


def cmd_draw_export(args: argparse.Namespace) -> int:
    from coordinator.offline import export_draws

    archive = asyncio.run(export_draws(args.project, _data_dir(args), args.redis_url))
    try:
        Path(args.out).write_text(json.dumps(archive, indent=1, sort_keys=True),
                                  encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(archive['draws'])} draw(s) of {args.project} to {args.out}")
    return 0


def _add_trust(parser: argparse.ArgumentParser) -> None:
    """Where a verifier takes the coordinator's key from: never from the file it checks."""
    group = parser.add_argument_group(
        "pinned key", "the coordinator's signing key, from one of these (default: the data "
        "dir's own key); the key a file names is believed only if it agrees")
    group.add_argument("--key", metavar="FILE", help="the coordinator's public key (PEM)")
    group.add_argument("--fingerprint", metavar="HEX",
                       help="SHA-256 of the coordinator's raw public key")
    group.add_argument("--ca", metavar="FILE", help="the provincial CA (ca.pem): it certifies "
                       "the signing key (certificate of role signer, carried by the file or "
                       "given with --cert)")
    group.add_argument("--cert", metavar="FILE", help="with --ca: the signing certificate")
    _add_data_dir(parser)


def _trust(args: argparse.Namespace) -> PinnedTrust:
    from evalgrid.trust import PinnedTrust

    chosen = [name for name in ("key", "fingerprint", "ca") if getattr(args, name)]
    if len(chosen) > 1:
        raise CliError(f"pin one key: --{chosen[0]} and --{chosen[1]} both given")
    if args.cert and not args.ca:
        raise CliError("--cert needs --ca: a certificate is believed only if the CA signed it")
    if args.key:
        return PinnedTrust.from_key_file(Path(args.key))
    if args.fingerprint:
        return PinnedTrust.from_fingerprint(args.fingerprint)
    if args.ca:
        return PinnedTrust.from_ca(Path(args.ca), Path(args.cert) if args.cert else None)
    return PinnedTrust.from_data_dir(_data_dir(args))


def cmd_registry_snapshot(args: argparse.Namespace) -> int:
    from coordinator.domain.rules import load_rules
    from coordinator.registry_export import snapshot_registry

    rules = load_rules(Path(args.rules) if args.rules else None)
    out = Path(args.out)
    try:
        detail = asyncio.run(snapshot_registry(_data_dir(args), args.redis_url, rules, out))
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
        Path(args.file), lambda: _trust(args), accept_unanchored=args.accept_unanchored)
    if inspection is not None:
        return inspection
    trust = _trust(args)
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


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from coordinator.offline import verify_audit
    from evalgrid.progress import phases

    if not _data_dir(args).is_dir():
        raise CliError(f"--data-dir: {_data_dir(args)} is not a directory")
    pinned = any((args.key, args.fingerprint, args.ca))
    trust = _trust(args) if pinned else None  # a bad pin is refused before any progress shows
    with phases() as phase:
        phase("checking the chain and every signature")
        check = asyncio.run(verify_audit(_data_dir(args), args.redis_url, trust))
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

    trust = _trust(args)
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


# --- the parser ----------------------------------------------------------------------------



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalgrid", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO (EVALGRID_LOG_LEVEL=DEBUG for more)")
    parser.add_argument("--lang", default=None,
                        help="language of consoles, booth, notices and reports: zh_CN or en "
                        "(default: EVALGRID_LANG, else zh_CN under a zh_* locale, else en)")
    sub = parser.add_subparsers(dest="command", required=True)

    pki = sub.add_parser("pki", help="the provincial CA and certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    p = pki_sub.add_parser("init", help="create the provincial CA")
    _add_data_dir(p)
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p.set_defaults(func=cmd_pki_init)
    p = pki_sub.add_parser("issue", help="issue a certificate")
    _add_data_dir(p)
    p.add_argument("role", choices=["coordinator", "site", "operator", "auditor", "workstation"],
                   help="what the certificate is for")
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--host", action="append", help="a host name or IP the server answers on")
    p.set_defaults(func=cmd_pki_issue)
    p = pki_sub.add_parser("revoke", help="revoke a party's certificates (CA-signed CRL)")
    _add_data_dir(p)
    p.add_argument("role", nargs="?",
                   choices=["coordinator", "site", "operator", "auditor", "workstation"],
                   help="whose certificates")
    p.add_argument("id", nargs="?", help="site id, operator name, or SITE/WORKSTATION")
    p.add_argument("--serial", help="revoke one certificate by its serial (hex)")
    p.add_argument("--reason", default="unspecified",
                   choices=["unspecified", "key_compromise", "affiliation_changed",
                            "superseded", "cessation_of_operation"],
                   help="the CRL reason code")
    p.set_defaults(func=cmd_pki_revoke)

    prov = sub.add_parser("province", help="province data files")
    prov_sub = prov.add_subparsers(dest="province_command", required=True)
    p = prov_sub.add_parser("generate", help="write a synthetic province (seeded)")
    p.add_argument("--out", required=True, help="the folder to write the province files to "
                   "(created if missing)")
    p.add_argument("--seed", type=int, default=2026, help="the same seed gives the same files")
    p.add_argument("--scale", choices=sorted(SCALES), default="province",
                   help="small (a test grid), province or national sizes")
    p.add_argument("--day", help="day of the projects, YYYY-MM-DD (default: today, local time)")
    for key in SIZE_OPTIONS:
        p.add_argument(f"--{key}", type=int, help=f"number of {key} (default: the scale's)")
    p.set_defaults(func=cmd_province_generate)
    p = prov_sub.add_parser("inventory", help="write one site's inventory file for its agent")
    p.add_argument("dir", help="the folder of province files")
    p.add_argument("--site", required=True, help="the site id")
    p.add_argument("--out", required=True, help="the inventory file to write (JSON)")
    p.set_defaults(func=cmd_province_inventory)
    p = prov_sub.add_parser("import", help="import province files into the coordinator's store")
    p.add_argument("dir", help="the folder of province files (docs/province-files.md)")
    _add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_province_import)

    p = sub.add_parser("coordinator", help="run the provincial coordinator")
    _add_data_dir(p)
    p.add_argument("--bind", default="127.0.0.1:50051", help="HOST:PORT to serve gRPC on "
                   "(port 0: any free port, written to DATA_DIR/coordinator.port)")
    p.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    _add_redis_server(p)
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

    p = sub.add_parser("plan", help="draw every project of a day (the day plan); `plan "
                       "reveal DATE` reveals the day's seed (plans and single draws) after the "
                       "awards")
    p.add_argument("date", help="the day, YYYY-MM-DD (local time of the windows), or reveal")
    p.add_argument("reveal_date", nargs="?", metavar="DATE",
                   help="after `reveal`: the day whose seed to reveal")
    _add_data_dir(p)
    p.add_argument("--redis-url", help="with reveal: the coordinator's Redis")
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

    seed = sub.add_parser("seed", help="a supervisor's share of a day's seed (auditor "
                          "certificate): commit, then reveal")
    seed_sub = seed.add_subparsers(dest="seed_command", required=True)
    for name, what in (("commit", "make a secret into --secret-file and commit to it"),
                       ("reveal", "reveal the secret kept in --secret-file")):
        p = seed_sub.add_parser(name, help=what)
        p.add_argument("date", help="the day, YYYY-MM-DD")
        p.add_argument("--secret-file", required=True, help="where the share is kept (0600)")
        p.add_argument("--auditor", help="the name on the auditor certificate (default: the "
                       "only one in the data dir)")
        p.add_argument("--coordinator", help="HOST:PORT (default: as `evalgrid plan`)")
        if name == "commit":
            p.add_argument("--public-source", help="a public value to mix in, named now "
                           "(e.g. a lottery draw not yet held)")
        else:
            p.add_argument("--public-value", help="the named public value, now known")
        _add_data_dir(p)
        p.set_defaults(func=cmd_seed)

    p = sub.add_parser("agent", help="run a site agent")
    _add_data_dir(p)
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
    _add_data_dir(p)
    p.add_argument("--site", required=True, help="the site the booth is at")
    p.add_argument("--workstation", required=True, help="the workstation id at that site")
    p.add_argument("--agent", help="the site agent, HOST:PORT (default: the port the agent of "
                   "this data dir wrote down)")
    p.add_argument("--code", help="the one-time activation code from the site desk")
    p.add_argument("--enrol-agent", help="the agent's enrolment port, HOST:PORT (default: the "
                   "port the agent of this data dir wrote down)")
    p.set_defaults(func=cmd_workstation)

    p = sub.add_parser("demo", help="run the whole grid on a sample province")
    _add_data_dir(p)
    p.add_argument("--sites", type=int, default=18, help="sites in the sample province")
    p.add_argument("--projects", type=int, default=24, help="projects of the day")
    p.add_argument("--seed", type=int, default=2026, help="the province's seed")
    p.add_argument("--decline-rate", type=float, default=0.05,
                   help="share of simulated experts who decline their notice")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--keep", action="store_true", help="keep existing state in the data dir")
    _add_redis_server(p)
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
    p.add_argument("--site", required=True, help="the site id (its certificate)")
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
    p.add_argument("project", help="the project id")
    p.add_argument("--out", required=True, help="the archive file to write (JSON)")
    _add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_draw_export)
    p = draw_sub.add_parser("verify", help="check an archive's anchors, replay it; exit 0 only "
                            "if both hold")
    p.add_argument("file", help="an archive written by `draw export`")
    _add_trust(p)
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
    _add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.set_defaults(func=cmd_registry_snapshot)

    audit = sub.add_parser("audit", help="audit tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify the hash chain and signatures")
    _add_trust(p)
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
    _add_data_dir(p)
    p.add_argument("--redis-url", help=REDIS_URL_HELP)
    p.add_argument("--min-projects", type=int, default=3,
                   help="projects an expert or pair must share to be scored")
    p.add_argument("--top", type=int, default=10, help="rows per table")
    p.add_argument("--executor", default="local",
                   help="local | local:N | ray:N | ray:auto | ray://host:port")
    p.set_defaults(func=cmd_audit_collusion)

    _add_operator_steps(sub)

    report = sub.add_parser("report", help="committee reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    p = report_sub.add_parser("verify", help="check a report's signature")
    p.add_argument("file", help="a report JSON (DATA_DIR/reports/PROJECT.json)")
    _add_trust(p)
    p.set_defaults(func=cmd_report_verify)
    p = report_sub.add_parser("html", help="print a report's page (HTML) in the chosen "
                              "language (--lang before the command)")
    p.add_argument("file", help="a report JSON (DATA_DIR/reports/PROJECT.json)")
    p.add_argument("-o", "--out", default="-", help="the HTML file; - writes to stdout")
    p.set_defaults(func=cmd_report_html)

    from app.cli.records import register as register_records  # conduct, service, inspect

    register_records(sub, report_sub, audit_sub)
    _shows_defaults(parser)
    return parser


def _operator_options(parser: argparse.ArgumentParser, *, writes: bool = True) -> None:
    _add_data_dir(parser)
    parser.add_argument("--operator", help="the name on the operator certificate (default: the "
                        "only one in the data dir)")
    parser.add_argument("--coordinator", help="HOST:PORT (default: the port the coordinator of "
                        "this data dir wrote down, else 127.0.0.1:50051)")
    if writes:
        parser.add_argument("--request-id", help="resend an earlier request: it is applied "
                            "once, the same answer comes back (default: a fresh id)")


def _add_operator_steps(sub: Any) -> None:
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


def _choose_language(explicit: str | None) -> None:
    """One language for this process and the ones it starts (the demo's agents, booths)."""
    from evalgrid.i18n import LanguageError, choose, set_language

    try:
        lang = set_language(choose(explicit))
    except LanguageError as exc:
        raise CliError(str(exc)) from None
    os.environ["EVALGRID_LANG"] = lang


def main(argv: list[str] | None = None) -> int:
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
        if isinstance(exc, _user_errors()):
            print(f"evalgrid: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
