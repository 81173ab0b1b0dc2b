"""The refusal every coordinator shell raises, in a module of its own.

It lives apart from the workflow so that the shells the workflow builds on (day plan, draw
intents, seed shares, faults, enrolment) can raise it without importing the workflow: no
import cycle (`tests/test_layering.py`). `coordinator.workflow` re-exports it.
"""

from __future__ import annotations

__all__ = ["WorkflowError"]


class WorkflowError(Exception):
    """A refused request; `field` names what was wrong, the message says why."""

    def __init__(self, field: str, reason: str, *, code: str = "invalid") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code  # invalid | not_found | precondition | denied
