"""Identifiers: opaque ones reveal nothing; request ids make retries harmless."""

from __future__ import annotations

import secrets
import uuid


def request_id() -> str:
    """A client-chosen id for a state-changing call: the server answers a resend identically."""
    return uuid.uuid4().hex


def opaque_id(prefix: str) -> str:
    """An id that carries no information (no project, expert or time): safe to show anyone."""
    return f"{prefix}-{secrets.token_hex(8)}"


def one_time_code(digits: int = 6) -> str:
    """The sign-in code sent with a notice."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"  # uniform; one draw, not one a digit
