"""The store's log compaction held off while a day plan writes, and given back at its end.

Redis rewrites its append-only log when the log has grown by `auto-aof-rewrite-percentage`
(100 by default) since the last rewrite: a forked child serialises the whole dataset. A
national plan writes 2.5 GB of archives, placements and audit entries onto a 1.4 GB store, so
it set off two or three rewrites mid-plan: ten seconds of CPU, on the two cores the plan draws
and places on. A plan holds compaction off (percentage 0) and gives the setting back at its
end, whatever the end; Redis then starts the rewrite that is due, in the background, while
the operators read the plan's report. Nothing is less durable meanwhile: every write is in the
log as before (appendfsync unchanged); only the log's rewrite into a compact base waits.

Crash safety: the setting set aside is kept in Redis (`COMPACTION_HELD`) before the server's
is changed, and dropped only after it is given back, so a coordinator killed mid-plan, even
with SIGKILL, leaves a record that the next start finds (`recover`) and gives back: no crash
leaves compaction off for good. A server that refuses CONFIG (a managed Redis, an ACL without
it, a renamed command) is left as it is: the plan runs, rewrites and all, and says so once.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from coordinator.store.layout import COMPACTION_HELD
from coordinator.store.values import text

log = logging.getLogger(__name__)

SETTING = "auto-aof-rewrite-percentage"
OFF = "0"  # Redis: no automatic rewrite
DEFAULT = "100"  # Redis's own, given back where the record kept is unreadable


class LogCompaction:
    """Hold and give back the server's automatic AOF rewrite (module docstring)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def hold(self) -> bool:
        """Hold compaction off; False (and a warning) where the server refuses CONFIG."""
        try:
            current = await self.setting()
            # NX: a record left by a crashed holder keeps the setting from before it.
            await self.redis.set(COMPACTION_HELD, current, nx=True)
            await self.redis.config_set(SETTING, OFF)
        except ResponseError as exc:
            log.warning("store: the server refuses CONFIG (%s): its log compaction runs "
                        "during the plan", exc)
            await self.redis.delete(COMPACTION_HELD)
            return False
        return True

    async def release(self) -> str | None:
        """Give back the setting held; the setting, or None when nothing was held. A record
        that is not a percentage (edited, corrupted) gives back Redis's default, not an
        error that would leave compaction off for good."""
        held = await self.redis.get(COMPACTION_HELD)
        if held is None:
            return None
        setting = held.decode("ascii", "replace") if isinstance(held, bytes) else str(held)
        if not (setting.isascii() and setting.isdigit()):
            log.warning("store: the log compaction record holds %r, not a percentage: %s "
                        "is set to Redis's default, %s", setting[:40], SETTING, DEFAULT)
            setting = DEFAULT
        await self.redis.config_set(SETTING, setting)
        await self.redis.delete(COMPACTION_HELD)
        return setting

    async def give_back(self) -> None:
        """`release` at a plan's end, whatever the end: a store that fails now keeps the
        record, and the next plan or start gives the setting back (logged, not raised: the
        plan's own outcome is what the caller reports)."""
        try:
            await self.release()
        except (RedisError, OSError) as exc:
            log.warning("store: could not give back the log compaction setting (%s); the "
                        "next plan or start will", exc)

    async def recover(self) -> None:
        """At start: give back a setting a holder that died kept (a no-op otherwise)."""
        try:
            setting = await self.release()
        except ResponseError as exc:
            log.warning("store: could not give back the log compaction setting (%s)", exc)
            return
        if setting is not None:
            log.warning("store: log compaction was held off by a plan that did not finish; "
                        "%s is %s again", SETTING, setting)

    async def setting(self) -> str:
        """The server's setting now (ResponseError where CONFIG is refused)."""
        reply = await self.redis.config_get(SETTING)
        value = next((v for k, v in reply.items() if k is not None and text(k) == SETTING),
                     None)
        if value is None:
            raise ResponseError(f"CONFIG GET {SETTING} gave no value")
        return text(value)
