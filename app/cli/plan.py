"""`evalgrid plan` (a day's draws, their seed revealed) and `evalgrid seed` (the supervisor's
share of the day's seed)."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import date
from pathlib import Path
from typing import Any

from app.cli.options import (
    CliError,
    add_data_dir,
    check_certificate,
    coordinator_address,
    data_dir,
    only_certificate,
)
from evalgrid.i18n import _


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
    data = data_dir(args)
    operator = args.operator or only_certificate(data / "pki", "operator", "--operator")
    coordinator = coordinator_address(args.coordinator, data)
    check_certificate(data / "pki", "operator", operator)
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
    revealed, day_seed = asyncio.run(reveal_seeds(day.isoformat(), data_dir(args),
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
    data = data_dir(args)
    auditor = args.auditor or only_certificate(data / "pki", "auditor", "--auditor")
    check_certificate(data / "pki", "auditor", auditor)
    target = coordinator_address(args.coordinator, data)
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


def register(sub: Any) -> None:
    """`plan DATE`, `plan reveal DATE`, `seed commit|reveal`."""
    p = sub.add_parser("plan", help="draw every project of a day (the day plan); `plan "
                       "reveal DATE` reveals the day's seed (plans and single draws) after the "
                       "awards")
    p.add_argument("date", help="the day, YYYY-MM-DD (local time of the windows), or reveal")
    p.add_argument("reveal_date", nargs="?", metavar="DATE",
                   help="after `reveal`: the day whose seed to reveal")
    add_data_dir(p)
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
        add_data_dir(p)
        p.set_defaults(func=cmd_seed)
