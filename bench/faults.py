"""What fault handling costs: the agent's journal (one fsync per record), sealing and opening a
seat pass (scrypt), and a lease check over a national number of sites.

    python -m bench.run faults [--records 300] [--passes 40] [--sites 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.machine import ms_row, print_table
from coordinator.domain.liveness import Liveness, LivenessPolicy
from evalgrid.seat_pass import open_pass, seal
from site_agent.offline_journal import OfflineJournal

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _timed(work: list[object], run: object) -> list[float]:
    out = []
    for item in work:
        start = time.perf_counter()
        run(item)  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.run faults")
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--passes", type=int, default=40)
    parser.add_argument("--sites", type=int, default=3000)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="eg-bench-") as tmp:
        journal = OfflineJournal(Path(tmp) / "journal.jsonl")
        sheet = {"ws": "S0001-V1-R01-W01", "session": "ses-0123456789abcdef",
                 "sheet": "x" * 600, "signed": True, "at": T0.isoformat()}
        rows.append(ms_row("journal append + fsync (sheet record)", _timed(
            list(range(args.records)), lambda i: journal.append("sheet", rid=f"r{i}", **sheet))))
        start = time.perf_counter()
        reopened = OfflineJournal(Path(tmp) / "journal.jsonl")
        rows.append(ms_row(f"journal reopen ({len(reopened.records)} records)",
                           [time.perf_counter() - start]))
    payload = b"p" * 2000  # a pass with a sheet form of a dozen bids and criteria
    sealed: list[bytes] = []
    rows.append(ms_row("seat pass seal (coordinator, per seat)", _timed(
        list(range(args.passes)), lambda i: sealed.append(
            seal(payload, session_id=f"ses-{i}", id_number="110101199003078888",
                 code="123456")))))
    rows.append(ms_row("seat pass open (agent, offline sign-in)", _timed(
        list(enumerate(sealed)), lambda pair: open_pass(
            pair[1], session_id=f"ses-{pair[0]}", id_number="110101199003078888",
            code="123456"))))
    policy = LivenessPolicy(heartbeat_interval=timedelta(seconds=2))
    sites = [f"S{i:05d}" for i in range(args.sites)]
    live = Liveness(policy, started_at=T0, sites=sites)
    for site in sites:
        live.stream_opened(site, T0)
    ticks = []
    for beat in range(1, 21):
        now = T0 + beat * timedelta(seconds=1)
        for site in sites:
            live.heard(site, now)
        start = time.perf_counter()
        live.tick(now)
        ticks.append(time.perf_counter() - start)
    rows.append(ms_row(f"lease check, {args.sites:,} sites", ticks))
    print_table("Fault handling costs (ms)", ["what", "n", "p50", "p99", "max"], rows)


if __name__ == "__main__":
    main()
