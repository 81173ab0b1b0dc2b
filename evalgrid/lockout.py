"""Sign-in lockout: a one-time code resists guessing because wrong tries run out.

A notice's code has six digits; unlimited tries at a booth or a desk would find it. Each place
an attempt is made counts its failures per *scope* (a seat's session, a workstation, a desk):
at most ``max_failures`` within ``window``, and the scope is locked for ``lock_for`` (then opens
by itself), or until an operator unlocks it, which is audited. A success clears the count.

Pure: the state is a small value, the clock is the caller's ``now``. It lives in the shared
package so that whoever checks a code (the coordinator; an agent verifying sign-ins itself while
its link is down) applies the same limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = [
    "LockoutPolicy",
    "ScopeState",
    "desk_scope",
    "locked_message",
    "locked_scope",
    "record_failure",
    "session_scope",
    "unlock_scopes",
    "workstation_scope",
]


@dataclass(frozen=True)
class LockoutPolicy:
    """How many wrong codes a scope tolerates, over what time, and for how long it then locks.

    The desk's scope counts attempts whose ID number matches no seat at the site: staff type
    ID numbers for everyone who arrives, so it tolerates more before it locks.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=30)
    desk_max_failures: int = 20

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.desk_max_failures < 1:
            raise ValueError("max_failures: must be at least 1")
        if self.window <= timedelta(0) or self.lock_for <= timedelta(0):
            raise ValueError("window, lock_for: must be positive durations")

    def limit(self, scope: str) -> int:
        return self.desk_max_failures if scope.startswith("desk:") else self.max_failures


@dataclass(frozen=True)
class ScopeState:
    """Failures still inside the window, and the end of a lock in force (if any)."""

    failures: tuple[datetime, ...] = ()
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> datetime | None:
        """The end of the lock in force at ``now``, else None (a lock that ended is gone)."""
        if self.locked_until is not None and now < self.locked_until:
            return self.locked_until
        return None

    def to_json(self) -> str:
        return json.dumps({"failures": [f.isoformat() for f in self.failures],
                           "locked_until": self.locked_until.isoformat()
                           if self.locked_until else None})

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> ScopeState:
        if not raw:
            return cls()
        data = json.loads(raw)
        until = data.get("locked_until")
        return cls(tuple(_utc(datetime.fromisoformat(f)) for f in data.get("failures", ())),
                   _utc(datetime.fromisoformat(until)) if until else None)


def record_failure(state: ScopeState, scope: str, now: datetime,
                   policy: LockoutPolicy) -> ScopeState:
    """The state after one more wrong attempt at ``now``: locked when the limit is reached.

    Failures older than the window are forgotten; reaching the limit locks the scope until
    ``now + lock_for`` and starts a fresh count (the lock, not the count, holds the door).
    """
    if state.locked(now) is not None:
        return state  # already locked: a refused try does not extend the lock
    recent = (*(f for f in state.failures if now - f < policy.window), now)
    if len(recent) >= policy.limit(scope):
        return ScopeState((), now + policy.lock_for)
    return ScopeState(recent, None)


def locked_scope(states: Mapping[str, ScopeState], scopes: Sequence[str],
                 now: datetime) -> tuple[str, datetime] | None:
    """The first of ``scopes`` locked at ``now`` and the end of its lock, else None: whether
    an attempt may be checked at all (a locked scope refuses even the right code)."""
    for scope in scopes:
        state = states.get(scope)
        until = state.locked(now) if state is not None else None
        if until is not None:
            return scope, until
    return None


def locked_message(scope: str, until: datetime, policy: LockoutPolicy, tz: tzinfo = UTC,
                   *, unlock: str = "an operator can unlock it (`evalgrid signin unlock`, "
                                    "audited)") -> str:
    """What a person is told when ``scope`` is locked: which door, after how many tries, until
    when (in ``tz``, offset said), and how it opens sooner."""
    local = until.astimezone(tz)
    return (f"{_label(scope)} is locked after {policy.limit(scope)} wrong attempts until "
            f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}; {unlock}")


def _label(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return {"session": "sign-in for this seat", "workstation": f"sign-in on workstation {name}",
            "desk": f"check-in at the desk of {name}"}.get(kind, scope)


def session_scope(session_id: str) -> str:
    return f"session:{session_id}"


def workstation_scope(site_id: str, workstation_id: str) -> str:
    return f"workstation:{site_id}/{workstation_id}"


def desk_scope(site_id: str) -> str:
    return f"desk:{site_id}"


def unlock_scopes(site_id: str, workstation_id: str, session_id: str) -> list[str]:
    """What an unlock names: a workstation and/or a seat at a site, else the site's desk."""
    scopes = []
    if workstation_id:
        scopes.append(workstation_scope(site_id, workstation_id))
    if session_id:
        scopes.append(session_scope(session_id))
    return scopes or [desk_scope(site_id)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
