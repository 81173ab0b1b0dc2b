"""The notifier's real transport: notices POSTed to an HTTP gateway on loopback.

A real `http.server` on port 0 plays the SMS gateway: it answers 503 to the first try (the
notice is retried), records every body, and can refuse a notice outright (400: not retried).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coordinator.notifier import (
    WITHDRAWAL,
    FileOutbox,
    Notice,
    NotifierConfigError,
    WebhookNotifier,
    make_notifier,
    read_outbox,
)

LOCAL = timezone(timedelta(hours=8))


class Gateway(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[dict[str, str]] = []
        self.keys: list[str] = []
        self.answers: list[int] = []  # status codes to give next, then 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/sms"


class Handler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.answers.pop(0) if self.server.answers else 200
        if status == 200:
            self.server.bodies.append(json.loads(body))
            self.server.keys.append(self.headers["Idempotency-Key"])
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def notice(n: int) -> Notice:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC).astimezone(LOCAL)
    return Notice(notice_id=f"ntc-{n}", expert_id=f"E{n}", venue_id="S0001-V1",
                  venue="Evaluation Area A, 1 Main St", start=start,
                  end=start + timedelta(hours=3), code=f"{n:06d}")


def test_notices_reach_the_gateway_in_order_and_a_503_is_retried(
        gateway: Gateway, tmp_path: Path) -> None:
    gateway.answers = [503]
    outbox = FileOutbox(tmp_path / "notices.jsonl")
    webhook = WebhookNotifier(gateway.url, outbox, backoff_s=0.01)
    for n in range(3):
        webhook.send(notice(n))
    webhook.close()
    assert [b["notice_id"] for b in gateway.bodies] == ["ntc-0", "ntc-1", "ntc-2"]
    assert gateway.keys == ["ntc-0", "ntc-1", "ntc-2"]  # the gateway can drop a repeat
    assert gateway.bodies[0]["start"] == "2026-03-02T09:00:00+08:00"  # local time
    assert gateway.bodies[0]["code"] == "000000"
    assert (webhook.delivered, webhook.failed) == (3, 0)
    # The outbox keeps every notice too (what was sent, whatever the gateway did).
    assert [n["notice_id"] for n in read_outbox(outbox.path)] == ["ntc-0", "ntc-1", "ntc-2"]


def test_a_withdrawal_goes_with_its_own_key_and_readers_of_notices_skip_it(
        gateway: Gateway, tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "notices.jsonl")
    webhook = WebhookNotifier(gateway.url, outbox, backoff_s=0.01)
    webhook.send(notice(0))
    webhook.send(Notice.withdrawal(notice(0)))
    webhook.send(notice(1))
    webhook.close()
    assert gateway.keys == ["ntc-0", "wdr-0", "ntc-1"]  # not dropped as a repeat of ntc-0
    assert gateway.bodies[1]["kind"] == "withdrawal" and gateway.bodies[1]["withdraws"] == "ntc-0"
    assert [n["notice_id"] for n in read_outbox(outbox.path)] == ["ntc-0", "ntc-1"]
    assert [n["notice_id"] for n in read_outbox(outbox.path, kind=WITHDRAWAL)] == ["wdr-0"]


def test_a_refused_notice_is_counted_not_retried_and_the_next_still_goes(
        gateway: Gateway) -> None:
    gateway.answers = [400]
    results: list[bool] = []
    webhook = WebhookNotifier(gateway.url, backoff_s=0.01, on_result=results.append)
    webhook.send(notice(1))
    webhook.send(notice(2))
    webhook.close()
    assert [b["notice_id"] for b in gateway.bodies] == ["ntc-2"]
    assert results == [False, True]
    assert (webhook.delivered, webhook.failed) == (1, 1)


def test_an_unreachable_gateway_fails_after_the_tries_without_blocking_send() -> None:
    closed = Gateway()
    url = closed.url
    closed.server_close()  # nothing listens there any more
    webhook = WebhookNotifier(url, tries=2, backoff_s=0.01, timeout_s=1.0)
    webhook.send(notice(1))
    webhook.close()
    assert (webhook.delivered, webhook.failed) == (0, 1)


@pytest.mark.parametrize("spec", ["sms", "webhook:ftp://x/", "webhook:", "webhook:http://"])
def test_a_notifier_that_is_not_one_we_have_is_named(spec: str, tmp_path: Path) -> None:
    with pytest.raises(NotifierConfigError):
        make_notifier(spec, tmp_path / "notices.jsonl")


def test_the_default_is_the_outbox(tmp_path: Path) -> None:
    assert isinstance(make_notifier("outbox", tmp_path / "n.jsonl"), FileOutbox)
