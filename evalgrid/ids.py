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
    return "".join(secrets.choice("0123456789") for _ in range(digits))
