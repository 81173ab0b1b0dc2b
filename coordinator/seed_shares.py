"""The two shares of a day's seed, kept in Redis and the audit (coordinator/domain/
seed_protocol.py states the protocol and who can bias what).

Audit: `seed.supervisor_committed` (day, commitment, who, public source),
`seed.coordinator_committed` (day, commitment; at the supervisor's commitment or at the first
plan of the day, whichever comes first), `seed.supervisor_revealed` (day, secret, public value,
who), `seed.fallback` (day, how long the draw waited), `seed.fixed` (day, SHA-256 of the day's
seed and both shares' commitments: at the first draw of the day, single or planned). The
coordinator's secret stays sealed until `evalgrid plan reveal DAY` (`seed.revealed`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coordinator.domain.day_plan import draw_label, seed_hash
from coordinator.domain.seal import SealedBox, seal_json, unseal_json
from coordinator.domain.seed_protocol import (
    SECRET_BYTES,
    SeedRefused,
    check_reveal,
    commitment,
    final_seed,
)
from coordinator.errors import WorkflowError
from coordinator.store.seed_rounds import SeedRounds, share_subject

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
    fallback_at: datetime | None = None  # while waiting: when the fallback comes
    fixed: bool = False  # a draw used the round: its seed can no longer change


def _refused(field: str, reason: str, code: str = "invalid") -> Exception:

    return WorkflowError(field, reason, code=code)


def round_seed(master_key: bytes, day: str, f: dict[str, str]) -> bytes:
    """The seed of a day's round from its stored shares (revealed, or the fallback)."""
    coordinator = bytes.fromhex(str(unseal_json(
        master_key, SealedBox.from_json(f["coordinator_sealed"]), project_id=share_subject(day),
        purpose="seed-share")["secret"]))
    if f["state"] == "fallback":
        return final_seed(coordinator, None)
    return final_seed(coordinator, bytes.fromhex(f["supervisor_secret"]),
                      f.get("public_value", ""))


class SeedShares:
    def __init__(self, workflow: Workflow, wait: timedelta = DEFAULT_WAIT) -> None:
        self.workflow = workflow
        self.wait = wait
        self.rounds = SeedRounds(workflow.redis)
        # Rounds a draw has used: fixed for good (a later commitment or reveal is refused), so
        # their seed is read and unsealed once, not at every single draw (two trips).
        self._fixed: dict[date, tuple[bytes, dict[str, Any]]] = {}

    async def _fields(self, day: date) -> dict[str, str]:
        return await self.rounds.fields(day.isoformat())

    def _state(self, day: date, f: dict[str, str]) -> ShareState:
        state = f.get("state", "awaiting")
        waiting = "since" in f and state in ("awaiting", "committed") and not f.get("used")
        return ShareState(day.isoformat(), state, f.get("coordinator_commitment", ""),
                          f.get("supervisor_commitment", ""), f.get("public_source", ""),
                          datetime.fromisoformat(f["since"]) + self.wait if waiting else None,
                          bool(f.get("used")))

    async def waiting(self, days: Iterable[date]) -> list[ShareState]:
        """The rounds among `days` that wait on the supervisor (one round trip: the console's
        snapshot asks at every change)."""
        ordered = sorted(set(days))
        stored = await self.rounds.fields_of([day.isoformat() for day in ordered])
        found = [self._state(day, f) for day, f in zip(ordered, stored, strict=True)]
        return [s for s in found if s.fallback_at is not None]

    async def _coordinator_commits(self, day: date) -> dict[str, str]:
        f = await self._fields(day)
        if "coordinator_commitment" in f:
            return f
        secret = secrets.token_bytes(SECRET_BYTES)  # never from a request
        fresh = {"coordinator_commitment": commitment(secret),
                 "coordinator_sealed": seal_json(self.workflow.master_key,
                                                 share_subject(day.isoformat()), "seed-share",
                                                 {"secret": secret.hex()}).to_json(),
                 "since": self.workflow.now().isoformat(),
                 "state": f.get("state", "awaiting")}
        if not await self.rounds.claim(day.isoformat(), "coordinator_commitment", fresh):
            return await self._fields(day)  # another call committed first
        await self.workflow.record("seed.coordinator_committed", day.isoformat(), {
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
                # A resend; the coordinator's commitment made if a crash (or an outage) cut
                # the first call short after the supervisor's was stored.
                return self._state(day, await self._coordinator_commits(day))
            raise _refused("commitment", f"{day} already has a supervisor "
                                            "commitment", code="precondition")
        if f.get("state") == "fallback" or f.get("used"):
            raise _refused("day", f"the seed of {day} is fixed already",
                                            code="precondition")
        await self.rounds.update(day.isoformat(), {
            "supervisor_commitment": supervisor_commitment, "public_source": public_source,
            "supervisor_by": by, "state": "committed"})
        await self.workflow.record("seed.supervisor_committed", day.isoformat(), {
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
        await self.rounds.update(day.isoformat(), {
            "supervisor_secret": secret.hex(), "public_value": public_value,
            "state": "revealed"})
        await self.workflow.record("seed.supervisor_revealed", day.isoformat(), {
            "day": day.isoformat(), "secret": secret.hex(), "public_value": public_value,
            "by": by})
        return self._state(day, await self._fields(day))

    def _combine(self, day: date, f: dict[str, str]) -> bytes:
        return round_seed(self.workflow.master_key, day.isoformat(), f)

    async def day_seed(self, day: date, *, urgent: str = "") -> tuple[bytes, dict[str, Any]]:
        """The seed of `day`'s round, fixing the round at its first use (audited `seed.fixed`,
        with what the verifier needs to recombine the shares), and what a plan records of it.

        Every draw of the day derives its seed from this one (`domain.day_plan.draw_label`).
        Refused (WorkflowError, precondition) while the supervisor's share is awaited and the
        wait has not run out; then the audited fallback. `urgent` (a reason) takes the
        fallback at once: a replacement the grid draws on its own cannot wait."""
        fixed = self._fixed.get(day)
        if fixed is not None:
            return fixed[0], dict(fixed[1])
        f = await self._coordinator_commits(day)
        detail: dict[str, Any] = {"seed_protocol": SEED_PROTOCOL,
                                  "coordinator_commitment": f["coordinator_commitment"],
                                  "supervisor_commitment": f.get("supervisor_commitment", "")}
        if f.get("state") == "revealed":
            detail |= {"supervisor_secret": f["supervisor_secret"],
                       "public_value": f.get("public_value", "")}
        else:
            since = datetime.fromisoformat(f["since"])
            waited = self.workflow.now() - since
            if f.get("state") != "fallback":
                if waited < self.wait and not urgent:
                    until = self.workflow.local_text(since + self.wait)
                    raise _refused(
                        "day", f"waiting for the supervisor's seed share for {day} (state "
                        f"{f.get('state', 'awaiting')}); without it the draw falls back to the "
                        f"coordinator's secret alone at {until}",
                        code="precondition")
                await self.rounds.update(day.isoformat(), {"state": "fallback"})
                await self.workflow.record("seed.fallback", day.isoformat(), {
                    "day": day.isoformat(), "waited_s": int(waited.total_seconds()),
                    "supervisor_commitment": f.get("supervisor_commitment", ""),
                    **({"reason": urgent} if urgent else {})})
                f["state"] = "fallback"
            detail["fallback"] = True
        seed = self._combine(day, f)
        if await self.rounds.claim(day.isoformat(), "used", {"used": "1"}):
            await self.workflow.record("seed.fixed", day.isoformat(), {
                "day": day.isoformat(), "seed_hash": seed_hash(seed),
                **detail})
        self._fixed[day] = seed, dict(detail)
        return seed, detail

    async def first_label(self, day: date, project_id: str) -> str:
        """The label of a project's next first draw under the day's round (planned or single):
        its id, or ``id/rK`` for the K-th first draw again (a new committee after an incident),
        so no two draws share a seed. A draw that uses it takes it (`take_first_labels`) under
        the draw lock, at the latest with its commitment: a draw that is never committed
        leaves it to the next, which draws with the same seed."""
        return draw_label(project_id, await self.rounds.first_draws(day.isoformat(),
                                                                    project_id))

    def stage_first_label(self, pipe: Any, day: date, project_id: str) -> None:
        """`first_label`'s read on the caller's pipeline (a single draw's first trip); its
        reply goes to `read_first_label`."""
        self.rounds.stage_first_draws(pipe, day.isoformat(), project_id)

    @staticmethod
    def read_first_label(project_id: str, reply: Any) -> str:
        return draw_label(project_id, SeedRounds.read_first_draws(reply))

    async def take_first_labels(self, day: date, project_ids: list[str]) -> None:
        """These projects' first labels are used (a day plan draws each project under its id;
        a single draw with its commitment): never again (one round trip)."""
        await self.rounds.take_first(day.isoformat(), project_ids)

    def stage_take_first_labels(self, pipe: Any, day: date, project_ids: list[str]) -> None:
        """`take_first_labels` on the caller's pipeline (a single draw's commitment, made in
        its placement's step)."""
        self.rounds.stage_take_first(pipe, day.isoformat(), project_ids)

    async def redraw_label(self, day: date, project_id: str, n: int) -> str:
        """The label of the n-th redraw of the project's current committee: ``base/n`` with
        the base its first draw took (`first_label`)."""
        k = await self.rounds.first_draws(day.isoformat(), project_id) or 1
        return draw_label(project_id, max(k - 1, 0), n)

    async def plan_seed(self, day: date) -> tuple[bytes, dict[str, Any]]:
        """The day plan's seed (the day's round) and what `plan.committed` records of it."""
        return await self.day_seed(day)
