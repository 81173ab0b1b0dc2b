"""The two shares of a day's seed, kept in Redis and the audit (coordinator/domain/
seed_protocol.py states the protocol and who can bias what).

Audit: `seed.supervisor_committed` (day, commitment, who, public source),
`seed.coordinator_committed` (day, commitment; at the supervisor's commitment or at the first
plan of the day, whichever comes first), `seed.supervisor_revealed` (day, secret, public value,
who), `seed.fallback` (day, how long the plan waited). The coordinator's secret stays sealed
until `evalgrid plan reveal DAY`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.domain.seed_protocol import (
    SECRET_BYTES,
    SeedRefused,
    check_reveal,
    commitment,
    final_seed,
)
from coordinator.errors import WorkflowError
from coordinator.store.layout import SEED_SHARE
from coordinator.store.values import text

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

#: How long a day plan waits for the supervisor's reveal before it falls back (audited) to the
#: coordinator's secret alone; counted from the coordinator's commitment.
DEFAULT_WAIT = timedelta(minutes=30)
SEED_PROTOCOL = "evalgrid-seed-v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ShareState:
    day: str
    state: str  # awaiting | committed | revealed | fallback
    coordinator_commitment: str
    supervisor_commitment: str
    public_source: str


def _refused(field: str, reason: str, code: str = "invalid") -> Exception:

    return WorkflowError(field, reason, code=code)


class SeedShares:
    def __init__(self, workflow: Workflow, wait: timedelta = DEFAULT_WAIT) -> None:
        self.workflow = workflow
        self.wait = wait

    async def _fields(self, day: date) -> dict[str, str]:
        raw = await self.workflow.redis.hgetall(SEED_SHARE.format(day.isoformat()))
        return {text(k): text(v) for k, v in raw.items()}

    def _state(self, day: date, f: dict[str, str]) -> ShareState:
        return ShareState(day.isoformat(), f.get("state", "awaiting"),
                          f.get("coordinator_commitment", ""),
                          f.get("supervisor_commitment", ""), f.get("public_source", ""))

    async def _coordinator_commits(self, day: date) -> dict[str, str]:
        f = await self._fields(day)
        if "coordinator_commitment" in f:
            return f
        secret = secrets.token_bytes(SECRET_BYTES)  # never from a request
        key = SEED_SHARE.format(day.isoformat())
        fresh = {"coordinator_commitment": commitment(secret),
                 "coordinator_sealed": seal_json(self.workflow.master_key, key, "seed-share",
                                                 {"secret": secret.hex()}).to_json(),
                 "since": self.workflow.now().isoformat(),
                 "state": f.get("state", "awaiting")}
        if not await self.workflow.redis.hsetnx(key, "coordinator_commitment",
                                                commitment(secret)):
            return await self._fields(day)  # another call committed first
        await self.workflow.redis.hset(key, mapping=fresh)  # type: ignore[arg-type]
        await self.workflow._record("seed.coordinator_committed", day.isoformat(), {
            "day": day.isoformat(), "commitment": commitment(secret),
            "protocol": SEED_PROTOCOL})
        return await self._fields(day)

    async def commit(self, day: date, supervisor_commitment: str, public_source: str,
                     by: str) -> ShareState:
        if not _HEX64.fullmatch(supervisor_commitment):
            raise _refused("commitment", "SHA-256 of the secret: 64 lowercase "
                                            "hex digits")
        if len(public_source) > 200:
            raise _refused("public_source", "at most 200 characters")
        f = await self._fields(day)
        if f.get("supervisor_commitment"):
            if f["supervisor_commitment"] == supervisor_commitment:
                return self._state(day, f)  # a resend
            raise _refused("commitment", f"{day} already has a supervisor "
                                            "commitment", code="precondition")
        if f.get("state") == "fallback" or f.get("used"):
            raise _refused("day", f"the seed of {day} is fixed already",
                                            code="precondition")
        key = SEED_SHARE.format(day.isoformat())
        await self.workflow.redis.hset(key, mapping={
            "supervisor_commitment": supervisor_commitment, "public_source": public_source,
            "supervisor_by": by, "state": "committed"})
        await self.workflow._record("seed.supervisor_committed", day.isoformat(), {
            "day": day.isoformat(), "commitment": supervisor_commitment,
            "public_source": public_source, "by": by})
        return self._state(day, await self._coordinator_commits(day))

    async def reveal(self, day: date, secret_hex: str, public_value: str, by: str
                     ) -> ShareState:
        f = await self._fields(day)
        state = f.get("state", "awaiting")
        if state == "revealed":
            if f.get("supervisor_secret") == secret_hex:
                return self._state(day, f)  # a resend
            raise _refused("secret", f"{day}'s share is revealed already",
                                            code="precondition")
        if state != "committed" or "coordinator_commitment" not in f:
            raise _refused(
                "day", f"no supervisor commitment awaits a reveal for {day} (state {state})",
                code="precondition")
        try:
            secret = bytes.fromhex(secret_hex)
            check_reveal("supervisor", secret, f["supervisor_commitment"])
        except (ValueError, SeedRefused) as exc:
            reason = str(exc) if isinstance(exc, SeedRefused) else "not hex"
            raise _refused("secret", reason) from None
        if f.get("public_source") and not public_value.strip():
            raise _refused("public_value", "named in advance as "
                                            f"{f['public_source']!r}: enter its value")
        if len(public_value) > 200:
            raise _refused("public_value", "at most 200 characters")
        await self.workflow.redis.hset(SEED_SHARE.format(day.isoformat()), mapping={
            "supervisor_secret": secret.hex(), "public_value": public_value,
            "state": "revealed"})
        await self.workflow._record("seed.supervisor_revealed", day.isoformat(), {
            "day": day.isoformat(), "secret": secret.hex(), "public_value": public_value,
            "by": by})
        return self._state(day, await self._fields(day))

    async def fixed_seed(self, day: date) -> bytes | None:
        """The day's seed once a plan has fixed it (both shares, or the fallback), else None:
        later draws of the day (supplementary draws) derive their seeds from it."""
        f = await self._fields(day)
        if not f.get("used") or f.get("state") not in ("revealed", "fallback"):
            return None
        key = SEED_SHARE.format(day.isoformat())
        coordinator = bytes.fromhex(str(unseal_json(
            self.workflow.master_key, SealedBox.from_json(f["coordinator_sealed"]),
            project_id=key, purpose="seed-share")["secret"]))
        if f["state"] == "fallback":
            return final_seed(coordinator, None)
        return final_seed(coordinator, bytes.fromhex(f["supervisor_secret"]),
                          f.get("public_value", ""))

    async def plan_seed(self, day: date) -> tuple[bytes, dict[str, Any]]:
        """The day plan's seed and what `plan.committed` records of its making; refused
        (WorkflowError, precondition) while the supervisor's share is awaited."""
        f = await self._coordinator_commits(day)
        key = SEED_SHARE.format(day.isoformat())
        coordinator = bytes.fromhex(str(unseal_json(
            self.workflow.master_key, SealedBox.from_json(f["coordinator_sealed"]),
            project_id=key, purpose="seed-share")["secret"]))
        detail: dict[str, Any] = {"seed_protocol": SEED_PROTOCOL,
                                  "coordinator_commitment": f["coordinator_commitment"],
                                  "supervisor_commitment": f.get("supervisor_commitment", "")}
        if f.get("state") == "revealed":
            supervisor = bytes.fromhex(f["supervisor_secret"])
            detail |= {"supervisor_secret": f["supervisor_secret"],
                       "public_value": f.get("public_value", "")}
            seed = final_seed(coordinator, supervisor, f.get("public_value", ""))
        else:
            since = datetime.fromisoformat(f["since"])
            waited = self.workflow.now() - since
            if f.get("state") != "fallback":
                if waited < self.wait:
                    until = since + self.wait
                    raise _refused(
                        "day", f"waiting for the supervisor's seed share for {day} (state "
                        f"{f.get('state', 'awaiting')}); without it the plan falls back to the "
                        f"coordinator's secret alone at {until.isoformat(timespec='minutes')}",
                        code="precondition")
                await self.workflow.redis.hset(key, "state", "fallback")
                await self.workflow._record("seed.fallback", day.isoformat(), {
                    "day": day.isoformat(), "waited_s": int(waited.total_seconds()),
                    "supervisor_commitment": f.get("supervisor_commitment", "")})
            detail["fallback"] = True
            seed = final_seed(coordinator, None)
        await self.workflow.redis.hset(key, "used", "1")
        return seed, detail
