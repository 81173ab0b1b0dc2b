"""Real OS processes for the outage tests: coordinators (`evalgrid coordinator`), their Redis,
killed with SIGKILL, frozen with SIGSTOP; ports found the way an operator finds them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

from evalgrid.pki.ca import init_ca, issue

EVALGRID = [sys.executable, "-m", "app.cli"]


def free_port(avoid: Collection[int] = ()) -> int:
    """A port free now (the OS picks it); the process given it binds it a moment later.
    `avoid`: ports already given out and not yet bound (a standby's binds only when it leads),
    which the OS would hand out again."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def make_pki(data: Path, operator: str = "op") -> None:
    init_ca(data / "pki")
    issue(data / "pki", "coordinator", "coordinator")
    issue(data / "pki", "operator", operator)


class Processes:
    """Children started here, each with its log; all killed at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, list[str]] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen([*EVALGRID, *args], stdout=log, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
        self.children[name] = child
        self.args[name] = args
        return child

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """The same command line again (after a crash)."""
        return self.start(name, self.args[name])

    def coordinator(self, name: str, data: Path, redis_url: str, *, bind: str,
                    failover: bool = False, sim_clock: str | None = None
                    ) -> subprocess.Popen[bytes]:
        args = ["coordinator", "--data-dir", str(data), "--bind", bind,
                "--redis-url", redis_url]
        if failover:
            args.append("--failover")
        if sim_clock:
            args += ["--sim-clock", sim_clock]
        return self.start(name, args)

    def signal(self, name: str, sig: signal.Signals) -> None:
        child = self.children[name]
        if child.poll() is None:
            os.kill(child.pid, sig)
        if sig is signal.SIGKILL:
            child.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.kill(child.pid, signal.SIGCONT)
                child.kill()
                child.wait(timeout=10)


def wait_for(check: object, what: str, timeout: float = 30.0) -> object:
    """Poll a plain function until it returns something truthy."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
