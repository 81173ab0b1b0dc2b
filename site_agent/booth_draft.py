"""The booth's draft sheet on its own disk: an expert's scores survive a crash or a restart.

One file per workstation, for one session at a time; every accepted value is written at once
(atomically), so a refused value or a lost link loses nothing else. It outlives signing (a
sheet the leader returns comes back filled in) and goes when another session signs in. A
draft that does not decode is set aside, never trusted; each value is checked again against
the form by the shared rule before it is shown.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from evalgrid.score_rules import cell_problem

DRAFT_VERSION = 1


@dataclass
class Draft:
    path: Path
    session_id: str
    scores: dict[tuple[str, str], str] = field(default_factory=dict)  # (bid, criterion) -> text
    note: str = ""  # what happened to an earlier file, said once to the expert

    def put(self, bid_code: str, criterion_id: str, text: str) -> None:
        self.scores[(bid_code, criterion_id)] = text
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"version": DRAFT_VERSION, "session_id": self.session_id,
                           "scores": sorted([b, c, v] for (b, c), v in self.scores.items())})
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def discard(self) -> None:
        """The seat is given up: the draft has no more use. (A signed sheet's draft is kept
        until another session signs in here: the leader may return the sheet.)"""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def load_draft(path: Path, session_id: str, bids: list[str],
               maxima: dict[str, Decimal]) -> Draft:
    """The draft kept for `session_id`, keeping only values the form and the rule accept."""
    draft = Draft(path, session_id)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return draft
    except OSError as exc:
        draft.note = f"the saved draft could not be read ({exc.strerror}); starting afresh"
        return draft
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != DRAFT_VERSION:
            raise ValueError("unknown format")
        rows = data["scores"]
        if not isinstance(rows, list):
            raise ValueError("scores is not a list")
        other_session = data.get("session_id") != session_id
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        _set_aside(path)
        draft.note = f"the saved draft was damaged ({exc}) and set aside; starting afresh"
        return draft
    if other_session:  # an earlier expert's sheet: never shown to this one, nor kept
        with contextlib.suppress(OSError):
            path.unlink()
        return draft
    dropped = 0
    for row in rows:
        ok = (isinstance(row, list) and len(row) == 3 and all(isinstance(x, str) for x in row)
              and row[0] in bids and row[1] in maxima
              and cell_problem(row[2], maxima[row[1]]) is None)
        if ok:
            draft.scores[(row[0], row[1])] = row[2]
        else:
            dropped += 1
    parts = []
    if draft.scores:
        parts.append(f"your draft is back: {len(draft.scores)} score(s) kept")
    if dropped:
        parts.append(f"{dropped} saved value(s) did not fit the sheet and were dropped")
    draft.note = "; ".join(parts)
    return draft


def _set_aside(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.replace(path, path.with_suffix(".old"))
