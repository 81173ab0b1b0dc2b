"""Which calls a client retries on UNAVAILABLE, and how several coordinator addresses become
one gRPC target."""

from __future__ import annotations

import pytest
from evalgrid_wire.v1 import operator_pb2

from evalgrid.coordinator_channel import AddressError, _idempotent, channel_target


def test_only_harmless_repeats_are_retried() -> None:
    assert _idempotent("/evalgrid.v1.Operator/Status", operator_pb2.StatusRequest())
    assert _idempotent("/evalgrid.v1.Operator/Draw",
                       operator_pb2.DrawRequest(request_id="r1", project_id="P"))
    assert not _idempotent("/evalgrid.v1.Operator/Draw",
                           operator_pb2.DrawRequest(project_id="P"))
    assert not _idempotent("/evalgrid.v1.Operator/StartEvaluation",
                           operator_pb2.ProjectRequest(project_id="P"))


def test_several_addresses_one_target() -> None:
    assert channel_target("127.0.0.1:5") == ("127.0.0.1:5", [])
    target, options = channel_target("127.0.0.1:5, localhost:6")
    assert target == "ipv4:127.0.0.1:5,127.0.0.1:6"
    assert ("grpc.default_authority", "127.0.0.1") in options
    with pytest.raises(AddressError, match="'x' is not HOST:PORT"):
        channel_target("127.0.0.1:5,x")
    with pytest.raises(AddressError, match="IPv4"):
        channel_target("127.0.0.1:5,[::1]:6")
