"""Notices to drawn experts: venue and time only (SMS or a voice call in real deployments).

`Notifier` is the interface; `FileOutbox` (the default) appends each notice to a JSON Lines
outbox (`DATA_DIR/outbox/notices.jsonl`) that a gateway (or the demo's simulated experts)
reads. `WebhookNotifier` is a real transport: it POSTs each notice as JSON to an SMS gateway's
HTTP endpoint (`evalgrid coordinator --notifier webhook:URL`), from a background thread so a
slow gateway never holds up a draw, with a few retries; every notice is kept in the outbox
too, and a notice that could not be delivered is logged and counted
(`evalgrid notice resend` sends it again). A notice never names the project, the tenderer,
the bidders or the other members. A member redrawn by the grid or an operator (no-show, leave,
fault) is sent a withdrawal (`kind` "withdrawal") of the notice, in the same outbox.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from evalgrid.clock import PROVINCE_TZ
from evalgrid.i18n import _

EVALUATION = "evaluation"  # a drawn member's notice: come, with this code
WITHDRAWAL = "withdrawal"  # that notice no longer holds: the member was redrawn


@dataclass(frozen=True)
class Notice:
    notice_id: str
    expert_id: str
    venue_id: str
    venue: str  # name and address as the expert reads it
    start: datetime
    end: datetime
    code: str  # one-time sign-in code ("" in a withdrawal)
    kind: str = EVALUATION
    withdraws: str = ""  # a withdrawal's: the notice it withdraws

    @property
    def text(self) -> str:
        """The notice as the expert reads it (SMS), in the coordinator's language, local time."""
        start, end = self.start.astimezone(PROVINCE_TZ), self.end.astimezone(PROVINCE_TZ)
        when = {"venue": self.venue, "day": f"{start:%m-%d}", "start": f"{start:%H:%M}",
                "end": f"{end:%H:%M}"}
        if self.kind == WITHDRAWAL:
            return _("Evaluation notice withdrawn: you are no longer expected at {venue} on "
                     "{day}, {start} to {end} (+08); the sign-in code of that notice no "
                     "longer holds. No reply is needed.").format(**when)
        return _("Evaluation notice: please come to {venue} on {day}, {start} to {end} (+08), "
                 "and sign in with code {code}. Reply to accept or decline; do not disclose "
                 "this notice.").format(**when, code=self.code)

    @classmethod
    def withdrawal(cls, notice: Notice) -> Notice:
        """The withdrawal of `notice`: same member, venue and time, no code. Its id is derived
        from the notice's, so a gateway sees a second copy as the same message."""
        return cls(notice_id=f"wdr-{notice.notice_id.removeprefix('ntc-')}",
                   expert_id=notice.expert_id, venue_id=notice.venue_id, venue=notice.venue,
                   start=notice.start, end=notice.end, code="", kind=WITHDRAWAL,
                   withdraws=notice.notice_id)

    def to_dict(self) -> dict[str, str]:
        found = {"notice_id": self.notice_id, "expert_id": self.expert_id,
                 "venue_id": self.venue_id, "venue": self.venue,
                 "start": self.start.isoformat(), "end": self.end.isoformat(),
                 "code": self.code, "text": self.text, "kind": self.kind}
        if self.withdraws:
            found["withdraws"] = self.withdraws
        return found



class Notifier(Protocol):
    def send(self, notice: Notice) -> None: ...


class FileOutbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, notice: Notice) -> None:
        line = json.dumps(notice.to_dict(), sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


log = logging.getLogger("evalgrid.notifier")

#: Webhook delivery: tries per notice, the pause between them (doubling), the HTTP timeout.
WEBHOOK_TRIES = 4
WEBHOOK_BACKOFF_S = 0.5
WEBHOOK_TIMEOUT_S = 5.0


class NotifierConfigError(ValueError):
    """A --notifier value that names no transport we have (the message says which)."""


class WebhookNotifier:
    """POST each notice as a JSON object to `url` (an SMS gateway's HTTP API).

    The body is the notice's fields (`notice_id`, `expert_id`, `venue_id`, `venue`, `start`,
    `end` in the province's local time, `code`, `kind`, `text`; a withdrawal's `withdraws`);
    a 2xx answer is delivery. `send` only queues:
    a worker thread delivers in order, retrying on errors and 5xx; a notice still refused after
    `WEBHOOK_TRIES` is logged (notice id only) and counted in `failed`.
    """

    def __init__(self, url: str, outbox: FileOutbox | None = None, *,
                 tries: int = WEBHOOK_TRIES, backoff_s: float = WEBHOOK_BACKOFF_S,
                 timeout_s: float = WEBHOOK_TIMEOUT_S,
                 on_result: Callable[[bool], None] | None = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise NotifierConfigError(f"webhook: not an http(s) URL: {url!r}")
        self.url = url
        self.outbox = outbox
        self.tries, self.backoff_s, self.timeout_s = tries, backoff_s, timeout_s
        self.on_result = on_result
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="notifier-webhook", daemon=True)
        self._worker.start()

    def send(self, notice: Notice) -> None:
        if self.outbox is not None:
            self.outbox.send(notice)
        self._queue.put(notice)

    @property
    def queued(self) -> int:
        """Notices not yet delivered or given up on."""
        return self._queue.qsize()

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the worker."""
        self._queue.put(None)
        self._worker.join(timeout_s)

    def _run(self) -> None:
        while (notice := self._queue.get()) is not None:
            ok = self._deliver(notice)
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
                log.error("notice %s not delivered to the webhook after %d tries",
                          notice.notice_id, self.tries)
            if self.on_result is not None:
                self.on_result(ok)

    def _deliver(self, notice: Notice) -> bool:
        body = json.dumps(notice.to_dict(), sort_keys=True).encode()
        pause = self.backoff_s
        for attempt in range(1, self.tries + 1):
            request = urllib.request.Request(
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json",
                         "Idempotency-Key": notice.notice_id})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    if 200 <= answer.status < 300:
                        return True
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    log.error("webhook refused notice %s: HTTP %d", notice.notice_id, exc.code)
                    return False  # the gateway says the request itself is wrong
                log.warning("webhook: HTTP %d (try %d)", exc.code, attempt)
            except (urllib.error.URLError, OSError) as exc:
                log.warning("webhook unreachable (try %d): %s", attempt, exc)
            if attempt < self.tries:
                time.sleep(pause)
                pause *= 2
        return False


def make_notifier(spec: str, outbox_path: Path) -> FileOutbox | WebhookNotifier:
    """`outbox` (the default) or `webhook:URL`; the outbox is kept in both cases."""
    outbox = FileOutbox(outbox_path)
    if spec in ("", "outbox"):
        return outbox
    if spec.startswith("webhook:"):
        return WebhookNotifier(spec.removeprefix("webhook:"), outbox)
    raise NotifierConfigError(f"--notifier: outbox or webhook:URL, not {spec!r}")


class MemoryOutbox:
    """For unit tests of the workflow."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)


def read_outbox(path: Path, kind: str = EVALUATION) -> list[dict[str, str]]:
    """The outbox's notices of one kind (evaluation notices unless asked): a reader that
    answers notices never meets a withdrawal it cannot answer."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [n for n in lines if n.get("kind", EVALUATION) == kind]
