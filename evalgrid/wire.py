"""Small conversions between wire messages and plain Python values, shared by every process."""

from __future__ import annotations

from datetime import UTC, datetime

from evalgrid_wire.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

# The wire's workstation states by the names the consoles, logs and status tables use.
STATE_NAMES = {
    common_pb2.WORKSTATION_STATE_FREE: "free",
    common_pb2.WORKSTATION_STATE_RESERVED: "reserved",
    common_pb2.WORKSTATION_STATE_SIGNED_IN: "signed_in",
    common_pb2.WORKSTATION_STATE_EVALUATING: "evaluating",
    common_pb2.WORKSTATION_STATE_FAULT: "fault",
    common_pb2.WORKSTATION_STATE_OFFLINE: "offline",
}

# Deadline for every unary call; long-lived streams have none and rely on keepalive.
UNARY_DEADLINE_S = 10.0


def to_timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def to_window(start: datetime, end: datetime) -> common_pb2.TimeWindow:
    return common_pb2.TimeWindow(start=to_timestamp(start), end=to_timestamp(end))


def from_window(window: common_pb2.TimeWindow) -> tuple[datetime, datetime]:
    return from_timestamp(window.start), from_timestamp(window.end)
