"""Lifecycle lines reach a shared pipe whole, so watchers can count them."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from evalgrid.lifecycle import announce


class CountingStream(io.StringIO):
    """A stdout that records each write call as the OS would see it unbuffered."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_a_lifecycle_line_and_its_newline_go_out_in_one_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = CountingStream()
    monkeypatch.setattr(sys, "stdout", stream)
    announce("agent S0001 stopped")
    assert stream.writes == ["agent S0001 stopped\n"]


def test_unbuffered_processes_sharing_a_pipe_never_splice_their_lines() -> None:
    script = ("from evalgrid.lifecycle import announce\n"
              "import sys\n"
              "for n in range(300): announce(f'agent {sys.argv[1]} line {n} stopped')\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    read, write = os.pipe()
    procs = [subprocess.Popen([sys.executable, "-c", script, f"S{i:04d}"], stdout=write, env=env)
             for i in range(6)]
    os.close(write)
    with os.fdopen(read) as out:
        lines = out.read().splitlines()
    for proc in procs:
        assert proc.wait(30) == 0
    assert len(lines) == 6 * 300
    assert all(line.startswith("agent S") and line.endswith(" stopped")
               and line.count("agent") == 1 for line in lines)
