"""The days' seed rounds (``SEED_SHARE``: the coordinator's sealed share, the supervisor's
commitment and share, the round's state, the projects' first-draw counts) and the day plans'
sealed seeds (``PLAN_SEED``). The protocol: coordinator/seed_shares.py,
coordinator/domain/seed_protocol.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from coordinator.store.layout import PLAN_SEED, SEED_SHARE
from coordinator.store.values import text


def _texts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def share_subject(day: str) -> str:
    """What the coordinator's sealed share is bound to (its record's name), so a share sealed
    for one day does not open as another's."""
    return SEED_SHARE.format(day)


_CLAIM_LUA: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""


class SeedRounds:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM_LUA)

    async def fields(self, day: str) -> dict[str, str]:
        return _texts(await self.redis.hgetall(SEED_SHARE.format(day)))

    async def fields_of(self, days: Sequence[str]) -> list[dict[str, str]]:
        """Several days' rounds in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(SEED_SHARE.format(day))
        return [_texts(raw) for raw in await pipe.execute()]

    async def claim(self, day: str, field: str, fields: Mapping[str, str]) -> bool:
        """Set `fields` (`field` among them) unless `field` is set, in one step: True for the
        one caller that set them. One step, so no crash leaves a commitment stored without
        the sealed share it commits to."""
        return bool(await self._claim(keys=[SEED_SHARE.format(day)],
                                      args=[field, *(x for kv in fields.items() for x in kv)]))

    async def update(self, day: str, fields: dict[str, str]) -> None:
        await self.redis.hset(SEED_SHARE.format(day), mapping=fields)  # type: ignore[arg-type]

    async def first_draws(self, day: str, project_id: str) -> int:
        """How many first draws of the project the day's round has given."""
        pipe = self.redis.pipeline(transaction=False)
        self.stage_first_draws(pipe, day, project_id)
        (count,) = await pipe.execute()
        return self.read_first_draws(count)

    @staticmethod
    def stage_first_draws(pipe: Any, day: str, project_id: str) -> None:
        """`first_draws`' read on the caller's pipeline; its reply goes to `read_first_draws`."""
        pipe.hget(SEED_SHARE.format(day), f"first:{project_id}")

    @staticmethod
    def read_first_draws(reply: Any) -> int:
        return int(reply or 0)

    async def take_first(self, day: str, project_ids: Iterable[str]) -> None:
        """One more first draw for each project (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        self.stage_take_first(pipe, day, project_ids)
        await pipe.execute()

    @staticmethod
    def stage_take_first(pipe: Any, day: str, project_ids: Iterable[str]) -> None:
        """`take_first` on the caller's pipeline (a single draw's: with its commitment)."""
        for project_id in project_ids:
            pipe.hincrby(SEED_SHARE.format(day), f"first:{project_id}", 1)

    async def coordinator_sealed(self, day: str) -> str | None:
        raw = await self.redis.hget(SEED_SHARE.format(day), "coordinator_sealed")
        return None if raw is None else text(raw)


class PlanSeeds:
    """Each day plan's seed, sealed until the awards, then revealed beside it."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def keep(self, plan_id: str, day: str, sealed: str) -> None:
        await self.redis.hset(PLAN_SEED.format(plan_id), mapping={"day": day, "sealed": sealed})

    async def fields(self, plan_id: str) -> dict[str, str]:
        return _texts(await self.redis.hgetall(PLAN_SEED.format(plan_id)))

    async def reveal(self, plan_id: str, seed_hex: str) -> None:
        await self.redis.hset(PLAN_SEED.format(plan_id), "seed", seed_hex)
