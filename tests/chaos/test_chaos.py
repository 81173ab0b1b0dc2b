"""Randomized outages on a demo day of real OS processes (tests/chaos/chaos_day.py).

`make test` runs one short scenario (a fresh seed each time, printed for replay);
`make chaos` runs CHAOS_SCENARIOS of them (20 by default) in a row; CHAOS_SEED replays one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from chaos_day import FAULTS, SITE_FAULTS, run_scenario

SCENARIOS = int(os.environ.get("CHAOS_SCENARIOS", "1"))
FIRST = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
# The short round's parameters differ from `make chaos`'s: its replay is the short round's.
REPLAY = "CHAOS_SEED={seed} make chaos"
REPLAY_SHORT = ("CHAOS_SEED={seed}" + (" CHAOS_FAULTS=all" if os.environ.get("CHAOS_FAULTS")
                                       == "all" else "") + " .venv/bin/python -m pytest -s "
                "tests/chaos")


@pytest.mark.chaos
@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", range(SCENARIOS))
async def test_nothing_lost_through_outages(scenario: int, tmp_path: Path) -> None:
    # The one round of `make test` stays short (fewer projects and faults) and injects the
    # site faults only; `make chaos` adds the coordinator's and Redis's (CHAOS_FAULTS=all
    # forces them in a single round too).
    short = SCENARIOS == 1
    every = not short or os.environ.get("CHAOS_FAULTS") == "all"
    # A short day can end before its first fault point comes: then the next seed is tried
    # (each printed), so that a passing round has always survived at least one fault.
    for attempt in range(3):
        work = tmp_path / str(attempt)
        work.mkdir()
        outcome = await run_scenario(FIRST + scenario + 1000 * attempt, work,
                                     projects=2 if short else 3,
                                     max_faults=4 if short else 12,
                                     faults=FAULTS if every else SITE_FAULTS,
                                     replay=REPLAY_SHORT if short else REPLAY)
        if outcome.faults or outcome.problems:
            break
    print(f"seed {outcome.seed}: {outcome.elapsed_s} s, faults {outcome.faults}, "
          f"{outcome.reported}/{outcome.projects} reported, awaiting an operator "
          f"{outcome.awaiting_operator}, {outcome.sheets_accepted} sheets accepted, "
          f"{outcome.refused_late} refused late")
    assert not outcome.problems, f"seed {outcome.seed}: {outcome.problems}"
    assert outcome.faults, "no fault was injected"
    assert outcome.reported + len(outcome.awaiting_operator) == outcome.projects
