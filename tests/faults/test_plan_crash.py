"""SIGKILL of the coordinator in the middle of a day plan loses nothing.

The real coordinator runs as a subprocess (`evalgrid coordinator`) on a Redis the test owns,
so the Redis outlives the kill. The test-only hook EVALGRID_FAULT="kill:POINT:N" makes the
coordinator SIGKILL itself the N-th time it reaches POINT of a placement (coordinator/
draw_intents.py). Then: restart (recovery runs at start), run the plan again, and check the
outcome: every project drawn exactly once and with the seed it was first committed with, no
pending intent, no booking without a seat nor a seat without its bookings, no double booking
or rule violation (coordinator/checker.py), every draw replays from its sealed archive (the
check `evalgrid draw verify` makes) and `evalgrid audit verify` passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from coordinator.checker import check_grid
from coordinator.domain.draw.archive import verify_replay
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.offline import import_province, master_key, open_store, read_allocation
from coordinator.plan_chunks import chunk_sizes
from coordinator.province.files import write_province
from coordinator.province.generator import generate_province
from coordinator.store.audit_log import AuditLog
from coordinator.store.bookings import BookingItem
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.layout import COMPACTION_HELD
from coordinator.store.log_compaction import LogCompaction
from coordinator.store.registry import Registry
from coordinator.store.snapshots import read_snapshot
from coordinator.store.values import text
from evalgrid.datadir import DataDir
from evalgrid.pki.ca import init_ca, issue

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "proto")]),
       "PYTHONUNBUFFERED": "1"}
ENV.pop("EVALGRID_FAULT", None)
DAY = date(2026, 3, 2)
EVENING_BEFORE = datetime(2026, 3, 1, 10, tzinfo=UTC)  # 18:00 the day before, in UTC+8
PROJECTS = 6


def placed_before(n: int) -> int:
    """Draws in the plan's chunks before the n-th (coordinator/plan_chunks.py: 1, 2, 4, ...)."""
    sizes = chunk_sizes()
    return sum(next(sizes) for _ in range(n - 1))


def chunk_at(n: int) -> int:
    """Draws in the plan's n-th chunk."""
    sizes = chunk_sizes()
    return min([next(sizes) for _ in range(n)][-1], PROJECTS - placed_before(n))


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """Province files and certificates, made once; each test copies them."""
    root = Path(tempfile.mkdtemp(prefix="eg-"))
    try:
        data = DataDir(root / "d").ensure()
        province = generate_province(seed=21, day=DAY, cities=3, sites=6, workstations=120,
                                     experts=1200, companies=200, projects=PROJECTS)
        write_province(province, data.province)
        init_ca(data.pki)
        issue(data.pki, "coordinator", "coordinator")
        issue(data.pki, "operator", "op")
        yield data.root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Plant:
    data: DataDir
    redis: EmbeddedRedis

    def coordinator(self, fault: str | None = None) -> subprocess.Popen[bytes]:
        (self.data.root / "coordinator.port").unlink(missing_ok=True)
        env = {**ENV, "EVALGRID_FAULT": fault} if fault else ENV
        log = (self.data.logs / "coordinator.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "coordinator", "--data-dir",
             str(self.data.root), "--bind", "127.0.0.1:0", "--sim-clock",
             EVENING_BEFORE.isoformat(), "--seed-wait-minutes", "0"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_listening(self, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
        port = self.data.root / "coordinator.port"
        deadline = time.monotonic() + timeout
        while not (port.exists() and port.read_text().strip()):
            assert child.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, "the coordinator did not start"
            time.sleep(0.05)

    def plan(self) -> subprocess.CompletedProcess[str]:
        return self.cli("plan", DAY.isoformat(), "--data-dir", str(self.data.root))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO,
                              env=ENV, capture_output=True, text=True, timeout=180,
                              check=False)

    def log_tail(self) -> str:
        return (self.data.logs / "coordinator.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def plant(template: Path) -> Iterator[Plant]:
    root = Path(tempfile.mkdtemp(prefix="eg-"))
    try:
        shutil.copytree(template, root / "d")
        data = DataDir(root / "d").ensure()
        server = EmbeddedRedis(data.redis).start()
        try:
            asyncio.run(import_province(data.province, data.root, server.url))
            yield Plant(data, server)
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _compaction(plant: Plant) -> tuple[str, bool]:
    """The server's AOF rewrite setting, and whether a plan's record of holding it is left."""
    async with open_store(plant.data.root, plant.redis.url) as redis:
        return (await LogCompaction(redis).setting(),
                bool(await redis.exists(COMPACTION_HELD)))


async def _state(plant: Plant) -> dict[str, object]:
    """What the store holds: states, allocations, bookings, intents, the audit trail."""
    key = master_key(plant.data.root)
    async with open_store(plant.data.root, plant.redis.url) as redis:
        states = await Registry(redis).project_states()
        allocations = {p: await read_allocation(redis, key, p) for p in states}
        bookings: dict[str, list[BookingItem]] = defaultdict(list)
        async for raw in redis.scan_iter(match="bk:*"):
            name = text(raw)
            if not name.startswith("bk:~"):
                resource = name[3:]
                bookings[resource] = [BookingItem.from_member(resource, m)
                                      for m in await redis.zrange(name, 0, -1)]
        archives = {}
        for alloc in allocations.values():
            for draw_id in alloc.draw_ids if alloc else []:
                sealed = await redis.hget(f"draw:{draw_id}", "sealed")
                archives[draw_id] = unseal_json(key, SealedBox.parse(sealed),
                                                project_id=draw_id, purpose="draw")
        snapshots = {}  # the day snapshots the archives name, stored once each
        for archive in archives.values():
            digest = archive["inputs"].get("snapshot")
            if digest is not None and digest not in snapshots:
                snapshots[digest] = await read_snapshot(redis, key, digest)
        entries = await AuditLog(redis, signing_key=_any_key(), clock=_Clock()).entries()
        intents = await redis.scard("intents")
    return {"states": states, "allocations": allocations, "bookings": bookings,
            "archives": archives, "snapshots": snapshots, "audit": entries, "intents": intents}


def _any_key() -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()  # reading entries needs no signing


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# A plan's chunk is committed, booked and stored at once (one Lua call): nothing of it is
# stored at before_place, all of it at after_pipeline (coordinator/plan_chunks.py).
@pytest.mark.parametrize("fault", ["kill:before_place:2", "kill:before_place:3",
                                   "kill:after_pipeline:2", "kill:after_pipeline:3"])
def test_a_plan_killed_at_any_point_resumes_and_loses_nothing(plant: Plant, fault: str) -> None:
    point, nth = fault.split(":")[1], int(fault.split(":")[2])
    doomed = plant.coordinator(fault)
    plant.wait_listening(doomed)
    first = plant.plan()
    assert doomed.wait(timeout=120) == -signal.SIGKILL, plant.log_tail()
    assert first.returncode != 0  # the client saw its coordinator die

    crashed = asyncio.run(_state(plant))
    # Fault points fire once per chunk: exactly the placements of that chunk were cut short
    # (placed, their notices not sent), or nothing of it was stored (not even committed).
    cut = chunk_at(nth) if point == "after_pipeline" else 0
    assert crashed["intents"] == cut
    held = {b.holder for items in crashed["bookings"].values()  # type: ignore[union-attr]
            for b in items}
    seated = {h for a in crashed["allocations"].values() if a  # type: ignore[union-attr]
              for s in a.seats for h in (s.session_id, s.expert_hold)}
    # Never a booking without its seat: a chunk's draws are booked and stored in one step.
    stored = sum(1 for a in crashed["allocations"].values() if a)  # type: ignore[union-attr]
    assert held == seated and stored == placed_before(nth) + cut
    assert sum(e.kind == "draw.committed"  # type: ignore[union-attr]
               for e in crashed["audit"]) == stored  # type: ignore[union-attr]
    assert len(crashed["audit"]) > 0  # type: ignore[arg-type]
    seq_at_crash = crashed["audit"][-1].seq  # type: ignore[index]
    # The killed coordinator held the store's log compaction off, and left the record of it.
    assert asyncio.run(_compaction(plant)) == ("0", True)

    restarted = plant.coordinator()
    plant.wait_listening(restarted)
    try:
        second = plant.plan()
        assert second.returncode == 0, second.stdout + second.stderr + plant.log_tail()
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=60) == 0, plant.log_tail()

    after = asyncio.run(_state(plant))
    assert after["intents"] == 0
    assert asyncio.run(_compaction(plant)) == ("100", False)  # given back by the restart
    assert set(after["states"].values()) == {"drawn"}  # type: ignore[union-attr]
    audit = after["audit"]
    recovered = [e for e in audit if e.seq > seq_at_crash  # type: ignore[union-attr]
                 and e.kind in ("draw.recovered", "draw.rolled_back", "draw.abandoned")]
    assert [e.kind for e in recovered] == ["draw.recovered"] * cut
    committed: dict[str, set[str]] = defaultdict(set)
    placed: dict[str, list[str]] = defaultdict(list)
    for entry in audit:  # type: ignore[union-attr]
        if entry.kind == "draw.committed":
            committed[entry.subject].add(entry.detail["draw_id"])
        elif entry.kind == "draw.placed":
            placed[entry.subject].append(entry.detail["draw_id"])
    holders: set[str] = set()
    for project_id, alloc in after["allocations"].items():  # type: ignore[union-attr]
        assert alloc is not None, project_id
        # Drawn exactly once, with the seed committed first: a crash is no way to redraw.
        assert committed[project_id] == set(alloc.draw_ids) == set(placed[project_id]), \
            project_id
        assert len(alloc.draw_ids) == 1 and len(placed[project_id]) == 1, project_id
        holders |= {h for s in alloc.active_seats() for h in (s.session_id, s.expert_hold)}
    booked = [b for items in after["bookings"].values() for b in items]  # type: ignore[union-attr]
    assert {b.holder for b in booked} == holders and len(booked) == len(holders)  # no orphans
    for draw_id, archive in after["archives"].items():  # type: ignore[union-attr]
        assert verify_replay(archive, after["snapshots"]) == [], draw_id  # type: ignore[arg-type]

    check = asyncio.run(check_grid(plant.data.root, plant.redis.url))
    assert (check.double_bookings, check.rule_violations) == (0, 0), check.details
    assert check.audit_intact, check.details
    verified = plant.cli("audit", "verify", "--data-dir", str(plant.data.root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    notices = [json.loads(line) for line in
               (plant.data.outbox / "notices.jsonl").read_text().splitlines()]
    seats = {s.notice_id for a in after["allocations"].values()  # type: ignore[union-attr]
             for s in a.seats}
    assert {n["notice_id"] for n in notices} == seats  # every member notified (at least once)


def test_the_fault_hook_is_inert_without_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from coordinator.draw_intents import FAULT_ENV, fault_point

    monkeypatch.delenv(FAULT_ENV, raising=False)
    fault_point("after_reserve")  # this process lives on
    monkeypatch.setenv(FAULT_ENV, "kill:elsewhere:1")
    fault_point("after_reserve")
    assert not caplog.records
    monkeypatch.setenv(FAULT_ENV, "kill:after_reserve:x")
    fault_point("after_reserve")  # malformed: logged and ignored, never a crash
    assert "expected kill:POINT:N" in caplog.text


def test_the_plan_command_names_what_is_wrong(plant: Plant) -> None:
    bad_date = plant.cli("plan", "02/03/2026", "--data-dir", str(plant.data.root))
    assert bad_date.returncode == 2 and "DATE" in bad_date.stderr
    assert "Traceback" not in bad_date.stderr
    coordinator = plant.coordinator()
    plant.wait_listening(coordinator)
    try:
        elsewhere = plant.cli("plan", DAY.isoformat(), "--data-dir", str(plant.data.root),
                              "--ray-address", "ray://elsewhere:10001")
        wider = plant.cli("plan", DAY.isoformat(), "--data-dir", str(plant.data.root),
                          "--executor", "local:8")
    finally:
        coordinator.send_signal(signal.SIGTERM)
        assert coordinator.wait(timeout=60) == 0, plant.log_tail()
    for refused in (elsewhere, wider):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "INVALID_ARGUMENT: executor" in refused.stderr
        assert "Traceback" not in refused.stderr
    after = asyncio.run(_state(plant))
    assert set(after["states"].values()) == {"registered"}  # type: ignore[union-attr]
    assert not [e for e in after["audit"] if e.kind.startswith("plan.")]  # type: ignore[union-attr]
