"""A day plan's draws in a process of their own (coordinator/plan_drawing.py): the very plan
an in-process plan makes, and every way the child can fail ends the plan with a clear error,
never a hang and never a child left behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from coordinator import plan_drawing
from coordinator.batch.executor import InProcessExecutor
from coordinator.day_plan import PlannedDraw, PlanOutcome, plan_day
from coordinator.domain.draw.inputs import DrawSnapshot
from coordinator.domain.model import Project
from coordinator.domain.rules import load_rules
from coordinator.drawing import DrawDesk
from coordinator.plan_drawing import DrawingFailed, DrawingProcess
from coordinator.province.generator import generate_province
from evalgrid.forking import may_fork

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 1, 10, tzinfo=UTC)
SEED = hashlib.sha256(b"apart").digest()
# Tight enough that some projects starve; one project has a host site nobody knows (refused).
PROVINCE = generate_province(seed=9, day=DAY, cities=3, sites=6, workstations=60,
                             experts=1200, companies=200, projects=30)
PROJECTS = [*PROVINCE.projects[:-1],
            replace(PROVINCE.projects[-1], host_site_id="S-nowhere")]
EMPTY = DrawSnapshot((), ())


def _desk() -> DrawDesk:
    desk = DrawDesk(load_rules())
    desk.pseudonym_key = b"p" * 32  # draws carry the pool record, as the coordinator's do
    desk.load(PROVINCE, [])
    return desk


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped, counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_plan_drawn_apart_is_the_plan_drawn_here_draw_by_draw() -> None:
    down = frozenset({PROVINCE.sites[1].venues[0].workstations[0].id})
    here = plan_day(_desk(), PROJECTS, SEED, NOW, InProcessExecutor(), down)
    desk = _desk()
    apart = plan_day(desk, PROJECTS, SEED, NOW, InProcessExecutor(), down, apart=True)
    day_snapshot = desk.day_screen(desk.rules.local_date(NOW)).snapshot
    assert apart.outcomes == here.outcomes
    assert {o.outcome for o in here.outcomes} >= {"drawn", "starved", "refused"}
    assert len(apart.draws) == len(here.draws) == len(PROJECTS)
    by_id = {p.id: p for p in PROJECTS}
    for a, h in zip(apart.draws, here.draws, strict=True):
        assert a.project == h.project
        assert a.project is by_id[a.project.id]  # crossed by reference: the caller's object
        if h.prepared is None:
            assert a.prepared is None
            continue
        assert a.prepared is not None
        assert a.prepared.project is a.project
        assert a.prepared == h.prepared  # commitment and audit record
        assert a.prepared.record["candidates"] > 0 and "pool_record" in a.prepared.record
        if h.result is None:
            assert a.result is None
            continue
        assert a.result is not None
        assert a.result.archive_text == h.result.archive_text  # inputs and pool record
        assert a.result.seats == h.result.seats
        # The day's snapshot crossed by reference: the coordinator's own object, not a copy.
        assert a.result.snapshot is day_snapshot
        assert a.result.snapshot.digest() == h.result.snapshot.digest()  # type: ignore[union-attr]
    assert apart.drawing.cpu_s > 0 and apart.drawing.peak_rss > 0
    assert here.drawing.cpu_s == 0  # nothing apart


def _refused(project: Project) -> PlannedDraw:
    return PlannedDraw(project, None, None, PlanOutcome(project.id, "refused", "test"))


def _raising_at_third(project: Project) -> PlannedDraw:
    if project.id == PROJECTS[2].id:
        raise ValueError("the registry changed under the draw")
    return _refused(project)


def _slow(project: Project) -> PlannedDraw:
    time.sleep(0.2)
    return _refused(project)


def _stuck(project: Project) -> PlannedDraw:
    if project.id != PROJECTS[0].id:
        time.sleep(60)
    return _refused(project)


@pytest.mark.parametrize("taken", [0, 3, 5, 700])
def test_a_frame_taken_in_parts_arrives_whole(monkeypatch: pytest.MonkeyPatch,
                                               taken: int) -> None:
    """`_send` writes header and body in one call; where the pipe takes only `taken` bytes of
    it (header cut, body cut, nothing), the rest follows and the reader gets the frame whole."""
    real = os.writev

    def partial(fd: int, buffers: tuple[bytes, memoryview]) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        return os.write(fd, joined[:taken]) if taken else 0

    body = bytes(range(256)) * 40
    reader, writer = os.pipe()
    try:
        monkeypatch.setattr(plan_drawing.os, "writev", partial)
        plan_drawing._send(writer, b"D", memoryview(body))
        plan_drawing._send(writer, b"F", b"end")
        monkeypatch.setattr(plan_drawing.os, "writev", real)
        plan_drawing._send(writer, b"E", b"whole")
        os.close(writer)
        data = b""
        while chunk := os.read(reader, 1 << 16):
            data += chunk
    finally:
        os.close(reader)
    frames, at = [], 0
    while at < len(data):
        tag, size = plan_drawing._HEADER.unpack_from(data, at)
        at += plan_drawing._HEADER.size
        frames.append((tag, data[at:at + size]))
        at += size
    assert frames == [(b"D", body), (b"F", b"end"), (b"E", b"whole")]


def test_a_draw_raising_in_the_child_ends_the_plan_with_its_error() -> None:
    got: list[str] = []
    with (pytest.raises(DrawingFailed, match=rf"draw 3 of {len(PROJECTS)}: ValueError: the "
                                             r"registry changed under the draw$") as failed,
          DrawingProcess(_raising_at_third, PROJECTS, EMPTY) as process):
        got.extend(p.project.id for p in process)
    assert got == [p.id for p in PROJECTS[:2]]
    assert "_raising_at_third" in failed.value.where  # the child's traceback, for the log
    assert process.pid is not None and not _alive(process.pid)


def test_a_killed_child_ends_the_plan_naming_the_draw_and_the_signal() -> None:
    with DrawingProcess(_slow, PROJECTS, EMPTY) as process:
        draws = iter(process)
        first = next(draws)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(DrawingFailed, match=rf"ended at draw \d+ of {len(PROJECTS)} "
                                                r"\(exit code -9\)"):
            for _ in draws:
                pass
    assert first.project.id == PROJECTS[0].id


def test_a_silent_child_is_ended_after_the_stall_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_drawing, "STALL_S", 0.5)
    with DrawingProcess(_stuck, PROJECTS, EMPTY) as process:
        draws = iter(process)
        next(draws)
        with pytest.raises(DrawingFailed, match=r"sent nothing for 0 s at draw 2 of"):
            next(draws)
    assert process.pid is not None and not _alive(process.pid)


def test_leaving_early_ends_the_child() -> None:
    with DrawingProcess(_slow, PROJECTS, EMPTY) as process:
        next(iter(process))
        pid = process.pid
    assert pid is not None and not _alive(pid)


def test_a_failing_placement_stops_the_plan_and_the_child() -> None:
    seen: list[str] = []

    def sink(planned: PlannedDraw) -> None:
        if len(seen) == 4:
            raise RuntimeError("placement failed")
        seen.append(planned.project.id)

    before = set(_children())
    with pytest.raises(RuntimeError, match="placement failed"):
        plan_day(_desk(), PROJECTS, SEED, NOW, InProcessExecutor(), sink=sink, apart=True)
    assert len(seen) == 4
    assert [pid for pid in set(_children()) - before if _alive(pid)] == []


def _children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(entry.name))
    return out


def test_the_child_of_a_coordinator_killed_with_sigkill_exits(tmp_path: Path) -> None:
    """Nobody is left to read its draws: it must not go on drawing a national plan alone."""
    script = tmp_path / "killed_coordinator.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from tests.batch.test_plan_drawing import EMPTY, PROJECTS, _slow
        from coordinator.plan_drawing import DrawingProcess
        with DrawingProcess(_slow, PROJECTS * 50, EMPTY) as process:
            draws = iter(process)
            next(draws)
            print(process.pid, flush=True)
            time.sleep(60)
    """))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "proto")])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env,
                            cwd=root)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        proc.kill()
        proc.wait()


SWITCH = "from evalgrid.forking import keep_grpc_out_of_forks\nkeep_grpc_out_of_forks()"
CLI = "from app.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize(("code", "env", "expected"), [
    (SWITCH, None, True),  # switched off before grpc loads
    (CLI, None, True),  # the `evalgrid` command does so first thing
    (SWITCH, "1", False),  # the operator asked for gRPC's fork support
    ("import grpc\n" + SWITCH, None, False),  # too late: grpc read the switch already
    ("import grpc\n" + SWITCH, "false", True),  # off before grpc came
    ("import grpc", None, False),  # never switched
])
def test_a_process_forks_only_where_grpc_leaves_forks_alone(code: str, env: str | None,
                                                             expected: bool) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    if env is not None:
        environ["GRPC_ENABLE_FORK_SUPPORT"] = env
    root = Path(__file__).resolve().parents[2]
    environ["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "proto")])
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport grpc\nfrom evalgrid.forking "
                          "import may_fork\nprint(may_fork())"], env=environ, cwd=root,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.splitlines()[-1] == str(expected)


def test_this_test_process_draws_plans_apart() -> None:
    assert may_fork()  # so the integration tests of PlanDay run the drawing process
