"""README.md's "Running a real grid" block, run literally, so the README cannot drift.

The fenced `sh` block under that heading is parsed (lines ending in a backslash joined, a
`for ...; do ... done` kept whole) and each command is run with `bash -c`, in order, as real
processes: CA and certificates, province generate / inventory / import, the coordinator and
one agent per site (the lines ending in `&`), projects, the day plan, notices, the simulated
clock, close, report / draw / audit verification. Each must exit 0 with no traceback. The only
substitutions, made in the block's first line (`export ...`), are the data dir `D` (a short
temporary path: unix socket paths are short) and the port in `COORD` (a free one: tests run
side by side); everything else is the README's text. A background line is waited on as a
person would: until its `ready` line (one per `evalgrid agent` of a loop). At the end every
process gets SIGTERM and must say it stopped.

The comment line `# -- the experts' part` stands for people at the guest sites; the test plays
them through the same real parts: the desk check-in over the agent's `Desk.CheckIn` (site
certificate), `evalgrid workstation activate` (the command, literally), the booth's
device-bound enrolment, then sign-in with ID number and the notice's code, a scored and signed
sheet over `Booth` RPCs (what `evalgrid workstation` does behind its prompts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from evalgrid_wire.v1 import booth_pb2, booth_pb2_grpc

from evalgrid.ids import request_id
from evalgrid.tls import channel_credentials, secure_channel
from evalgrid.wire import UNARY_DEADLINE_S
from site_agent.booth_terminal import BoothTerminal, Score
from site_agent.enrolment import enrol_workstation

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Running a real grid"
EXPERTS = "# -- the experts' part"
BIN = Path(sys.executable).parent
READY_S = 90.0

T = TypeVar("T")
pytestmark = pytest.mark.timeout(600)


def readme_block() -> list[str]:
    """The block's commands: continuation lines joined, loops whole, comments kept only for
    the experts' marker."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(HEADING):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    commands: list[str] = []
    pending = ""
    loop: list[str] = []
    for raw in block.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if stripped.startswith(EXPERTS):
                commands.append(EXPERTS)
            continue
        stripped = re.sub(r"\s#.*$", "", stripped).rstrip()  # a trailing comment
        if loop or stripped.startswith("for "):
            loop.append(stripped)
            if stripped.startswith("done"):
                commands.append("\n".join(loop))
                loop = []
            continue
        commands.append(stripped)
    assert not loop and not pending, "the README block ends inside a loop or a continuation"
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Background:
    """A process group started by a background line, its output read as it comes."""

    command: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_for(self, pattern: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(bool(re.search(pattern, line)) for line in self.lines) < count:
                left = deadline - time.monotonic()
                assert left > 0, (f"{self.command!r}: {count} x {pattern!r} not seen; "
                                  f"output: {self.lines[-20:]}")
                self.changed.wait(left)


@dataclass
class Shell:
    cwd: Path
    env: dict[str, str]
    background: list[Background] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def run(self, command: str) -> str:
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr, f"{command!r}: {done.stderr}"
        assert done.returncode == 0, \
            f"{command!r} exit {done.returncode}: {done.stdout[-2000:]}{done.stderr}"
        self.outputs[command] = done.stdout
        return done.stdout

    def start(self, command: str) -> None:
        """A background line (or a loop of them): run it, wait for its ready lines."""
        single = command.removesuffix("&").strip()
        process = subprocess.Popen(
            ["bash", "-c", single if single != command else command], cwd=self.cwd,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        job = Background(command, process)
        threading.Thread(target=job.read, daemon=True).start()
        self.background.append(job)
        if command.startswith("for "):
            sites = command.split(" in ", 1)[1].split(";", 1)[0].split()
            job.wait_for(r"^agent \S+ ready: ", len(sites), READY_S)
        else:
            job.wait_for(r" ready: ", 1, READY_S)

    def stop_all(self) -> None:
        """SIGTERM to every group, last started first; each process must say it stopped."""
        for job in reversed(self.background):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGTERM)
        for job in reversed(self.background):
            started = sum(" ready: " in line for line in job.lines)
            try:
                job.wait_for(r" stopped$", started, 30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait(10)


def substituted(first: str, data_dir: Path, port: int) -> tuple[str, dict[str, str]]:
    """The block's `export` line with D and COORD's port replaced; its variables."""
    assert first.startswith("export "), "the block must start by exporting its variables"
    found = dict(item.split("=", 1) for item in first.removeprefix("export ").split())
    assert {"D", "COORD"} <= found.keys(), found
    found["D"] = str(data_dir)
    found["COORD"] = f"127.0.0.1:{port}"
    return "export " + " ".join(f"{k}={v}" for k, v in found.items()), found


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="rg-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_readme_runs_a_whole_day(workdir: Path) -> None:
    commands = readme_block()
    export, variables = substituted(commands[0], workdir / "d", free_port())
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200", **variables}
    shell = Shell(workdir, env)
    played_experts = False
    try:
        shell.run(export)
        for command in commands[1:]:
            if command == EXPERTS:
                asyncio.run(play_experts(shell, variables))
                played_experts = True
            elif command.endswith("&") or (command.startswith("for ") and "&" in command):
                shell.start(command)
            else:
                shell.run(command)
    finally:
        shell.stop_all()
    assert played_experts, "the block has no experts' part"
    data = Path(variables["D"])
    project = variables["P"]
    assert (data / "reports" / f"{project}.json").exists()
    plan = next(out for cmd, out in shell.outputs.items() if cmd.startswith("evalgrid plan"))
    assert re.search(r"(\d+) drawn, 0 refused, 0 starved", plan)
    verify = next(out for cmd, out in shell.outputs.items()
                  if cmd.startswith("evalgrid report verify"))
    assert "report verified" in verify


async def play_experts(shell: Shell, variables: dict[str, str]) -> None:
    """Each member of the project's committee: check-in, booth activation and enrolment,
    sign-in with the notice's code, a scored and signed sheet."""
    data = Path(variables["D"])
    project = variables["P"]
    listed = next(out for cmd, out in shell.outputs.items()
                  if cmd.startswith("evalgrid notice list"))
    ours = set(re.findall(r"ntc-[0-9a-f]+", listed))
    assert ours, f"no notices listed for {project}: {listed}"
    notices = [json.loads(line) for line in
               (data / "outbox" / "notices.jsonl").read_text(encoding="utf-8").splitlines()]
    notices = [n for n in notices if n["notice_id"] in ours]
    prov = shell.cwd / "prov"
    id_numbers = {e["id"]: e["id_number"] for e in _jsonl(prov / "experts.jsonl")}
    site_of_venue = {v["id"]: s["id"] for s in _jsonl(prov / "sites.jsonl")
                     for v in s["venues"]}
    seen: set[str] = set()
    for notice in notices:
        if notice["notice_id"] in seen:
            continue
        seen.add(notice["notice_id"])
        await one_expert(shell, data, notice, site_of_venue[notice["venue_id"]],
                         id_numbers[notice["expert_id"]])


async def one_expert(shell: Shell, data: Path, notice: dict[str, str], site: str,
                     id_number: str) -> None:
    agent = f"127.0.0.1:{(data / 'agents' / site / 'agent.port').read_text().strip()}"
    enrol = f"127.0.0.1:{(data / 'agents' / site / 'enrol.port').read_text().strip()}"
    channel = secure_channel(agent, channel_credentials(data / "pki", "site", site))
    try:
        checked = await _retry(lambda: booth_pb2_grpc.DeskStub(channel).CheckIn(
            booth_pb2.DeskCheckInRequest(request_id=request_id(), id_number=id_number,
                                         code=notice["code"]),
            timeout=UNARY_DEADLINE_S))
    finally:
        await channel.close()
    workstation = checked.workstation_id
    out = shell.run(f"evalgrid workstation activate --site {site} --workstation "
                    f"{workstation} --data-dir $D")
    code = re.search(r": (\S+) \(one use", out)
    assert code, out
    await enrol_workstation(pki_dir=data / "pki", site_id=site, workstation_id=workstation,
                            agent=enrol, activation_code=code.group(1))
    booth = BoothTerminal(pki_dir=data / "pki", site_id=site, workstation_id=workstation,
                          agent=agent)
    try:
        await booth.enrol()
        await _retry(lambda: booth.sign_in(id_number, notice["code"]))
        form = await booth.form()
        scores = [Score(bid.code, c.id, str((Decimal(c.max_score) * Decimal("0.8")).quantize(
            Decimal("0.01")))) for bid in form.bids for c in form.criteria]
        reply = await booth.submit(scores, signed=True)
        assert reply.accepted
    finally:
        await booth.close()


async def _retry(call: Callable[[], Awaitable[T]]) -> T:
    """The scheduled start follows the clock by a moment: retry a refusal for that long."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_the_block_parses_into_the_steps_of_a_day() -> None:
    commands = readme_block()
    text = "\n".join(commands)
    for step in ("pki init", "province generate", "province import", "evalgrid coordinator",
                 "evalgrid agent", "evalgrid plan", "evaluation close", "report verify",
                 "draw verify", "audit verify", EXPERTS):
        assert step in text, step
