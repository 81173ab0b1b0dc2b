"""Interval bookings in Redis: a workstation or an expert is never booked twice for one time.

Two draws running at once (two coordinator tasks, or two coordinators) may both find the same
workstation free; only one may get it. Checking and writing in separate round trips would let
both win, so a single Lua script (``reserve.lua``) checks every requested interval against every
booking on its resource and books them all or none: Redis runs a script with nothing in between.

Layout (``prefix`` defaults to ``bk:``)::

    bk:ws:<workstation_id>   sorted set, member "<start>:<end>:<holder>", score = start
    bk:ex:<expert_id>        the same, for an expert
    bk:~maxlen               hash: resource key -> longest interval ever booked there

Times are epoch seconds, intervals half-open ``[start, end)``. The holder is an opaque id (a
session or reservation id), never a project id: a dump of Redis must not say which project a
workstation or an expert serves. Use a *different* holder for each resource of one reservation
(``opaque_holder`` derives one per resource from a secret) so that a dump does not pair an expert
with a workstation either: only the sealed allocation says who sits where.

The ``~maxlen`` hash exists so the overlap scan reads only the intervals that start within
``longest`` seconds before the requested window, not a resource's whole history; it only grows,
so lowering a limit elsewhere can never hide an old long booking from the check.

Fencing: a draw that holds a lease (for example on a project) takes a token from ``Fencing``, a
counter that only grows. Passing ``Fence(key, token)`` to ``reserve_all``/``release`` makes the
script refuse if the counter has since moved past the token: a holder whose lease expired and was
taken over (a newer token issued) cannot book or release anything afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import redis.asyncio as aioredis

from coordinator.store.layout import (
    BOOKINGS_PREFIX,
    EXPERT_RESOURCE,
    FENCE_PREFIX,
    WORKSTATION_RESOURCE,
)
from coordinator.store.lua_scripts import lua_script

__all__ = [
    "MAX_TIMESTAMP",
    "BookingItem",
    "Bookings",
    "Conflict",
    "Fence",
    "Fencing",
    "ReserveResult",
    "StaleFenceError",
    "expert_resource",
    "opaque_holder",
    "ws_resource",
]

# Epoch seconds up to here print exactly in Lua (%.14g): year 33658, ample.
MAX_TIMESTAMP: Final = 10**12


_RESERVE_LUA: Final = lua_script("overlap.lua", "reserve.lua")

# Remove exactly the given members, all or none, optionally fenced. KEYS: n resource keys, then
# the fencing counter; ARGV: n, token or "", then the n members.
_RELEASE_LUA: Final = """
local n = tonumber(ARGV[1])
if ARGV[2] ~= '' then
  local current = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
  if current > tonumber(ARGV[2]) then
    return {'stale', current}
  end
end
local removed = 0
for i = 1, n do
  removed = removed + redis.call('ZREM', KEYS[i], ARGV[2 + i])
end
return {'ok', removed}
"""


def ws_resource(workstation_id: str) -> str:
    """The resource key of a workstation (without the store prefix)."""
    return WORKSTATION_RESOURCE.format(workstation_id)


def expert_resource(expert_id: str) -> str:
    """The resource key of an expert (without the store prefix)."""
    return EXPERT_RESOURCE.format(expert_id)


def opaque_holder(secret: bytes, reservation_id: str, resource_key: str) -> str:
    """A holder id for one resource of one reservation that reveals neither.

    HMAC keeps it reproducible for the coordinator (to release or recognise its own bookings)
    while two bookings of one reservation share nothing visible in a dump.
    """
    mac = hmac.new(secret, f"{reservation_id}\x00{resource_key}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BookingItem:
    """One interval ``[start, end)`` on one resource, held by an opaque holder."""

    resource_key: str
    start: int
    end: int
    holder: str

    def __post_init__(self) -> None:
        if not self.resource_key or self.resource_key.startswith("~"):
            raise ValueError(f"bad resource key {self.resource_key!r}")
        if not self.holder:
            raise ValueError("holder must not be empty")
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int (epoch seconds)")
            if not 0 <= value <= MAX_TIMESTAMP:
                raise ValueError(f"{name} out of range: {value}")
        if self.start >= self.end:
            raise ValueError(f"empty or reversed interval [{self.start}, {self.end})")

    @property
    def member(self) -> str:
        return f"{self.start}:{self.end}:{self.holder}"

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end

    @classmethod
    def from_member(cls, resource_key: str, member: object) -> BookingItem:
        """Parse a stored member (bytes or str, as the client's decoding gives it)."""
        if not isinstance(member, bytes | str):
            raise TypeError(f"unexpected member {member!r}")
        start, end, holder = _text(member).split(":", 2)
        return cls(resource_key, int(start), int(end), holder)


class Fence(NamedTuple):
    """A fencing token and the Redis key of the counter it was taken from."""

    key: str
    token: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why a reservation was refused: request item ``index`` overlaps ``existing``."""

    index: int
    item: BookingItem
    existing: BookingItem


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """The outcome of ``reserve_all``: booked (``ok``), a conflict, or a stale fence."""

    ok: bool
    added: int = 0
    conflict: Conflict | None = None
    stale_token: int | None = None
    audited: bool = False  # place.lua: the draw's audit entry was appended with it

    @property
    def reason(self) -> str:
        if self.ok:
            return f"booked ({self.added} new)"
        if self.conflict is not None:
            c = self.conflict
            return (
                f"item {c.index} ({c.item.resource_key} [{c.item.start}, {c.item.end})) "
                f"overlaps [{c.existing.start}, {c.existing.end}) held by {c.existing.holder}"
            )
        return f"stale fencing token: the counter is at {self.stale_token}"


class StaleFenceError(RuntimeError):
    """A fenced operation was refused: a newer token has been issued since."""

    def __init__(self, current: int) -> None:
        super().__init__(f"stale fencing token: the counter is at {current}")
        self.current = current


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _fence_parts(fence: Fence | tuple[str, int] | None) -> tuple[list[str], str]:
    if fence is None:
        return [], ""
    key, token = fence
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError("a fencing token is an int")
    return [key], str(token)


class Bookings:
    """Atomic multi-resource interval bookings (see the module docstring for the layout)."""

    def __init__(self, redis: aioredis.Redis, prefix: str = BOOKINGS_PREFIX) -> None:
        self._redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        # A fence every call carries unless it names its own: a coordinator that leads under
        # a lease sets its token here (coordinator.leadership), so a stale leader books nothing.
        self.default_fence: Fence | None = None

    def key(self, resource_key: str) -> str:
        """The Redis key of a resource's sorted set."""
        return f"{self.prefix}{resource_key}"

    @property
    def maxlen_key(self) -> str:
        return f"{self.prefix}~maxlen"

    async def reserve_all(
        self, items: Sequence[BookingItem], fence: Fence | tuple[str, int] | None = None
    ) -> ReserveResult:
        """Book every item or none; name the first conflict and the holder in its way.

        Booking the exact same (resource, start, end, holder) again succeeds with ``added`` 0,
        so a retry after a timeout is harmless.
        """
        if not items:
            return ReserveResult(ok=True)
        fence_keys, token = _fence_parts(fence if fence is not None else self.default_fence)
        keys = [self.key(i.resource_key) for i in items] + [self.maxlen_key, *fence_keys]
        args: list[str | int] = [len(items), token]
        for item in items:
            args += [item.start, item.end, item.member]
        reply = await self._reserve(keys=keys, args=args)
        status = _text(reply[0])
        if status == "ok":
            return ReserveResult(ok=True, added=int(reply[1]))
        if status == "stale":
            return ReserveResult(ok=False, stale_token=int(reply[1]))
        index = int(reply[1]) - 1
        item = items[index]
        existing = BookingItem.from_member(item.resource_key, reply[2])
        return ReserveResult(ok=False, conflict=Conflict(index, item, existing))

    async def release(
        self, items: Sequence[BookingItem], fence: Fence | tuple[str, int] | None = None
    ) -> int:
        """Remove exactly these bookings, all at once; returns how many were still there.

        Releasing again is harmless (0). Raises ``StaleFenceError`` if the fence is stale.
        """
        if not items:
            return 0
        fence_keys, token = _fence_parts(fence if fence is not None else self.default_fence)
        keys = [self.key(i.resource_key) for i in items] + fence_keys
        args: list[str | int] = [len(items), token, *(i.member for i in items)]
        reply = await self._release(keys=keys, args=args)
        if _text(reply[0]) == "stale":
            raise StaleFenceError(int(reply[1]))
        return int(reply[1])

    async def all_intervals(self, resource_key: str) -> list[BookingItem]:
        """Every booking on a resource, by start time."""
        members = await self._redis.zrange(self.key(resource_key), 0, -1)
        return [BookingItem.from_member(resource_key, m) for m in members]

    async def resources(self) -> list[str]:
        """Every resource key that has (or had) a booking set: what an offline check walks."""
        names = [raw.decode() if isinstance(raw, bytes) else str(raw)
                 async for raw in self._redis.scan_iter(match=f"{self.prefix}*", count=1000)]
        return sorted(name[len(self.prefix):] for name in names
                      if not name.startswith(self.maxlen_key))

    async def overlapping(self, resource_key: str, start: int, end: int) -> list[BookingItem]:
        """The bookings on a resource that overlap ``[start, end)``, by start time."""
        if start >= end:
            return []
        longest_raw = await self._redis.hget(self.maxlen_key, self.key(resource_key))
        low = f"({start - int(longest_raw)}" if longest_raw is not None else "-inf"
        members = await self._redis.zrangebyscore(self.key(resource_key), low, f"({end}")
        found = (BookingItem.from_member(resource_key, m) for m in members)
        return [b for b in found if b.overlaps(start, end)]

    async def holders_overlapping(self, resource_key: str, start: int, end: int) -> list[str]:
        """The holders of the bookings that overlap ``[start, end)`` on a resource."""
        return [b.holder for b in await self.overlapping(resource_key, start, end)]


class Fencing:
    """Fencing counters: ``next`` only ever grows, so an older token is recognisably stale."""

    def __init__(self, redis: aioredis.Redis, prefix: str = FENCE_PREFIX) -> None:
        self._redis = redis
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def next(self, name: str) -> int:
        """Issue a new token for ``name``; every earlier one becomes stale."""
        return int(await self._redis.incr(self.key(name)))

    async def acquire(self, name: str) -> Fence:
        """A new token together with its counter key, ready to pass to ``Bookings``."""
        return Fence(self.key(name), await self.next(name))

    async def current(self, name: str) -> int:
        raw = await self._redis.get(self.key(name))
        return int(raw) if raw is not None else 0
