"""The bookings of many draws in one round trip: a day plan's chunk through ``place.lua``.

Booking each draw of a national plan by itself (``Bookings.reserve_all``) costs one fsynced
round trip per draw. ``place.lua`` takes a whole chunk: each draw is still booked all or none
(a draw whose seat is taken books nothing and is named in the reply), in the chunk's order,
with the overlap rule, key layout and fencing of ``bookings.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Final

import redis.asyncio as aioredis

from coordinator.store.bookings import (
    BookingItem,
    Bookings,
    Conflict,
    Fence,
    ReserveResult,
)

__all__ = ["Placements"]

_PLACE_LUA: Final = resources.files(__package__).joinpath("place.lua").read_text("utf-8")


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Placements:
    """Chunked bookings on the same store (prefix, default fence) as `bookings`."""

    def __init__(self, redis: aioredis.Redis, bookings: Bookings) -> None:
        self.bookings = bookings
        self._place = redis.register_script(_PLACE_LUA)

    async def reserve_groups(self, groups: Sequence[Sequence[BookingItem]],
                             fence: Fence | tuple[str, int] | None = None
                             ) -> list[ReserveResult]:
        """Book each group all or none, in order; one result per group (a stale fence
        refuses them all)."""
        if not groups:
            return []
        fence = fence if fence is not None else self.bookings.default_fence
        fence_keys, token = ([], "") if fence is None else ([fence[0]], str(int(fence[1])))
        keys = [self.bookings.key(i.resource_key) for group in groups for i in group]
        keys += [self.bookings.maxlen_key, *fence_keys]
        args: list[str | int] = [len(groups), token, *(len(group) for group in groups)]
        for group in groups:
            for item in group:
                args += [item.start, item.end, item.member]
        reply = await self._place(keys=keys, args=args)
        if _text(reply[0]) == "stale":
            return [ReserveResult(ok=False, stale_token=int(reply[1]))] * len(groups)
        results = []
        for group, one in zip(groups, reply[1:], strict=True):
            if _text(one[0]) == "ok":
                results.append(ReserveResult(ok=True, added=int(one[1])))
                continue
            index = int(one[1]) - 1
            item = group[index]
            existing = BookingItem.from_member(item.resource_key, one[2])
            results.append(ReserveResult(ok=False, conflict=Conflict(index, item, existing)))
        return results
