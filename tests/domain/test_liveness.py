"""Site liveness: leases lapse into `disconnected`, long silence into `lost`, never too soon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.liveness import (
    Link,
    Liveness,
    LivenessError,
    LivenessPolicy,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
POLICY = LivenessPolicy(heartbeat_interval=2 * S, lease_intervals=3, lost_after=120 * S,
                        failover=120 * S, keepalive_bound=30 * S)


def started(*sites: str, at: datetime = T0) -> Liveness:
    return Liveness(POLICY, started_at=at, sites=sites)


def test_first_contact_connects_and_is_not_a_reconnection() -> None:
    live = started("A")
    assert live.link("A") is Link.DISCONNECTED
    transition = live.stream_opened("A", T0 + S)
    assert transition is not None and transition.before is None
    assert transition.audit_kind == "site.connected"
    assert live.link("A") is Link.CONNECTED


def test_the_lease_lapses_after_three_intervals_not_at_them() -> None:
    live = started("A")
    live.stream_opened("A", T0)
    assert live.tick(T0 + 6 * S) == []  # exactly the lease: still held
    (lapsed,) = live.tick(T0 + 6 * S + timedelta(milliseconds=1))
    assert (lapsed.before, lapsed.after, lapsed.audit_kind) == (
        Link.CONNECTED, Link.DISCONNECTED, "site.disconnected")
    assert "no heartbeat" in lapsed.reason


def test_heartbeats_keep_the_lease() -> None:
    live = started("A")
    live.stream_opened("A", T0)
    for beat in range(1, 100):
        assert live.heard("A", T0 + beat * 2 * S) is None
        assert live.tick(T0 + beat * 2 * S + S) == []
    assert live.link("A") is Link.CONNECTED


def test_lost_only_after_the_grace_longer_than_keepalive() -> None:
    live = started("A", at=T0 - timedelta(hours=1))  # long after the failover period
    live.stream_opened("A", T0)
    live.tick(T0 + 10 * S)
    assert live.link("A") is Link.DISCONNECTED
    assert live.tick(T0 + 119 * S) == []
    (lost,) = live.tick(T0 + 120 * S)
    assert (lost.before, lost.after, lost.audit_kind) == (Link.DISCONNECTED, Link.LOST,
                                                          "site.lost")
    assert lost.silent_for == 120 * S


def test_a_closed_stream_disconnects_at_once_but_a_newer_stream_keeps_the_site() -> None:
    live = started("A")
    live.stream_opened("A", T0)
    live.stream_opened("A", T0 + S)  # the agent reconnected before the old stream ended
    assert live.stream_closed("A", T0 + 2 * S) is None
    assert live.link("A") is Link.CONNECTED
    closed = live.stream_closed("A", T0 + 3 * S)
    assert closed is not None and closed.reason == "stream closed"
    assert live.link("A") is Link.DISCONNECTED


def test_reconnection_after_lost_is_audited_as_such() -> None:
    live = started("A", at=T0 - timedelta(hours=1))
    live.stream_opened("A", T0)
    live.stream_closed("A", T0)
    live.tick(T0 + 200 * S)
    assert live.link("A") is Link.LOST
    back = live.stream_opened("A", T0 + 300 * S)
    assert back is not None and back.before is Link.LOST
    assert back.audit_kind == "site.reconnected" and back.detail()["was"] == "lost"


def test_after_a_coordinator_restart_every_site_gets_the_failover_period() -> None:
    live = started("A", "B")  # neither heard since the start
    assert live.tick(T0 + 119 * S) == []
    lost = live.tick(T0 + 120 * S)
    assert [t.site_id for t in lost] == ["A", "B"]
    # a site heard once right after the start, then silent, is lost no earlier either
    live2 = started("A")
    live2.stream_opened("A", T0 + S)
    live2.stream_closed("A", T0 + S)
    assert live2.tick(T0 + 120 * S) == []
    assert [t.after for t in live2.tick(T0 + 121 * S)] == [Link.LOST]


def test_longer_failover_holds_back_the_lost_verdict() -> None:
    policy = LivenessPolicy(heartbeat_interval=2 * S, lost_after=60 * S, failover=600 * S)
    live = Liveness(policy, started_at=T0, sites=["A"])
    live.stream_opened("A", T0)
    live.stream_closed("A", T0)
    assert live.tick(T0 + 599 * S) == []
    assert [t.after for t in live.tick(T0 + 600 * S)] == [Link.LOST]


def test_counts_by_link() -> None:
    live = started("A", "B", "C")
    live.stream_opened("A", T0)
    assert live.sites_in(Link.CONNECTED) == ["A"]
    assert live.sites_in(Link.DISCONNECTED) == ["B", "C"]
    assert live.view("A").last_heard == T0 and live.view("B").last_heard is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"heartbeat_interval": timedelta(0)}, "heartbeat_interval"),
    ({"lease_intervals": 1}, "lease_intervals"),
    ({"lost_after": 30 * S}, "lost_after"),  # not longer than keepalive
    ({"lost_after": 31 * S, "heartbeat_interval": 20 * S}, "lost_after"),  # not past the lease
    ({"failover": -S}, "failover"),
])
def test_unworkable_policies_are_refused_naming_the_field(kwargs: dict[str, object],
                                                          field: str) -> None:
    base: dict[str, object] = {"heartbeat_interval": 2 * S}
    with pytest.raises(LivenessError, match=f"^{field}:"):
        LivenessPolicy(**{**base, **kwargs})  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.sampled_from(["heard", "open", "close", "tick"]),
                          st.integers(min_value=0, max_value=400)), max_size=60))
def test_never_lost_while_heard_within_the_grace(events: list[tuple[str, int]]) -> None:
    """Whatever happens, a site is lost only after `lost_after` of silence, past failover."""
    live = started("A")
    now = T0
    last_heard = T0
    for kind, step in events:
        now += step * S
        if kind == "heard":
            live.heard("A", now)
            last_heard = now
        elif kind == "open":
            live.stream_opened("A", now)
            last_heard = now
        elif kind == "close":
            live.stream_closed("A", now)
        else:
            for t in live.tick(now):
                if t.after is Link.LOST:
                    assert now - last_heard >= POLICY.lost_after
                    assert now >= T0 + POLICY.failover
        if live.link("A") is Link.CONNECTED:
            assert now - last_heard <= POLICY.lease or kind != "tick"


@given(st.lists(st.tuples(st.sampled_from(["heard", "open", "close", "tick"]),
                          st.sampled_from(["A", "B", "C", "D"]),
                          st.integers(min_value=0, max_value=200)), max_size=80))
def test_the_sites_in_each_link_are_those_whose_link_it_is(
        events: list[tuple[str, str, int]]) -> None:
    """`sites_in` is kept as sites move (not scanned); it agrees with every site's own link,
    a site first heard after the start ("D") included."""
    live = started("A", "B", "C")
    now = T0
    for kind, site, step in events:
        now += step * S
        if kind == "heard":
            live.heard(site, now)
        elif kind == "open":
            live.stream_opened(site, now)
        elif kind == "close":
            live.stream_closed(site, now)
        else:
            live.tick(now)
        known = ["A", "B", "C"] + (["D"] if live.view("D").last_heard else [])
        for link in Link:
            assert live.sites_in(link) == [s for s in known if live.link(s) is link]
