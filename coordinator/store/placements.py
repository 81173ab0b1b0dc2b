"""The placements of many draws in one round trip: a day plan's chunk through ``place.lua``.

Booking each draw of a national plan by itself (``Bookings.reserve_all``), then storing its
placement (one MULTI), costs two fsynced round trips per draw. ``place.lua`` takes a whole
chunk: first its commitments (the prefix: archives, seed labels and `draw.committed`
entries, which land ahead of every placement or nothing is written), then each draw, still
booked all or none (a draw whose seat is taken books and writes nothing and is named in the
reply), in the chunk's order, with the overlap rule, key layout and fencing of
``bookings.py``; a booked draw's writes (``Writes``: its allocation, sessions, commands,
state, intent) are made in the same atomic step, so no state lies between committed, booked
and stored. Each booked draw's `draw.placed` may be audited in that step too (`chained`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgpack
import redis.asyncio as aioredis

from coordinator.store.audit_log import ChainedEntries
from coordinator.store.bookings import (
    BookingItem,
    Bookings,
    Conflict,
    Fence,
    ReserveResult,
)
from coordinator.store.layout import FENCE
from coordinator.store.lua_scripts import lua_script

__all__ = ["ChainMoved", "Placements", "Writes"]

_PLACE_LUA: Final = lua_script("overlap.lua", "audit_append.lua", "command_fence.lua", "place.lua")


def _arg(value: str | bytes | int) -> str | bytes:
    """A write's argument as Redis takes it (an int as its decimal text, not a Lua number)."""
    return str(value) if isinstance(value, int) else value


def _packed(value: object) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=False))  # Lua's cmsgpack has no bin


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Writes:
    """The writes of one draw's placement, recorded with a pipeline's calls (``set``, ``hset``,
    ``sadd``, ``rpush``, ``ltrim``) so that the code staging a MULTI can stage them for
    ``place.lua``; and a site's command, queued with its fence (``SiteCommands.stage_queue``)."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str, list[str | bytes | int]]] = []

    def set(self, key: str, value: str | bytes, ex: int | None = None) -> None:
        self.ops.append(("SET", key, [value] if ex is None else [value, "EX", ex]))

    def hset(self, key: str, field: str | None = None, value: str | bytes | int | None = None,
             mapping: dict[str, str | bytes | int] | None = None) -> None:
        args: list[str | bytes | int] = [] if field is None or value is None else [field, value]
        for k, v in (mapping or {}).items():
            args += [k, v]
        self.ops.append(("HSET", key, args))

    def sadd(self, key: str, *members: str) -> None:
        self.ops.append(("SADD", key, list(members)))

    def rpush(self, key: str, *values: str | bytes) -> None:
        self.ops.append(("RPUSH", key, list(values)))

    def ltrim(self, key: str, start: int, end: int) -> None:
        self.ops.append(("LTRIM", key, [start, end]))

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        """A prefix's only (a seed label taken)."""
        self.ops.append(("HINCRBY", key, [field, amount]))

    def queue_command(self, key: str, command_id: str, command: bytes) -> None:
        """A site's command (encoded, fence unset), queued with the next fence
        (command_fence.lua)."""
        self.ops.append(("QUEUE", key, [command_id, command]))


class ChainMoved(Exception):
    """Another writer moved the audit chain's head since the prefix's entries were built on
    it: nothing was written; build them on the new head and place again."""


class Placements:
    """Chunked bookings on the same store (prefix, default fence) as `bookings`."""

    def __init__(self, redis: aioredis.Redis, bookings: Bookings) -> None:
        self.bookings = bookings
        self._place = redis.register_script(_PLACE_LUA)

    async def place(self, draws: Sequence[tuple[Sequence[BookingItem], Writes]],
                    fence: Fence | tuple[str, int] | None = None,
                    chained: ChainedEntries | None = None, *,
                    prefix: Writes | None = None, prefix_entries: int = 0
                    ) -> list[ReserveResult]:
        """Make `prefix`'s writes and append the first `prefix_entries` of `chained`, then book
        each draw's items all or none, in order, and make its writes when booked; one result
        per draw (a stale fence refuses them all, the prefix's too). `chained`: the prefix's
        entries, then one audit entry per draw, appended with the draw's writes while the
        chain holds (`ReserveResult.audited`; `chained.landed` filled in). Raises ChainMoved
        (nothing written) when the prefix's entries no longer chain on the head."""
        if not draws:
            if prefix is not None or prefix_entries:
                raise ValueError("a prefix is placed with draws")
            return []
        entries = [] if chained is None else chained.entries
        if entries and len(entries) != prefix_entries + len(draws):
            raise ValueError(f"{len(entries)} audit entries for {prefix_entries} + "
                             f"{len(draws)} draws")
        committed, entries = entries[:prefix_entries], entries[prefix_entries:]
        ahead = prefix or Writes()
        groups = [items for items, _ in draws]
        fence = fence if fence is not None else self.bookings.default_fence
        fence_keys, token = ([], "") if fence is None else ([fence[0]], str(int(fence[1])))
        keys = [self.bookings.key(i.resource_key) for group in groups for i in group]
        keys += [self.bookings.maxlen_key, FENCE, *fence_keys]
        if chained is not None and chained.entries:
            keys += [chained.stream_key, chained.head_key]
        keys += [key for _, key, _ in ahead.ops]
        keys += [key for _, writes in draws for _, key, _ in writes.ops]
        args: list[str | bytes | int] = [
            len(groups), token, "1" if chained is not None and chained.entries else "",
            _packed([[[command, *map(_arg, values)] for command, _, values in ahead.ops],
                     [ChainedEntries.args(entry) for entry in committed]])]
        for d, (group, (_, writes)) in enumerate(zip(groups, draws, strict=True)):
            items: list[str | int] = []  # one value per draw
            for item in group:
                items += [item.start, item.end, item.member]
            entry = ChainedEntries.args(entries[d]) if entries else []
            args.append(_packed([items, [[command, *map(_arg, values)]
                                         for command, _, values in writes.ops], entry]))
        reply = await self._place(keys=keys, args=args)
        if _text(reply[0]) in ("stale", "moved"):
            if chained is not None:
                chained.landed = [False] * len(chained.entries)
            if _text(reply[0]) == "moved":
                raise ChainMoved("the audit chain's head moved under the draws' commitments")
            return [ReserveResult(ok=False, stale_token=int(reply[1]))] * len(groups)
        results = []
        for group, one in zip(groups, reply[1:], strict=True):
            if _text(one[0]) == "ok":
                results.append(ReserveResult(ok=True, added=int(one[1]),
                                             audited=len(one) > 2 and int(one[2]) == 1))
                continue
            index = int(one[1]) - 1
            item = group[index]
            existing = BookingItem.from_member(item.resource_key, one[2])
            results.append(ReserveResult(ok=False, conflict=Conflict(index, item, existing)))
        if chained is not None:
            chained.landed = [True] * len(committed) + (
                [r.audited for r in results] if entries else [])
        return results
