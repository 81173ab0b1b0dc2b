"""`evalgrid plan DATE`: the operator's client of Operator.PlanDay, with a progress bar per
phase (screening, drawing) and a table of what happened to each project at the end."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import grpc
from evalgrid_wire.v1 import operator_pb2, operator_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from evalgrid.i18n import _
from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel

PHASES = {"screening": "screening (batch)", "drawing": "drawing and placing"}


class PlanRequestError(Exception):
    """The coordinator refused the plan or could not be reached (the message says which)."""


async def run_plan_client(*, pki_dir: Path, operator: str, coordinator: str, day: date,
                          executor: str = "", request: str | None = None,
                          console: Console | None = None) -> int:
    """0 when every project of the day is drawn, 1 when some are not (the table says why)."""
    console = console or Console()
    channel = secure_channel(coordinator, channel_credentials(pki_dir, "operator", operator),
                             retry=True)
    stub = operator_pb2_grpc.OperatorStub(channel)
    summary: operator_pb2.PlanSummary | None = None
    try:
        with Progress(TextColumn("{task.description:<22}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      TextColumn("{task.fields[note]}"), console=console) as progress:
            tasks: dict[str, TaskID] = {}
            stream = stub.PlanDay(operator_pb2.PlanDayRequest(
                request_id=request or request_id(), day=day.isoformat(), executor=executor))
            async for update in stream:
                if update.HasField("summary"):
                    summary = update.summary
                    continue
                if update.phase not in tasks:
                    tasks[update.phase] = progress.add_task(
                        PHASES.get(update.phase, update.phase), total=update.total, note="")
                progress.update(tasks[update.phase], completed=update.done, total=update.total,
                                note=update.message[:48])
    except grpc.aio.AioRpcError as exc:
        raise PlanRequestError(f"PlanDay: {exc.code().name}: {exc.details()}") from exc
    finally:
        await channel.close()
    if summary is None:
        raise PlanRequestError("PlanDay: the stream ended without a summary")
    _print_summary(console, summary)
    return 0 if summary.drawn == summary.projects else 1


def _print_summary(console: Console, summary: operator_pb2.PlanSummary) -> None:
    table = Table(title=_("day plan {day} ({plan}) on {executor}").format(
        day=summary.day, plan=summary.plan_id, executor=summary.executor))
    for column in (_("project"), _("outcome"), _("draw"), _("seats"), _("why not drawn")):
        table.add_column(column)
    for o in summary.outcomes:
        style = "" if o.outcome == "drawn" else "yellow"
        table.add_row(o.project_id, f"[{style}]{_(o.outcome)}[/]" if style else _(o.outcome),
                      o.draw_id[:12], str(o.seats) if o.seats else "", o.reason)
    console.print(table)
    console.print(_(
        "{drawn} drawn, {refused} refused, {starved} starved, {conflicts} booking conflict(s), "
        "{skipped} skipped of {projects}; screening {screening} s, drawing {drawing} s; plan "
        "seed SHA-256 {seed}...").format(
        drawn=summary.drawn, refused=summary.refused, starved=summary.starved,
        conflicts=summary.conflicts, skipped=summary.skipped, projects=summary.projects,
        screening=f"{summary.screening_s:.2f}", drawing=f"{summary.drawing_s:.2f}",
        seed=summary.seed_hash[:16]))
