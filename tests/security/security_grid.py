"""One in-process grid for the security tests, and a digest of everything it stores.

The grid is the integration tests' (`tests/integration/grid_fixture.py`). Two of its sites have
their agents stopped at the start (`spare`, `spare_other`): SiteLink calls that an agent would
make (above all `Connect`) are made as those sites, so a test never competes with a live agent.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if INTEGRATION not in sys.path:
    sys.path.append(INTEGRATION)

from grid_fixture import OPERATOR, Grid, start_grid, wait_until  # noqa: E402

from evalgrid.authorization import PACKAGE  # noqa: E402

AUDIT_STREAM = b"audit"
AUDIT_KEYS = frozenset({AUDIT_STREAM, b"audit:head"})


@dataclass(frozen=True)
class Snapshot:
    keys: dict[bytes, bytes]  # every Redis key but the audit trail's -> digest of its value
    agents: str               # digest of every live agent's booths
    audit_length: int

    @property
    def state(self) -> tuple[dict[bytes, bytes], str]:
        return self.keys, self.agents

    def changed(self, after: Snapshot) -> list[str]:
        """What differs in `after`: Redis keys by name, and "agents" for the booths."""
        names = sorted(k for k in self.keys.keys() | after.keys.keys()
                       if self.keys.get(k) != after.keys.get(k))
        return [n.decode(errors="replace") for n in names] + \
            (["agents"] if after.agents != self.agents else [])


# Every key but the audit trail's with a digest of its value, and the trail's length, in one
# atomic script: equal contents digest equal, whatever the order or the encoding Redis keeps
# them in (a hash's or a set's members are digested one by one and their digests sorted: hex
# digests sort the same under any collation). Only ordinary reads (DEBUG DIGEST is off by
# default from Redis 7 on). Reading every value back to the client and digesting it there
# cost the security tests most of their time: thousands of snapshots of the whole store.
_SNAPSHOT_LUA = """
local function enc(parts)
  local out = {}
  for i, part in ipairs(parts) do out[i] = #part .. ':' .. part end
  return table.concat(out)
end
local function unordered(pairs_of, width)
  local digests = {}
  for i = 1, #pairs_of, width do
    local one = {}
    for j = 0, width - 1 do one[j + 1] = pairs_of[i + j] end
    digests[#digests + 1] = redis.sha1hex(enc(one))
  end
  table.sort(digests)
  return table.concat(digests, ',')
end
local skip = {}
for _, key in ipairs(KEYS) do skip[key] = true end
local out = {redis.call('XLEN', ARGV[1])}
for _, key in ipairs(redis.call('KEYS', '*')) do
  if not skip[key] then
    local kind = redis.call('TYPE', key)['ok']
    local body
    if kind == 'string' then
      body = redis.call('GET', key)
    elseif kind == 'hash' then
      body = unordered(redis.call('HGETALL', key), 2)
    elseif kind == 'set' then
      body = unordered(redis.call('SMEMBERS', key), 1)
    elseif kind == 'zset' then
      body = enc(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'))
    elseif kind == 'list' then
      body = enc(redis.call('LRANGE', key, 0, -1))
    elseif kind == 'stream' then
      local entries = {}
      for i, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
        entries[i] = enc({entry[1], enc(entry[2])})
      end
      body = enc(entries)
    else
      body = ''
    end
    out[#out + 1] = key
    out[#out + 1] = redis.sha1hex(kind .. ':' .. body)
  end
end
return out
"""


@dataclass
class SecurityGrid:
    grid: Grid
    redis: aioredis.Redis
    home: str         # a site with a live agent: its Booth and Desk are called
    other: str        # another site with a live agent
    spare: str        # a registered site whose agent is stopped: SiteLink calls as a site
    spare_other: str  # a second one (the "other site" at the coordinator)
    home_ws: str      # a workstation of `home`
    other_ws: str     # a workstation of `other`

    async def snapshot(self) -> Snapshot:
        """The stored state less the audit trail, and the audit trail's length."""
        reply = await self.redis.eval(_SNAPSHOT_LUA, len(AUDIT_KEYS), *sorted(AUDIT_KEYS),
                                      AUDIT_STREAM)
        audit_length, flat = int(reply[0]), reply[1:]
        h = hashlib.sha256()
        for site_id, agent in sorted(self.grid.agents.items()):
            booths = agent.booths
            h.update(repr((site_id, sorted(booths.booths.items()),
                           sorted(booths.reservations.items()), booths.highest_fence,
                           sorted(agent.fault_details.items()))).encode())
        return Snapshot(keys=dict(zip(flat[::2], map(bytes, flat[1::2]), strict=True)),
                        agents=h.hexdigest(), audit_length=audit_length)

    async def settle(self, polls: int = 3, interval: float = 0.1) -> None:
        """Wait until the grid is quiet: every queued command acknowledged, and the stored
        state the same over `polls` polls (background work after a draw or a start has run)."""
        seen: list[Snapshot] = []

        async def quiet() -> bool:
            # Commands for a stopped agent wait for it forever: only live agents count.
            pending = [site for site in self.grid.agents
                       if await self.redis.exists(f"cmds:{site}")]
            seen.append(await self.snapshot())
            recent = seen[-polls:]
            return not pending and len(recent) == polls and \
                all(not recent[0].changed(s) and s.audit_length == recent[0].audit_length
                    for s in recent)

        await wait_until(quiet, "the grid to settle", timeout=60, interval=interval)

    async def served(self) -> dict[str, str]:
        """Short service name -> the address serving it: the coordinator, else `home`'s agent
        (asked by server reflection, as any client tool would)."""
        where: dict[str, str] = {}
        for address, role, subject in ((self.grid.agent_target(self.home), "site", self.home),
                                       (self.grid.target, "operator", OPERATOR)):
            stub = reflection_pb2_grpc.ServerReflectionStub(
                self.grid.channel(address, role, subject))
            call = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
            async for response in call:
                for service in response.list_services_response.service:
                    if service.name.startswith(PACKAGE + "."):
                        where[service.name.removeprefix(PACKAGE + ".")] = address
        return where

    async def audit_kinds_since(self, snapshot: Snapshot) -> list[str]:
        """The kinds of the audit entries appended after `snapshot` was taken."""
        entries = await self.redis.xrange(AUDIT_STREAM, f"{snapshot.audit_length + 1}-0", "+")
        return [json.loads(fields[b"entry"])["kind"] for _, fields in entries]


@asynccontextmanager
async def start_security_grid() -> AsyncIterator[SecurityGrid]:
    async with start_grid(seed=13) as grid:
        sites = [s.id for s in grid.province.sites]
        home, other, spare, spare_other = sites[0], sites[1], sites[-1], sites[-2]
        for stopped in (spare, spare_other):
            await grid.agents.pop(stopped).stop()

        links = grid.coordinator.workflow.links

        async def settled() -> bool:  # the coordinator has seen both go: nothing left to do
            return not {spare, spare_other} & set(links.online())

        await wait_until(settled, "the coordinator to see the stopped agents offline",
                         timeout=60)
        client = aioredis.Redis.from_url(grid.redis_url)
        try:
            yield SecurityGrid(grid=grid, redis=client, home=home, other=other, spare=spare,
                               spare_other=spare_other,
                               home_ws=grid.workstations_of(home)[0],
                               other_ws=grid.workstations_of(other)[0])
        finally:
            await client.aclose()
