"""The seats' sessions as the guest sites know them (``SESSION``, ``SITE_SESSIONS``).

A session names its site, workstation and window in clear (the agent needs them to reserve)
and its project only sealed: a Redis dump does not link a workstation to a project. The set of
each site's sessions is what is resent to an agent that restarted, and what a site's fault
looks through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.store.layout import SESSION, SITE_SESSIONS
from coordinator.store.values import text


@dataclass(frozen=True)
class HeldSession:
    session_id: str
    site_id: str
    workstation_id: str
    start: datetime
    end: datetime
    project_id: str


class Sessions:
    def __init__(self, redis: aioredis.Redis, master_key: bytes) -> None:
        self.redis = redis
        self.master_key = master_key

    def stage_open(self, pipe: Any, *, session_id: str, site_id: str, workstation_id: str,
                   start_ts: int, end_ts: int, project_id: str) -> None:
        """A new seat's session and its place in the site's set, in the caller's MULTI."""
        pipe.hset(SESSION.format(session_id), mapping={
            "site": site_id, "ws": workstation_id, "start": start_ts, "end": end_ts,
            "ref": seal_json(self.master_key, session_id, "session",
                             {"project": project_id}).to_json(),
        })
        pipe.sadd(SITE_SESSIONS.format(site_id), session_id)

    async def held(self, session_id: str) -> HeldSession | None:
        raw = await self.redis.hgetall(SESSION.format(session_id))
        if not raw:
            return None
        ref = unseal_json(self.master_key, SealedBox.from_json(text(raw[b"ref"])),
                          project_id=session_id, purpose="session")
        return HeldSession(session_id=session_id, site_id=text(raw.get(b"site", b"")),
                           workstation_id=text(raw[b"ws"]),
                           start=datetime.fromtimestamp(int(raw[b"start"]), UTC),
                           end=datetime.fromtimestamp(int(raw[b"end"]), UTC),
                           project_id=str(ref["project"]))

    async def site_session_ids(self, site_id: str) -> list[str]:
        return sorted(text(raw) for raw in await self.redis.smembers(
            SITE_SESSIONS.format(site_id)))

    async def held_at(self, site_id: str, workstation_id: str | None = None
                      ) -> list[HeldSession]:
        """The sessions the site holds (on that workstation, if given) that are still stored."""
        found = []
        for session_id in await self.site_session_ids(site_id):
            held = await self.held(session_id)
            if held is not None and workstation_id in (None, held.workstation_id):
                found.append(held)
        return found

    async def leave_site(self, site_id: str, session_id: str) -> None:
        """The site no longer holds the session (released): not resent after a restart."""
        await self.redis.srem(SITE_SESSIONS.format(site_id), session_id)

    async def move(self, session_id: str, workstation_id: str) -> None:
        await self.redis.hset(SESSION.format(session_id), "ws", workstation_id)
