"""The leader's lease in Redis: its key, its fencing counter and the three scripts on them.

`coordinator.leadership` decides when to take, renew or give back the lease; this module is
the only one that knows how (keys in `coordinator.store.layout`). Each step is one script, so
it is atomic against the other coordinators.
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

from coordinator.store.bookings import Fence, Fencing
from coordinator.store.layout import LEADER, LEADER_FENCE

__all__ = ["LeaseStore"]

# KEYS: leader key, fencing counter; ARGV: node id, lease ms. Takes the lease if free and a
# fresh fencing token with it, atomically: returns the token, or 0 when another leads.
_ACQUIRE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
  return token
end
return 0
"""
# KEYS: leader key; ARGV: holder value, lease ms. Renews only our own lease.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: leader key; ARGV: holder value. Gives the lease back on a clean stop.
_RESIGN: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.fencing = Fencing(redis)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._resign = redis.register_script(_RESIGN)

    def fence(self, token: int) -> Fence:
        """The fence a leader holding ``token`` puts on its bookings."""
        return Fence(self.fencing.key(LEADER_FENCE), token)

    async def acquire(self, node: str, lease_ms: int) -> int:
        """The new fencing token if the lease was free and is now ``node``'s, else 0."""
        return int(await self._acquire(keys=[LEADER, self.fencing.key(LEADER_FENCE)],
                                       args=[node, lease_ms]))

    async def renew(self, holder: str, lease_ms: int) -> int:
        """1 if ``holder``'s lease was renewed, 0 if the lease is another's (or gone)."""
        return int(await self._renew(keys=[LEADER], args=[holder, lease_ms]))

    async def resign(self, holder: str) -> None:
        """Give the lease back, if it is still ``holder``'s."""
        await self._resign(keys=[LEADER], args=[holder])
