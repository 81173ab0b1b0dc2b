"""Tools that work on a data directory without a running coordinator: import, export, verify.

They open the same Redis the coordinator uses (attaching to the embedded one if it is running,
starting it from its append-only file if not) and the coordinator's keys in the data dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from coordinator.allocation import Allocation
from coordinator.domain.audit import AuditFormatError, ChainCheck, verify_chain
from coordinator.domain.collusion import ScoreRecord
from coordinator.domain.draw import (
    DrawSnapshot,
    commitment_from_json,
    outcome_from_json,
    record_digest,
    snapshot_from_json,
    snapshot_to_json,
    verify_replay,
)
from coordinator.domain.pii import PiiKeys
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.drawing import read_snapshot
from coordinator.province.files import load_province
from coordinator.store.audit_log import AuditLog
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.keys import load_or_create_master_key, load_public_key, public_key_path
from coordinator.store.registry import Registry
from coordinator.store.values import text
from evalgrid.datadir import DataDir


class OfflineError(Exception):
    pass


@asynccontextmanager
async def open_store(data_dir: Path, redis_url: str | None) -> AsyncIterator[aioredis.Redis]:
    data = DataDir(data_dir)
    embedded = None
    if redis_url is None:
        if not data.root.exists():
            raise OfflineError(f"no data directory at {data.root}")
        embedded = EmbeddedRedis(data.redis).start()
        redis_url = embedded.url
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


async def import_province(directory: Path, data_dir: Path, redis_url: str | None, *,
                          include_projects: bool = True) -> dict[str, int]:
    """Validate every file completely, then store all of it at once (or nothing)."""
    province = load_province(directory)  # raises ImportFailed, before any write
    if not include_projects:
        province = dataclasses.replace(province, projects=())
    data = DataDir(data_dir).ensure()
    # Personal data is sealed under a key derived from the coordinator's master key.
    pii = PiiKeys.from_master(load_or_create_master_key(data.keys / "master.key"))
    async with open_store(data_dir, redis_url) as redis:
        await Registry(redis, pii).store_province(province)
    return {"sites": len(province.sites), "experts": len(province.experts),
            "companies": len(province.companies), "projects": len(province.projects)}


def master_key(data_dir: Path) -> bytes:
    path = DataDir(data_dir).keys / "master.key"
    if not path.exists():
        raise OfflineError(f"no coordinator key at {path}: is this a coordinator data dir?")
    return load_or_create_master_key(path)


async def read_allocation(redis: aioredis.Redis, key: bytes,
                          project_id: str) -> Allocation | None:
    raw = await redis.get(f"alloc:{project_id}")
    if raw is None:
        return None
    return Allocation.from_dict(unseal_json(key, SealedBox.from_json(text(raw)),
                                            project_id=project_id, purpose="allocation"))


async def export_draws(project_id: str, data_dir: Path,
                       redis_url: str | None) -> dict[str, Any]:
    """Every draw of a project (the first and its supplementary draws), self-contained."""
    key = master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        alloc = await read_allocation(redis, key, project_id)
        if alloc is None:
            raise OfflineError(f"project {project_id!r} has no draw in {data_dir}")
        draws = []
        for draw_id in alloc.draw_ids:
            raw = await redis.hgetall(f"draw:{draw_id}")
            archive = unseal_json(key, SealedBox.from_json(text(raw[b"sealed"])),
                                  project_id=draw_id, purpose="draw")
            if b"seed" not in raw:
                archive["seed"] = None  # not revealed yet: the archive cannot be replayed
            draws.append(archive)
        snapshots = await _referenced_snapshots(redis, key, draws)
        await AuditLog(redis, signing_key=_signing_key(data_dir), clock=_NoClock()).append(
            "draw.exported", project_id, {"draws": len(draws)})
    exported: dict[str, Any] = {"format": "evalgrid-draw-archive/1", "project_id": project_id,
                                "draws": draws}
    if snapshots:
        exported["snapshots"] = snapshots
    return exported


async def _referenced_snapshots(redis: aioredis.Redis, key: bytes,
                                draws: list[dict[str, Any]]) -> dict[str, Any]:
    """The day snapshots the draws' referenced inputs name, once each, by digest: the export
    replays without the coordinator."""
    found: dict[str, Any] = {}
    for archive in draws:
        digest = archive.get("inputs", {}).get("snapshot")
        if digest is None or digest in found:
            continue
        snapshot = await read_snapshot(redis, key, digest)
        if snapshot is None:
            raise OfflineError(f"draw snapshot {digest} is missing from the store")
        found[digest] = snapshot_to_json(snapshot)
    return found


def _file_snapshots(archive: dict[str, Any]) -> tuple[dict[str, DrawSnapshot], list[str]]:
    """The snapshots an exported file carries, each checked against the digest it is filed
    under (a forged one is reported, never used)."""
    known: dict[str, DrawSnapshot] = {}
    problems: list[str] = []
    for digest, body in (archive.get("snapshots") or {}).items():
        try:
            snapshot = snapshot_from_json(body)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            problems.append(f"snapshots[{digest}]: cannot be read: {type(exc).__name__}: {exc}")
            continue
        if snapshot.digest() != digest:
            problems.append(f"snapshots[{digest}]: digests to {snapshot.digest()}")
            continue
        known[digest] = snapshot
    return known, problems


def verify_draw_file(path: Path) -> tuple[list[str], int]:
    try:
        archive = json.loads(path.read_text(encoding="utf-8"))
        draws = archive["draws"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: not a draw archive ({exc})"], 0
    known, problems = _file_snapshots(archive)
    for i, draw in enumerate(draws):
        problems += [f"draws[{i}]: {p}" for p in verify_replay(draw, known)]
        if i > 0:
            parent = draw.get("commitment", {}).get("parent")
            try:
                before = draws[i - 1]
                previous = record_digest(commitment_from_json(before["commitment"]),
                                         outcome_from_json(before["result"]))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"draws[{i - 1}]: unreadable ({exc})")
                continue
            if parent != previous:
                problems.append(f"draws[{i}]: chains to {parent!r}, not to the draw before it "
                                f"({previous!r})")
    return problems, len(draws)


def pseudonym(key: bytes, expert_id: str) -> str:
    """A stable name for an expert across projects that reveals nothing without the key."""
    return "X-" + hmac.new(key, b"pseudonym:" + expert_id.encode(), hashlib.sha256).hexdigest()[:10]


async def scoring_history(data_dir: Path, redis_url: str | None) -> list[ScoreRecord]:
    """Every signed score of every reported project, its member under a stable pseudonym.

    Reading the sealed allocations to link a seat to its expert is an audited act.
    """
    key = master_key(data_dir)
    reports = sorted((DataDir(data_dir).reports).glob("*.json"))
    records: list[ScoreRecord] = []
    async with open_store(data_dir, redis_url) as redis:
        registry = Registry(redis)
        for path in reports:
            body = json.loads(path.read_text(encoding="utf-8"))["report"]
            project = await registry.project(body["project"]["id"])
            alloc = await read_allocation(redis, key, body["project"]["id"])
            if project is None or alloc is None:
                continue
            maxima = {c.id: c.max_score for c in project.scoring.criteria}
            who = {s.expert_ref: pseudonym(key, s.expert_id) for s in alloc.seats}
            for sheet in body.get("sheets", []):
                for row in sheet["scores"]:
                    if row["criterion_id"] in maxima:
                        records.append(ScoreRecord(
                            project.id, who[sheet["expert_ref"]], row["bidder_id"],
                            row["criterion_id"], Decimal(row["score"]),
                            maxima[row["criterion_id"]]))
        await AuditLog(redis, signing_key=_signing_key(data_dir), clock=_NoClock()).append(
            "collusion.history_read", "reports", {"projects": len(reports),
                                                  "scores": len(records)})
    return records


async def verify_audit(data_dir: Path, redis_url: str | None) -> ChainCheck:
    public = load_public_key(public_key_path(DataDir(data_dir).keys / "audit-signing.pem"))
    async with open_store(data_dir, redis_url) as redis:
        log = AuditLog(redis, signing_key=_signing_key(data_dir), clock=_NoClock())
        try:
            entries = await log.entries()
        except AuditFormatError as exc:  # an entry that no longer even parses
            return ChainCheck(False, None, None, f"unreadable entry: {exc}", 0)
        return verify_chain(entries, public, expected_head=await log.head())


def _signing_key(data_dir: Path) -> Any:
    from coordinator.store.keys import load_or_create_signing_key

    return load_or_create_signing_key(DataDir(data_dir).keys / "audit-signing.pem")


class _NoClock:
    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)
