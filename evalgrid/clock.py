"""Injected time: the domain never reads the wall clock itself, so tests and demos can replay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Protocol

PROVINCE_TZ: tzinfo = timezone(timedelta(hours=8), "+08")
"""The province's one local time: every time a person reads is shown in it."""


def local_text(when: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`when` in the province's local time, marked +08 so no one mistakes it for UTC."""
    return when.astimezone(PROVINCE_TZ).strftime(fmt) + " (+08)"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """A clock that only moves when told: a demo runs a whole day in seconds.

    Time never goes backwards; waiters are woken when it moves so nothing polls.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs an aware datetime")
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        if when > self._now:
            self._now = when
            self._moved.set()
            self._moved = asyncio.Event()
        return self._now


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones (ambiguous across sites)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: a timezone is required")
    return dt.astimezone(UTC)
