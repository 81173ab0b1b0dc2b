"""Liveness of the site agents as a pure state machine: leases, not guesses.

The coordinator sets the heartbeat interval; an agent that is heard (any message on its
stream: hello, status, heartbeat, ack) holds a lease of a few intervals. A site is
`connected` while its lease holds, `disconnected` once it lapses (or its stream closes), and
`lost` after a grace period that is longer than gRPC keepalive needs to notice a dead peer,
so a site is never declared lost while the transport may still be about to report it alive.
After a coordinator (re)start every site gets a failover period before it can be declared
lost: the coordinator's own absence is not the sites' fault.

No I/O and no clock of its own: every event carries `now` (the shell's injected clock) and
returns the transitions to audit. Only `lost` has consequences elsewhere (fault rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Link(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    LOST = "lost"


AUDIT_KIND = {Link.CONNECTED: "site.reconnected", Link.DISCONNECTED: "site.disconnected",
              Link.LOST: "site.lost"}


class LivenessError(ValueError):
    """A policy that cannot work; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    heartbeat_interval: timedelta
    lease_intervals: int = 3
    lost_after: timedelta = timedelta(minutes=2)  # silence before a site is declared lost
    failover: timedelta = timedelta(minutes=2)  # after a coordinator start, nobody is lost
    keepalive_bound: timedelta = timedelta(seconds=30)  # keepalive time + timeout of gRPC

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= timedelta(0):
            raise LivenessError("heartbeat_interval: must be positive")
        if self.lease_intervals < 2:
            raise LivenessError("lease_intervals: at least 2 (one late heartbeat is not a "
                                "failure)")
        if self.lost_after <= self.keepalive_bound:
            raise LivenessError(f"lost_after: must exceed the gRPC keepalive bound "
                                f"({self.keepalive_bound.total_seconds():g} s), or a live "
                                "site could be declared lost before its transport notices")
        if self.lost_after <= self.lease:
            raise LivenessError("lost_after: must exceed the lease "
                                f"({self.lease.total_seconds():g} s)")
        if self.failover < timedelta(0):
            raise LivenessError("failover: must not be negative")

    @property
    def lease(self) -> timedelta:
        return self.heartbeat_interval * self.lease_intervals


@dataclass(frozen=True, slots=True)
class Transition:
    site_id: str
    before: Link | None  # None: first contact since this coordinator started
    after: Link
    at: datetime
    silent_for: timedelta
    reason: str

    @property
    def audit_kind(self) -> str:
        return "site.connected" if self.before is None else AUDIT_KIND[self.after]

    def detail(self) -> dict[str, object]:
        return {"was": self.before.value if self.before else "", "reason": self.reason,
                "silent_s": round(self.silent_for.total_seconds(), 3)}


@dataclass(frozen=True, slots=True)
class SiteLiveness:
    link: Link
    since: datetime
    last_heard: datetime | None  # None: not heard since this coordinator started


@dataclass(slots=True)
class _Site:
    link: Link
    since: datetime
    last_heard: datetime | None
    streams: int = 0


class Liveness:
    """Per-site link states; feed it what the shell hears and the clock's ticks."""

    def __init__(self, policy: LivenessPolicy, started_at: datetime,
                 sites: Iterable[str] = ()) -> None:
        self.policy = policy
        self.started_at = started_at
        self._sites: dict[str, _Site] = {}
        # The sites in each link state, kept as they move: every draw asks for the lost ones,
        # and a national grid has 3,000 sites to scan otherwise.
        self._by_link: dict[Link, set[str]] = {link: set() for link in Link}
        self.expect(sites)

    def expect(self, sites: Iterable[str]) -> None:
        """Sites the registry knows: disconnected until heard, lost only after failover."""
        for site_id in sites:
            self._add(site_id, self.started_at)

    def _add(self, site_id: str, since: datetime) -> _Site:
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _Site(Link.DISCONNECTED, since, None)
            self._by_link[Link.DISCONNECTED].add(site_id)
        return site

    def _move(self, site_id: str, site: _Site, link: Link, now: datetime) -> None:
        self._by_link[site.link].discard(site_id)
        site.link, site.since = link, now
        self._by_link[link].add(site_id)

    @property
    def failover_ends(self) -> datetime:
        return self.started_at + self.policy.failover

    # --- events ----------------------------------------------------------------------------

    def heard(self, site_id: str, now: datetime) -> Transition | None:
        """Anything from the site renews its lease; a site that was down is back."""
        site = self._add(site_id, now)
        silent = self._silence(site, now)
        first = site.last_heard is None
        site.last_heard = now if first or site.last_heard is None else max(site.last_heard, now)
        if site.link is Link.CONNECTED:
            return None
        before = None if first and site.link is Link.DISCONNECTED else site.link
        self._move(site_id, site, Link.CONNECTED, now)
        return Transition(site_id, before, Link.CONNECTED, now, silent,
                          "first contact" if before is None else "heard again")

    def stream_opened(self, site_id: str, now: datetime) -> Transition | None:
        transition = self.heard(site_id, now)
        self._sites[site_id].streams += 1
        return transition

    def stream_closed(self, site_id: str, now: datetime) -> Transition | None:
        """The last stream of a site ended: disconnected now, without waiting for the lease."""
        site = self._sites.get(site_id)
        if site is None:
            return None
        site.streams = max(0, site.streams - 1)
        if site.streams or site.link is not Link.CONNECTED:
            return None
        self._move(site_id, site, Link.DISCONNECTED, now)
        return Transition(site_id, Link.CONNECTED, Link.DISCONNECTED, now,
                          self._silence(site, now), "stream closed")

    def tick(self, now: datetime) -> list[Transition]:
        """Lapse the leases that ran out and declare lost the sites silent for too long."""
        out = []
        policy = self.policy
        for site_id in sorted(self._sites):
            site = self._sites[site_id]
            silent = self._silence(site, now)
            if site.link is Link.CONNECTED and silent > policy.lease:
                self._move(site_id, site, Link.DISCONNECTED, now)
                out.append(Transition(site_id, Link.CONNECTED, Link.DISCONNECTED, now, silent,
                                      f"no heartbeat for {silent.total_seconds():g} s "
                                      f"(lease {policy.lease.total_seconds():g} s)"))
            if site.link is Link.DISCONNECTED and silent >= policy.lost_after \
                    and now >= self.failover_ends:
                self._move(site_id, site, Link.LOST, now)
                out.append(Transition(site_id, Link.DISCONNECTED, Link.LOST, now, silent,
                                      f"silent for {silent.total_seconds():g} s "
                                      f"(lost after {policy.lost_after.total_seconds():g} s)"))
        return out

    # --- queries ---------------------------------------------------------------------------

    def link(self, site_id: str) -> Link:
        site = self._sites.get(site_id)
        return site.link if site is not None else Link.DISCONNECTED

    def view(self, site_id: str) -> SiteLiveness:
        site = self._sites.get(site_id)
        if site is None:
            return SiteLiveness(Link.DISCONNECTED, self.started_at, None)
        return SiteLiveness(site.link, site.since, site.last_heard)

    def sites_in(self, link: Link) -> list[str]:
        return sorted(self._by_link[link])

    def _silence(self, site: _Site, now: datetime) -> timedelta:
        """Time since last heard; a site not heard since the start counts from the start."""
        heard = site.last_heard if site.last_heard is not None else self.started_at
        return max(now - heard, timedelta(0))
