"""The durable audit trail: signed chain entries in a Redis Stream, appended compare-and-set.

Layout (``key`` defaults to ``audit``)::

    audit        stream; entry ID "<seq>-0", one field "entry" = the entry's canonical JSON
    audit:head   hash {seq, hash}: the last appended entry

One Lua script appends: it XADDs and moves the head only if the head is still the entry's
predecessor, so two coordinators (or a stale one after a failover) cannot fork the chain; the
loser reloads the head and builds its entry again. Stream IDs are the seq, so the stream itself
refuses an ID that does not grow, and an entry XADDed around the script (with an automatic ID,
or a seq-shaped one) sorts into the read order where ``verify_chain`` finds it. After such a
forgery the next append fails loudly instead of burying it.

What this does not defend against: someone with write access to Redis who deletes the stream's
tail *and* rewinds ``audit:head``. The chain is then a valid shorter chain; only a head kept
outside Redis (exported, published, or held by auditors) reveals it, via ``expected_head``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from redis.exceptions import ResponseError

from coordinator.domain.audit import (
    GENESIS,
    AuditEntry,
    AuditFormatError,
    ChainCheck,
    ChainHead,
    entry_from_json,
    entry_to_json,
    make_entry,
    verify_chain,
)
from coordinator.store.layout import AUDIT
from coordinator.store.lua_scripts import lua_script
from evalgrid.clock import Clock, utc

__all__ = ["AuditConflictError", "AuditLog", "ChainedEntries"]

ENTRY_FIELD: Final = b"entry"
PAGE: Final = 500


# KEYS: stream, head. ARGV: prev seq, prev hash, seq, hash, entry JSON.
_APPEND_LUA: Final = lua_script(
    "audit_append.lua",
    body="return append_entry(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])\n")


@dataclass
class ChainedEntries:
    """Entries built on the chain's head for a caller's script (`AuditLog.chained`): each
    one's `append_entry` arguments, and which of them landed (the caller's to fill in)."""

    stream_key: str
    head_key: str
    entries: list[AuditEntry]
    landed: list[bool] = field(default_factory=list)

    @staticmethod
    def args(entry: AuditEntry) -> list[str]:
        """`append_entry`'s arguments after the keys, as text."""
        return [str(entry.seq - 1), entry.prev_hash, str(entry.seq), entry.hash,
                entry_to_json(entry)]


class AuditConflictError(RuntimeError):
    """An append was not placed: the head kept moving, or the stream disagrees with its head."""


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _iso(clock: Clock) -> str:
    return utc(clock.now()).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Append-only, signed, hash-chained audit trail kept in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        signing_key: Ed25519PrivateKey,
        clock: Clock,
        key: str = AUDIT,
        max_attempts: int = 32,
    ) -> None:
        self._redis = redis
        self._key = signing_key
        self._clock = clock
        self.stream_key = key
        self.head_key = f"{key}:head"
        self._max_attempts = max_attempts
        self._append = redis.register_script(_APPEND_LUA)
        self._lock = asyncio.Lock()
        self._head: ChainHead | None = None
        self.on_retry: Callable[[], object] | None = None  # told of each lost race (metrics)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    async def head(self) -> ChainHead:
        """The last appended entry's (seq, hash), from Redis; genesis when the log is empty."""
        seq, digest = await self._redis.hmget(self.head_key, ["seq", "hash"])
        if seq is None or digest is None:
            return GENESIS
        return ChainHead(int(seq), _text(digest))

    async def append(self, kind: str, subject: str, detail: Mapping[str, object]) -> AuditEntry:
        """Sign and append one entry after the current head; returns it as stored.

        Appends of this object are serialised; another writer moving the head in between makes
        this one rebuild its entry on the new head (up to ``max_attempts`` times).
        """
        async with self._lock:
            head = self._head if self._head is not None else await self.head()
            for attempt in range(self._max_attempts):
                if attempt:
                    if self.on_retry is not None:
                        self.on_retry()
                    # Lost a race to another writer: back off with jitter so two writers do
                    # not keep colliding in lock-step.
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                entry = make_entry(
                    head,
                    at=_iso(self._clock),
                    kind=kind,
                    subject=subject,
                    detail=detail,
                    key=self._key,
                )
                args: list[str | int] = [
                    head.seq,
                    head.hash,
                    entry.seq,
                    entry.hash,
                    entry_to_json(entry),
                ]
                try:
                    reply = await self._append(keys=[self.stream_key, self.head_key], args=args)
                except ResponseError as exc:
                    if "equal or smaller" not in str(exc):
                        raise
                    self._head = None
                    raise AuditConflictError(
                        f"stream {self.stream_key} already holds an entry at or past seq "
                        f"{entry.seq} although its head says {head.seq}: entries were added "
                        "around the append script or the head was rewound; verify the chain"
                    ) from exc
                if int(reply[0]) == 1:
                    self._head = entry.head
                    return entry
                current = ChainHead(int(reply[1]), _text(reply[2]))
                if current == entry.head:
                    # Our own earlier attempt landed (a client-side retry after a lost reply).
                    self._head = current
                    return entry
                head = current
            self._head = None
            raise AuditConflictError(
                f"could not append to {self.stream_key} after {self._max_attempts} attempts: "
                "the head kept moving"
            )

    @contextlib.asynccontextmanager
    async def chained(self, items: Sequence[tuple[str, str, Mapping[str, object]]]
                      ) -> AsyncIterator[ChainedEntries]:
        """Entries signed on the head, for a script of the caller's to append with
        `append_entry` (place.lua: a draw's placement and its `draw.placed` in one step); this
        log appends nothing else meanwhile. The caller says which entries landed (`landed`);
        the others are the caller's to append again (by `append_batch`)."""
        async with self._lock:
            head = self._head if self._head is not None else await self.head()
            entries = self._signed(head, items)
            chained = ChainedEntries(self.stream_key, self.head_key, entries)
            try:
                yield chained
            except BaseException:
                self._head = None  # the script may or may not have run: read the head again
                raise
            if entries:  # those that landed are a prefix: each chains on the last
                landed = sum(chained.landed)
                # None landed: another writer moved the head; read it again.
                self._head = entries[landed - 1].head if landed else None

    def _signed(self, head: ChainHead, items: Sequence[tuple[str, str, Mapping[str, object]]]
                ) -> list[AuditEntry]:
        """The items as entries, each signed on its predecessor, the first on `head`."""
        entries: list[AuditEntry] = []
        prev = head
        for kind, subject, detail in items:
            entry = make_entry(prev, at=_iso(self._clock), kind=kind, subject=subject,
                               detail=detail, key=self._key)
            entries.append(entry)
            prev = entry.head
        return entries

    async def known_seq(self) -> int:
        """The head's seq as this writer last saw it (Redis only before its first append).

        Never past the true head (which only grows): good as a lower bound to search from.
        """
        return self._head.seq if self._head is not None else (await self.head()).seq

    async def append_batch(
        self, items: Sequence[tuple[str, str, Mapping[str, object]]]
    ) -> list[AuditEntry]:
        """Append several entries in order, in one pipeline (a day plan's chunk).

        The same chain as that many ``append`` calls: each entry is signed on its predecessor
        and placed by the same compare-and-set script, so a writer that moves the head in
        between stops the rest of the batch, which is then rebuilt on the new head.
        """
        entries, _ = await self.append_batch_with(items)
        return entries

    async def append_batch_with(
        self,
        items: Sequence[tuple[str, str, Mapping[str, object]]],
        *,
        before: Callable[[Any], None] | None = None,
        after: Callable[[Any], None] | None = None,
    ) -> tuple[list[AuditEntry], list[Any]]:
        """``append_batch`` in one MULTI with the caller's writes: ``before`` stages writes
        ahead of the entries, ``after`` behind them (one fsynced round trip for both).
        Returns the entries and the replies of ``before``'s writes.

        The writes go with the first attempt only: when an entry there loses its race to
        another writer, the writes stand and the entries are appended by the retries.
        """
        appended: list[AuditEntry] = []
        own: list[Any] = []
        async with self._lock:
            head = self._head if self._head is not None else await self.head()
            for attempt in range(self._max_attempts):
                if attempt:
                    if len(appended) == len(items):
                        break
                    if self.on_retry is not None:
                        self.on_retry()
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                batch = self._signed(head, items[len(appended):])
                pipe = self._redis.pipeline(transaction=True)
                if attempt == 0 and before is not None:
                    before(pipe)
                first = len(pipe.command_stack)
                previous = head
                for entry in batch:
                    # EVAL, not the registered script: redis-py asks SCRIPT EXISTS ahead of
                    # a pipeline holding one (a round trip every batch), and an EVALSHA the
                    # server lacks fails alone inside a MULTI whose other writes stand. The
                    # body is 400 bytes; the server finds it compiled by its hash.
                    pipe.eval(_APPEND_LUA, 2, self.stream_key, self.head_key, previous.seq,
                              previous.hash, entry.seq, entry.hash, entry_to_json(entry))
                    previous = entry.head
                if attempt == 0 and after is not None:
                    after(pipe)
                if not pipe.command_stack:
                    break
                try:
                    replies = await pipe.execute()
                except ResponseError as exc:
                    self._head = None
                    raise AuditConflictError(
                        f"stream {self.stream_key} refused a batch after seq {head.seq}: "
                        f"{exc}; verify the chain") from exc
                if attempt == 0:
                    own = replies[:first]
                for entry, reply in zip(batch, replies[first:first + len(batch)], strict=True):
                    if int(reply[0]) == 1:
                        appended.append(entry)
                        head = entry.head
                        continue
                    current = ChainHead(int(reply[1]), _text(reply[2]))
                    if current == entry.head:  # an earlier attempt of ours landed
                        appended.append(entry)
                        head = current
                        continue
                    head = current
                    break
                self._head = head
            if len(appended) < len(items):
                self._head = None
                raise AuditConflictError(
                    f"could not append to {self.stream_key} after {self._max_attempts} "
                    "attempts: the head kept moving")
        return appended, own

    async def entries(self, after_seq: int = 0) -> list[AuditEntry]:
        """Every stored entry after ``after_seq``, in stream order (read in pages).

        Raw stream order, not filtered by seq: an entry slipped in around the script shows up
        here for ``verify_chain`` to reject.
        """
        found, _ = await self.entries_with(after_seq)
        return found

    async def entries_with(self, after_seq: int = 0,
                           also: Callable[[Any], None] | None = None
                           ) -> tuple[list[AuditEntry], list[Any]]:
        """`entries`, with the reads `also` stages on a pipeline sent in the first page's round
        trip (the conduct follower's cursor beside the entries after it: one trip a draw);
        returns the entries and the replies of those reads."""
        start = "-" if after_seq <= 0 else f"({after_seq}-0"
        found: list[AuditEntry] = []
        pipe = self._redis.pipeline(transaction=False)
        if also is not None:
            also(pipe)
        pipe.xrange(self.stream_key, start, "+", count=PAGE)
        *replies, page = await pipe.execute()
        while True:
            page = page or []
            for stream_id, fields in page:
                raw = None if fields is None else fields.get(ENTRY_FIELD, fields.get("entry"))
                if raw is None:
                    raise AuditFormatError(f"stream entry {_text(stream_id)} has no entry field")
                try:
                    found.append(entry_from_json(raw))
                except AuditFormatError as exc:
                    raise AuditFormatError(f"stream entry {_text(stream_id)}: {exc}") from exc
            if len(page) < PAGE:
                return found, replies
            start = f"({_text(page[-1][0])}"
            page = await self._redis.xrange(self.stream_key, start, "+", count=PAGE)

    async def verify(
        self, public_key: Ed25519PublicKey | None = None, *, expected_head: ChainHead | None = None
    ) -> ChainCheck:
        """Verify the stored chain against the stored head (or a head kept elsewhere)."""
        head = expected_head if expected_head is not None else await self.head()
        entries = await self.entries()
        return verify_chain(entries, public_key or self.public_key, expected_head=head)
