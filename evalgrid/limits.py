"""Per-identity rate limits: one token bucket per certificate subject, answered at the door.

A stolen or misbehaving certificate (a booth PC in a loop, a compromised agent) should not be
able to drown the coordinator or an agent, nor try sign-in codes at line rate. Every admitted
call (a stream counts once, when it opens) takes one token from the bucket of the caller's
``role:subject``; an empty bucket is answered RESOURCE_EXHAUSTED. The defaults are generous:
the demo and the tests never come near them. ``EVALGRID_RATE_LIMIT`` overrides them
("RATE/BURST" in calls per second and calls, or "off").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "ENROLMENT_PER_SOURCE",
    "ENROLMENT_TOTAL",
    "ENV_VAR",
    "MAX_DETAILS_CHARS",
    "OWN_BUDGET",
    "RateLimit",
    "TokenBuckets",
    "clip",
    "rate_limit_from_env",
]

ENV_VAR: Final = "EVALGRID_RATE_LIMIT"


@dataclass(frozen=True)
class RateLimit:
    """Sustained calls per second and the burst an identity may spend at once."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s: must be > 0, not {self.rate_per_s!r}")
        if self.burst < 1:
            raise ValueError(f"burst: must be at least 1, not {self.burst!r}")


#: 200 calls a second sustained, 2,000 at once, per certificate: a site agent relaying for
#: all its booths on a busy morning makes a few calls a second.
DEFAULT_RATE_LIMIT: Final = RateLimit(rate_per_s=200.0, burst=2000)


def rate_limit_from_env(default: RateLimit | None = DEFAULT_RATE_LIMIT) -> RateLimit | None:
    """The limit ``EVALGRID_RATE_LIMIT`` names ("RATE/BURST" or "off"), else ``default``."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return None
    rate, sep, burst = raw.partition("/")
    try:
        if not sep:
            raise ValueError("expected RATE/BURST")
        return RateLimit(rate_per_s=float(rate), burst=int(burst))
    except ValueError as exc:
        raise ValueError(f"{ENV_VAR}: {raw!r} is not RATE/BURST or off ({exc})") from exc


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class TokenBuckets:
    """Token buckets keyed by identity; thread-safe (sync servicers run in a pool)."""

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float:
        """Spend one token of ``key``; return 0.0, or the seconds until a token is there."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.limit.burst),
                                bucket.tokens + elapsed * self.limit.rate_per_s)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.limit.rate_per_s


#: Methods whose calls are counted in a bucket of their own, apart from the caller's budget:
#: an agent relays enrolments for devices that anyone on the site's network can imitate, and
#: a flood of those must not refuse the site's real calls.
OWN_BUDGET: Final = frozenset({"/evalgrid.v1.SiteLink/EnrolWorkstation"})

#: The agent's enrolment port (no client certificates): per source address, and for the port
#: as a whole. A booth enrols once; a desk re-imaging a room (one address behind NAT) makes a
#: burst of calls, then a few a minute. The total stays far below a site's own budget.
ENROLMENT_PER_SOURCE: Final = RateLimit(rate_per_s=1.0, burst=20)
ENROLMENT_TOTAL: Final = RateLimit(rate_per_s=5.0, burst=50)

#: Longest status message sent back. An error names the bad value, and the value may be
#: hostile (60,000 characters): gRPC sends the message percent-encoded in a trailer, and a
#: trailer past its 8 KiB limit kills the stream (the caller would see RESOURCE_EXHAUSTED
#: instead of the reason).
MAX_DETAILS_CHARS: Final = 400


def clip(details: str, limit: int = MAX_DETAILS_CHARS) -> str:
    """``details`` cut to ``limit`` characters (marked), so it always fits a trailer."""
    return details if len(details) <= limit else details[: limit - 1] + "…"
