"""The day plan, pure parts: order, per-project seeds, the screening job, the plan's own bookings.

A day plan draws every project of a day that still awaits its draw, in one batch:

Order. Projects are drawn in *plan order*: window start, then project id. Earlier draws book
experts and workstations that later draws then cannot have, so the order is part of the plan.

Seeds. The coordinator takes one 32-byte *plan seed* from the OS CSPRNG (never from a client: a
client who could choose it could try seeds until a plan suited it) and records its SHA-256 in
the audit trail (`plan.committed`) before anything is screened or drawn. Project P's draw seed is

    seed(P) = HMAC-SHA256(key = plan seed, message = P's id in UTF-8)

so every draw of the plan keeps its own seed, commitment (SHA-256 of that seed) and archive, and
`evalgrid draw verify` replays it alone, exactly like a single draw. HMAC is a pseudo-random
function: revealing one project's seed after its award says nothing about the plan seed or about
the seeds of the day's other projects.

Screening is the coordinator's one path, the day's `DayScreen` (coordinator/domain/eligibility.py).
Phase 1 runs its one booking-independent and costly rule, "party" (the conflict-index look-ups),
for every project at once through the batch executor (`tied_rows_chunk` over `PartyRule`, sent
once per plan). Phase 2 draws one by one in plan order on referenced inputs, each draw booking
into the plan's copy of the day screen, so a project sees exactly what a single draw run after
the plan's earlier draws would see (a test checks the inputs' digests against that).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TypeVar

from coordinator.domain.model import Project

PLAN_SEED_BYTES = 32
SEED_DERIVATION = "HMAC-SHA256(plan seed, project id)"


# --- order and seeds -----------------------------------------------------------------------


def local_day(moment: datetime, offset_minutes: int) -> date:
    """The calendar day of an aware moment at the rules' local UTC offset."""
    return (moment + timedelta(minutes=offset_minutes)).date()


def projects_of_day(projects: Iterable[Project], day: date, offset_minutes: int) -> list[Project]:
    """The projects whose window starts on `day` (local time), in plan order."""
    return plan_order(p for p in projects
                      if local_day(p.window.start, offset_minutes) == day)


def plan_order(projects: Iterable[Project]) -> list[Project]:
    """Window start, then project id: the order the plan draws in (part of the plan)."""
    return sorted(projects, key=lambda p: (p.window.start, p.id))


def project_seed(plan_seed: bytes, project_id: str) -> bytes:
    """HMAC-SHA256(key=plan_seed, msg=project_id): the seed of one project's draw."""
    if len(plan_seed) != PLAN_SEED_BYTES:
        raise ValueError(f"plan_seed: {PLAN_SEED_BYTES} bytes expected, not {len(plan_seed)}")
    return hmac.new(plan_seed, project_id.encode("utf-8"), hashlib.sha256).digest()


def draw_label(project_id: str, first: int = 0, redraw: int = 0) -> str:
    """What names a draw under the day's seed (its seed is HMAC(day seed, label)): the project
    id for its first draw (planned or single: the same seed either way), ``id/rK`` for the K-th
    first draw again (a new committee after an incident), then ``/n`` for the n-th redraw of
    that committee. `draw verify` accepts no other form."""
    base = project_id if first == 0 else f"{project_id}/r{first}"
    return base if redraw == 0 else f"{base}/{redraw}"


def seed_hash(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def projects_digest(project_ids: Sequence[str]) -> str:
    """SHA-256 hex of the project ids in plan order, one per line: which projects, in which
    order, the plan covers."""
    return hashlib.sha256("\n".join(project_ids).encode("utf-8")).hexdigest()


# --- phase 1: the batch part of screening ---------------------------------------------------


T = TypeVar("T")


def chunked(jobs: Sequence[T], chunks: int) -> list[list[T]]:
    """`jobs` in at most `chunks` contiguous chunks of nearly equal size."""
    if not jobs:
        return []
    size = -(-len(jobs) // max(1, chunks))
    return [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]
