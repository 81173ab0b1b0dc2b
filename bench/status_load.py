"""Status load: 150 sites x 30 workstations streaming status changes to one coordinator.

One real coordinator (its own process: embedded Redis, mutual TLS, the system clock), the
sites simulated in a few processes (one site-certified channel, RegisterSite and a real
SiteLink.Connect stream per site, several sites per process), and an operator watching
Operator.WatchGrid in this process. Workstations go offline and come back in round-robin
order at a fixed total rate, so each one changes about once per (workstations / rate) seconds;
a simulated site reports what changed since its last report, as the agent does.

Measured over the window after a warm-up: status changes sent per second, changes the
coordinator recorded per second (its own counter), and the delay from a workstation's change
to the first operator snapshot that shows it (p50 / p99 / max; a change flipped back before
any snapshot showed it counts as missed). CPU is per process; with --profile the coordinator
runs under cProfile and its top functions are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import dataclasses
import json
import multiprocessing as mp
import pstats
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import date
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

DAY = date(2026, 3, 2)
OPERATOR = "op-bench"


# --- set-up ---------------------------------------------------------------------------------


def _province(sites: int, per_site: int, seed: int) -> Any:
    """A generated province whose every site has one venue of `per_site` workstations."""
    from coordinator.domain.model import Room, Venue, Workstation
    from coordinator.province.generator import generate_province

    province = generate_province(seed=seed, day=DAY, cities=16, sites=sites,
                                 workstations=sites * per_site, experts=1600, companies=300,
                                 projects=8)
    reshaped = []
    for site in province.sites:
        venue_id = f"{site.id}-V1"
        rooms = []
        for r in range(0, per_site, 10):
            room_id = f"{venue_id}-R{r // 10 + 1:02d}"
            rooms.append(Room(room_id, venue_id, f"room {r // 10 + 1}", tuple(
                Workstation(f"{room_id}-W{w + 1:02d}", site.id, venue_id, room_id)
                for w in range(r, min(r + 10, per_site)))))
        venue = Venue(venue_id, site.id, f"{site.name} evaluation area", site.city,
                      tuple(rooms))
        reshaped.append(dataclasses.replace(site, venues=(venue,),
                                            roles=frozenset({*site.roles, "guest"})))
    return dataclasses.replace(province, sites=tuple(reshaped), projects=())


def _prepare(root: Path, sites: int, per_site: int, seed: int) -> tuple[Any, Any, Any]:
    from coordinator.offline import import_province
    from coordinator.province.codec.places import site_to_dict
    from coordinator.province.files import write_province
    from coordinator.store.embedded_redis import EmbeddedRedis
    from evalgrid.datadir import DataDir
    from evalgrid.pki.ca import init_ca, issue

    data = DataDir(root / "d").ensure()
    province = _province(sites, per_site, seed)
    write_province(province, data.province)
    init_ca(data.pki)
    issue(data.pki, "coordinator", "coordinator")
    issue(data.pki, "operator", OPERATOR)
    for site in province.sites:
        issue(data.pki, "site", site.id)
        path = data.agents / site.id / "inventory.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(site_to_dict(site)))
    redis = EmbeddedRedis(data.redis).start()
    asyncio.run(import_province(data.province, data.root, redis.url, include_projects=False))
    return data, province, redis


# --- the coordinator's process --------------------------------------------------------------


def coordinator_process(root: str, redis_url: str, ports: Any, stop: MpEvent,
                        counters: Any, profile: str) -> None:
    """The real coordinator; `counters` gets (changes recorded, status messages)."""
    from coordinator.server import Coordinator, CoordinatorConfig
    from coordinator.service import OperatorService

    profiler = cProfile.Profile() if profile else None
    builds: list[float] = []  # wall seconds of each operator snapshot built
    snapshot = OperatorService._grid_snapshot

    async def timed_snapshot(self: Any, *, by: str) -> Any:
        t0 = time.perf_counter()
        try:
            return await snapshot(self, by=by)
        finally:
            builds.append(time.perf_counter() - t0)

    OperatorService._grid_snapshot = timed_snapshot  # type: ignore[method-assign]

    async def main() -> None:
        coordinator = Coordinator(CoordinatorConfig(data_dir=Path(root), redis_url=redis_url))
        ports.put(await coordinator.start())
        assert coordinator.workflow is not None
        links = coordinator.workflow.links
        record = links.status

        def counted(site_id: str, report: Any) -> list[tuple[str, str]]:
            changed = record(site_id, report)
            counters[0] += len(changed)
            counters[1] += 1
            return changed

        links.status = counted  # type: ignore[method-assign]
        if profiler is not None:
            profiler.enable()
        await asyncio.to_thread(stop.wait)
        if profiler is not None:
            profiler.disable()
        await coordinator.stop()

    asyncio.run(main())
    (Path(root) / "snapshot-builds.json").write_text(json.dumps(builds))
    if profiler is not None:
        profiler.dump_stats(profile)


# --- simulated sites ------------------------------------------------------------------------


@dataclasses.dataclass
class SimSite:
    site_id: str
    inventory: Any
    workstations: list[str]
    offline: dict[str, bool]
    changed: set[str] = dataclasses.field(default_factory=set)
    acks: list[Any] = dataclasses.field(default_factory=list)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    seq: int = 0
    connected: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


async def _outgoing(site: SimSite, heartbeat_s: float) -> AsyncIterator[Any]:
    """What an agent sends: hello, the full board, then what changed (or a heartbeat)."""
    from evalgrid_wire.v1 import common_pb2, site_link_pb2

    from evalgrid.ids import request_id

    yield site_link_pb2.AgentMessage(hello=site_link_pb2.AgentHello(request_id=request_id()))
    site.changed = set(site.workstations)
    while True:
        for ack in site.acks:
            yield site_link_pb2.AgentMessage(ack=ack)
        site.acks.clear()
        report = site_link_pb2.StatusReport()
        for ws in sorted(site.changed):
            report.workstations.add(
                workstation_id=ws, state=common_pb2.WORKSTATION_STATE_OFFLINE
                if site.offline[ws] else common_pb2.WORKSTATION_STATE_FREE)
        site.changed.clear()
        site.seq += 1
        report.seq = site.seq
        if report.workstations:
            yield site_link_pb2.AgentMessage(status=report)
        site.wake.clear()
        try:
            await asyncio.wait_for(site.wake.wait(), heartbeat_s)
        except TimeoutError:
            site.seq += 1
            yield site_link_pb2.AgentMessage(status=site_link_pb2.StatusReport(seq=site.seq))


async def _run_site(site: SimSite, target: str, pki: Path) -> None:
    from evalgrid_wire.v1 import site_link_pb2, site_link_pb2_grpc

    from evalgrid.ids import request_id
    from evalgrid.tls import channel_credentials, secure_channel
    from evalgrid.wire import UNARY_DEADLINE_S

    channel = secure_channel(target, channel_credentials(pki, "site", site.site_id))
    stub = site_link_pb2_grpc.SiteLinkStub(channel)
    try:
        reply = await stub.RegisterSite(site_link_pb2.RegisterSiteRequest(
            request_id=request_id(), inventory=site.inventory, agent_version="bench"),
            timeout=UNARY_DEADLINE_S)
        call = stub.Connect(_outgoing(site, (reply.heartbeat_interval_ms or 2000) / 1000))
        site.connected.set()
        async for command in call:
            site.acks.append(site_link_pb2.CommandAck(command_id=command.command_id, ok=True))
            site.wake.set()
    finally:
        await channel.close()


def sites_process(target: str, pki: str, site_ids: Sequence[str], inventories: Sequence[str],
                  rate: float, ready: Any, go: Any, finish: MpEvent, logs: Any,
                  seconds: float) -> None:
    """Several simulated sites in one event loop; changes at `rate` per second in total."""
    from site_agent.inventory import load_inventory

    async def main() -> None:
        sites = []
        for site_id, path in zip(site_ids, inventories, strict=True):
            _, inventory = load_inventory(Path(path))
            names = [ws.id for v in inventory.venues for r in v.rooms for ws in r.workstations]
            sites.append(SimSite(site_id, inventory, names, dict.fromkeys(names, False)))
        tasks = [asyncio.create_task(_run_site(s, target, Path(pki))) for s in sites]
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in sites)), 120)
        ready.put(len(sites))
        start = await asyncio.to_thread(go.get)
        # round-robin over every workstation of these sites, interleaving the sites
        order = [(s, s.workstations[i]) for i in range(max(len(x.workstations) for x in sites))
                 for s in sites if i < len(s.workstations)]
        times: list[float] = []
        which: list[str] = []
        states: list[bool] = []
        emitted = 0
        await asyncio.sleep(max(0.0, start - time.time()))
        while (now := time.time()) < start + seconds:
            due = int((now - start) * rate)
            while emitted < due:
                site, ws = order[emitted % len(order)]
                site.offline[ws] = not site.offline[ws]
                site.changed.add(ws)
                site.wake.set()
                times.append(time.time())
                which.append(ws)
                states.append(site.offline[ws])
                emitted += 1
            await asyncio.sleep(0.005)
        final = {ws: off for s in sites for ws, off in s.offline.items()}
        logs.put((times, which, states, final))
        await asyncio.to_thread(finish.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


# --- the operator's watcher and the analysis -------------------------------------------------


@dataclasses.dataclass
class Watched:
    times: list[float] = dataclasses.field(default_factory=list)
    offline: list[frozenset[str]] = dataclasses.field(default_factory=list)
    known: list[int] = dataclasses.field(default_factory=list)
    online: list[int] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


async def watch(target: str, pki: Path, seen: Watched) -> None:
    from evalgrid_wire.v1 import operator_pb2, operator_pb2_grpc

    from evalgrid.tls import channel_credentials, secure_channel

    channel = secure_channel(target, channel_credentials(pki, "operator", OPERATOR),
                             extra_options=[("grpc.max_receive_message_length", 64 << 20)])
    try:
        stream = operator_pb2_grpc.OperatorStub(channel).WatchGrid(
            operator_pb2.WatchGridRequest())
        async for snapshot in stream:
            at = time.time()
            seen.times.append(at)
            seen.offline.append(frozenset(f.workstation_id for site in snapshot.sites
                                          for f in site.flagged if f.state == "offline"))
            seen.known.append(sum(sum(site.states.values()) for site in snapshot.sites))
            seen.online.append(sum(1 for site in snapshot.sites if site.online))
            seen.changed.set()
    finally:
        await channel.close()


async def wait_for(seen: Watched, check: Any, timeout: float) -> float:
    """Seconds until a snapshot satisfies `check(index)`; raises after `timeout`."""
    t0 = time.monotonic()
    while True:
        if seen.times and check(len(seen.times) - 1):
            return time.monotonic() - t0
        seen.changed.clear()
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise TimeoutError("the operator's view never got there")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.changed.wait(), left)


def delays(events: list[tuple[float, str, bool]], seen: Watched, window: tuple[float, float]
           ) -> tuple[list[float], int]:
    """Per change in the window: time to the first snapshot showing it; and how many never
    were shown before the workstation changed again."""
    by_ws: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for t, ws, offline in events:
        by_ws[ws].append((t, offline))
    found: list[float] = []
    missed = 0
    for ws, changes in by_ws.items():
        changes.sort()
        for i, (t, offline) in enumerate(changes):
            if not window[0] <= t < window[1]:
                continue
            until = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
            k = bisect.bisect_left(seen.times, t)
            while k < len(seen.times) and seen.times[k] < until:
                if (ws in seen.offline[k]) == offline:
                    found.append(seen.times[k] - t)
                    break
                k += 1
            else:
                missed += 1
    return found, missed


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(args: argparse.Namespace) -> None:
    from bench.machine import pct, print_table

    ctx = mp.get_context("spawn")
    root = Path(tempfile.mkdtemp(prefix="eg-sl-"))
    t0 = time.perf_counter()
    data, province, redis = _prepare(root, args.sites, args.workstations, args.seed)
    print(f"set up {len(province.sites)} sites x {args.workstations} workstations "
          f"(CA, {len(province.sites) + 2} certificates, registry) in "
          f"{time.perf_counter() - t0:.1f} s")
    procs: list[Any] = []
    stop, finish = ctx.Event(), ctx.Event()
    counters = ctx.Array("q", 2, lock=False)
    profile = str(root / "coordinator.prof") if args.profile else ""
    try:
        ports = ctx.Queue()
        coordinator = ctx.Process(target=coordinator_process, daemon=True, args=(
            str(data.root), redis.url, ports, stop, counters, profile))
        coordinator.start()
        procs.append(coordinator)
        target = f"127.0.0.1:{ports.get(timeout=120)}"
        site_ids = [s.id for s in province.sites]
        groups = [site_ids[i::args.processes] for i in range(args.processes)]
        ready, go, logs = ctx.Queue(), ctx.Queue(), ctx.Queue()
        total = sum(len(g) for g in groups)
        for group in groups:
            share = args.rate * len(group) / total
            proc = ctx.Process(target=sites_process, daemon=True, args=(
                target, str(data.pki), group,
                [str(data.agents / s / "inventory.json") for s in group], share, ready, go,
                finish, logs, args.warmup + args.seconds))
            proc.start()
            procs.append(proc)
        asyncio.run(_measure(args, data, target, province, procs, ready, go, logs, finish,
                             counters, pct, print_table))
    finally:
        finish.set()  # the sites first, then the coordinator, then its Redis
        for proc in [*procs[1:], *procs[:1]]:
            if proc is procs[0]:
                stop.set()
            proc.join(timeout=20)
            if proc.is_alive():
                proc.kill()
        redis.stop()
        builds_file = data.root / "snapshot-builds.json"
        if builds_file.exists():
            builds = [b * 1000 for b in json.loads(builds_file.read_text())]
            print(f"operator snapshot build, wall time in the coordinator: p50 "
                  f"{pct(builds, 50):.0f} ms, p99 {pct(builds, 99):.0f} ms "
                  f"({len(builds)} snapshots)")
        if profile and Path(profile).exists():
            print("coordinator profile (top 25 by own time):")
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        shutil.rmtree(root, ignore_errors=True)


async def _measure(args: argparse.Namespace, data: Any, target: str, province: Any,
                   procs: list[Any], ready: Any, go: Any, logs: Any, finish: MpEvent,
                   counters: Any, pct: Any, print_table: Any) -> None:
    seen = Watched()
    watcher = asyncio.create_task(watch(target, data.pki, seen))
    workstations = sum(len(v.workstations) for s in province.sites for v in s.venues)
    for _ in range(args.processes):
        await asyncio.to_thread(ready.get, True, 180)
    await wait_for(seen, lambda k: seen.known[k] == workstations
                   and seen.online[k] == len(province.sites), 60)
    start = time.time() + 0.5
    for _ in range(args.processes):
        go.put(start)
    cpu0 = {p.pid: _cpu(p.pid) for p in procs}
    measure_from = start + args.warmup
    await asyncio.sleep(max(0.0, measure_from - time.time()))
    changes0, messages0 = counters[0], counters[1]
    cpu_window0 = {p.pid: _cpu(p.pid) for p in procs}
    await asyncio.sleep(max(0.0, start + args.warmup + args.seconds - time.time()))
    changes1, messages1 = counters[0], counters[1]
    cpu_window1 = {p.pid: _cpu(p.pid) for p in procs}
    events: list[tuple[float, str, bool]] = []
    final: dict[str, bool] = {}
    for _ in range(args.processes):
        times, which, states, last = await asyncio.to_thread(logs.get, True, 120)
        events.extend(zip(times, which, states, strict=True))
        final.update(last)
    want = frozenset(ws for ws, off in final.items() if off)
    try:
        settled = f"{await wait_for(seen, lambda k: seen.offline[k] == want, 30):.2f} s"
    except TimeoutError:
        settled = "NEVER (the operator's view differs from the sites' final states)"
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await watcher
    finish.set()
    cpu_total = {p.pid: _cpu(p.pid) - cpu0[p.pid] for p in procs}
    window = (measure_from, measure_from + args.seconds)
    sent = sum(1 for t, _, _ in events if window[0] <= t < window[1])
    found, missed = delays(events, seen, window)
    in_window = [t for t in seen.times if window[0] <= t < window[1]]
    coordinator_cpu = (cpu_window1[procs[0].pid] - cpu_window0[procs[0].pid]) / args.seconds
    sims_cpu = sum(cpu_window1[p.pid] - cpu_window0[p.pid] for p in procs[1:]) / args.seconds
    ms = [d * 1000 for d in found]
    rows = [
        ["changes sent by the sites", f"{sent / args.seconds:,.0f} /s",
         f"{sent:,} in {args.seconds:.0f} s"],
        ["changes recorded by the coordinator", f"{(changes1 - changes0) / args.seconds:,.0f} /s",
         f"in {(messages1 - messages0) / args.seconds:,.0f} status messages/s"],
        ["change -> operator snapshot p50", f"{pct(ms, 50):.0f} ms", f"{len(ms):,} changes"],
        ["change -> operator snapshot p99", f"{pct(ms, 99):.0f} ms",
         f"max {max(ms, default=float('nan')):.0f} ms"],
        ["changes never shown (flipped back first)", f"{missed:,}",
         f"{missed / max(sent, 1):.2%} of those sent"],
        ["operator snapshots", f"{len(in_window) / args.seconds:.1f} /s",
         f"final view matched the sites after {settled}"],
        ["coordinator CPU", f"{coordinator_cpu:.0%} of a core",
         f"{cpu_total[procs[0].pid]:.1f} s over the run"],
        [f"simulated sites CPU ({args.processes} processes)", f"{sims_cpu:.0%} of a core", ""],
    ]
    print_table(f"status load: {len(province.sites)} sites x {args.workstations} workstations "
                f"({workstations:,}), target {args.rate:,.0f} changes/s, "
                f"{args.seconds:.0f} s after {args.warmup:.0f} s warm-up",
                ["what", "figure", "detail"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.status_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=150)
    parser.add_argument("--workstations", type=int, default=30, help="per site")
    parser.add_argument("--rate", type=float, default=5000, help="changes per second, total")
    parser.add_argument("--seconds", type=float, default=20, help="measured window")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--processes", type=int, default=3, help="site simulator processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="run the coordinator under cProfile and print its top functions")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
