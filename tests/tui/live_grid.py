"""A real small grid that stays up, for trying the consoles by hand (not a test).

    .venv/bin/python tests/tui/live_grid.py --info /tmp/live.json

Starts the in-process grid of the integration tests, registers the day's projects, draws the
earliest scored one, has every member accept, moves the simulated clock to its window start
and starts the evaluation, so nobody has signed in yet: every seat is a no-show to be. Writes
what the consoles need (data dir, coordinator and agent addresses, one expert's ID number and
code for a desk check-in) to `--info`, then runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT, ROOT / "proto", ROOT / "tests" / "integration"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from grid_fixture import OPERATOR, focus_projects, start_grid  # noqa: E402


async def main(info_path: Path) -> None:
    async with start_grid(seed=5) as grid:
        await grid.register_all()
        project = focus_projects(grid.province)[0]
        _, notices = await grid.draw(project.id)
        for notice in notices:
            await grid.reply(notice["notice_id"], True)
        await grid.advance_to(project.window.start)
        await grid.start(project.id)
        notice = notices[0]
        site = grid.site_of_venue(notice["venue_id"])
        info = {
            "data_dir": str(grid.data.root), "coordinator": grid.target,
            "operator": OPERATOR, "project": project.id, "site": site,
            "agent": grid.agent_target(site),
            "id_number": grid.experts[notice["expert_id"]].id_number, "code": notice["code"],
        }
        info_path.write_text(json.dumps(info, indent=1))
        print(json.dumps(info), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--info", default="live-grid.json")
    asyncio.run(main(Path(parser.parse_args().info)))
