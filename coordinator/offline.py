"""Tools that work on a data directory without a running coordinator: import, export, verify.

They open the same Redis the coordinator uses (attaching to the embedded one if it is running,
starting it from its append-only file if not) and the coordinator's keys in the data dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.allocation import Allocation
from coordinator.domain.anchoring import (
    ANCHOR_KINDS,
    SEED_KINDS,
    check_anchors,
    entries_from_export,
)
from coordinator.domain.audit import (
    AuditEntry,
    AuditFormatError,
    ChainCheck,
    entry_to_json,
    verify_chain,
)
from coordinator.domain.collusion import ScoreRecord
from coordinator.domain.draw.archive import commitment_from_json, record_digest, verify_replay
from coordinator.domain.draw.canonical import inputs_from_json, snapshot_from_json, snapshot_to_json
from coordinator.domain.draw.inputs import DrawInputs, DrawSnapshot
from coordinator.domain.draw.outcome import DrawOutcome, outcome_from_json
from coordinator.domain.lifecycle import ProjectState
from coordinator.domain.pii import PiiKeys
from coordinator.domain.registry_snapshot import check_pool
from coordinator.domain.rules import Rules, load_rules
from coordinator.domain.seal import SealedBox, unseal_json
from coordinator.province.files import load_province
from coordinator.store.allocations import Allocations
from coordinator.store.audit_log import AuditLog
from coordinator.store.connection import store_client
from coordinator.store.draws import DrawArchives
from coordinator.store.embedded_redis import EmbeddedRedis
from coordinator.store.keys import (
    load_or_create_master_key,
    load_public_key,
    public_key_hex,
    public_key_path,
)
from coordinator.store.registry import Registry
from coordinator.store.seed_rounds import PlanSeeds, SeedRounds, share_subject
from coordinator.store.snapshots import read_snapshot
from evalgrid.datadir import DataDir
from evalgrid.pki.signer import ensure_signing_certificate, signer_cert_path
from evalgrid.trust import PinnedTrust


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
    client = store_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


async def import_province(directory: Path, data_dir: Path, redis_url: str | None, *,
                          include_projects: bool = True,
                          progress: Callable[[str], object] | None = None) -> dict[str, int]:
    """Validate every file completely, then store all of it at once (or nothing).

    `progress(phase)` is told as each phase begins (validating, storing)."""
    tell = progress or (lambda _phase: None)
    tell("reading and validating the files")
    province = load_province(directory)  # raises ImportFailed, before any write
    if not include_projects:
        province = dataclasses.replace(province, projects=())
    data = DataDir(data_dir).ensure()
    # Personal data is sealed under a key derived from the coordinator's master key.
    pii = PiiKeys.from_master(load_or_create_master_key(data.keys / "master.key"))
    tell(f"storing {len(province.experts):,} experts (sealed)")
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
    return await Allocations(redis, key).read(project_id)


EXPORT_FORMAT = "evalgrid-draw-archive/2"
#: Export formats this version reads: each with its own reader in `verify_draw_file`.
EXPORT_FORMATS = ("evalgrid-draw-archive/1", EXPORT_FORMAT)


async def export_draws(project_id: str, data_dir: Path,
                       redis_url: str | None) -> dict[str, Any]:
    """Every draw of a project (the first and its supplementary draws), self-contained.

    Besides the archives it carries the signed audit entries that anchor them (see
    coordinator/domain/anchoring.py) and names its signer (raw key, and the CA's `signer`
    certificate where the data dir has a CA); verifiers believe the signer only if it agrees
    with their pinned key.
    """
    key = master_key(data_dir)
    signing = signing_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        alloc = await read_allocation(redis, key, project_id)
        if alloc is None:
            raise OfflineError(f"project {project_id!r} has no draw in {data_dir}")
        draws = []
        for draw_id in alloc.draw_ids:
            archives = DrawArchives(redis, key)
            archive = await archives.sealed_archive(draw_id)
            if archive is None:
                raise OfflineError(f"draw {draw_id} of {project_id!r} is not stored")
            if (await archives.revealed_seed(draw_id))[0] is None:
                archive["seed"] = None  # not revealed yet: the archive cannot be replayed
            draws.append(archive)
        log = AuditLog(redis, signing_key=signing, clock=NoClock())
        entries = await log.entries()
        plans = {e.detail.get("plan_id") for e in entries if e.kind == "draw.committed"
                 and e.detail.get("draw_id") in alloc.draw_ids and e.detail.get("plan_id")}
        derived = {_seed_day(e) for e in entries
                   if e.kind == "draw.committed" and e.detail.get("draw_id") in alloc.draw_ids}
        plans |= {e.detail.get("plan_id") for e in entries
                  if e.kind in ("plan.committed", "plan.seed_revealed") and e.subject in derived}
        days = {e.subject for e in entries if e.kind == "plan.committed"
                and e.detail.get("plan_id") in plans} | {d for d in derived if d}
        anchors = [json.loads(entry_to_json(e)) for e in entries
                   if _anchors(e, project_id, set(alloc.draw_ids), plans, days)]
        snapshots = await _referenced_snapshots(redis, key, draws)
        await log.append("draw.exported", project_id, {"draws": len(draws)})
    exported: dict[str, Any] = {
        "format": EXPORT_FORMAT, "project_id": project_id, "draws": draws, "audit": anchors,
        "signer": {"key": public_key_hex(signing),
                   "certificate": ensure_signing_certificate(DataDir(data_dir).pki,
                                                             signing.public_key())}}
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


def _seed_day(entry: AuditEntry) -> str | None:
    """The day whose seed a draw's seed derives from (a supplementary draw), if any."""
    seed_from = entry.detail.get("seed_from")
    return str(seed_from.get("day")) if isinstance(seed_from, dict) else None


def _anchors(entry: AuditEntry, project_id: str, draw_ids: set[str], plans: set[Any],
             days: set[str]) -> bool:
    """Whether an export of `project_id` carries this entry."""
    if entry.kind not in ANCHOR_KINDS:
        return False
    if entry.kind in ("plan.committed", "plan.seed_revealed"):
        return entry.detail.get("plan_id") in plans
    if entry.kind in SEED_KINDS:
        return entry.subject in days
    if entry.kind == "draw.seed_revealed":
        return entry.subject in draw_ids
    if entry.kind in ("draw.committed", "draw.placed"):
        return entry.detail.get("draw_id") in draw_ids
    return entry.subject == project_id


def verify_draw_file(path: Path, trust: PinnedTrust, *,
                     accept_unanchored: bool = False,
                     registry: dict[str, Any] | None = None,
                     rules: Rules | None = None) -> tuple[list[str], int]:
    """Problems with an exported archive (empty: it verifies) and the number of draws in it.

    Format 2: the signer agrees with the pinned key, the carried audit entries verify and anchor
    every draw (commitment before result), then each draw replays. Format 1 carries no audit
    entries: it is replayed only, and refused as unanchored unless `accept_unanchored`.
    With `registry` (a registry snapshot) and `rules`, each draw's pool is also re-derived
    (coordinator/domain/registry_snapshot.py).
    """
    try:
        archive = json.loads(path.read_text(encoding="utf-8"))
        draws = archive["draws"]
        version = archive["format"]
        if not isinstance(draws, list) or not all(isinstance(d, dict) for d in draws):
            raise TypeError("draws must be a list of objects")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return [f"{path}: not a draw archive ({exc})"], 0
    if version not in EXPORT_FORMATS:
        return [f"format: {version!r} is none of {', '.join(EXPORT_FORMATS)}"], len(draws)
    known, problems = _file_snapshots(archive)
    if version == EXPORT_FORMAT:
        problems += _anchor_problems(archive, draws, trust)
    elif not accept_unanchored:
        problems.append(f"format: {version} carries no signed audit entries, so its "
                        "commitments are not anchored in the chain (replayed only; pass "
                        "--accept-unanchored to accept that)")
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
    if registry is not None:
        problems += _pool_problems(archive, draws, known, registry, rules or load_rules())
    return problems, len(draws)


def _pool_problems(archive: dict[str, Any], draws: list[Any], known: dict[str, DrawSnapshot],
                   registry: dict[str, Any], rules: Rules) -> list[str]:
    """Each draw's pool against the registry snapshot (see `check_pool`)."""
    inputs: list[DrawInputs | None] = []
    for draw in draws:
        try:
            snapshots = dict(known)
            if draw.get("snapshot") is not None:
                embedded = snapshot_from_json(draw["snapshot"])
                snapshots[embedded.digest()] = embedded
            inputs.append(inputs_from_json(draw["inputs"], snapshots))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            inputs.append(None)  # the replay reports it
    rows = archive.get("audit")
    entries = entries_from_export(rows)[0] if isinstance(rows, list) else []
    return check_pool(draws, inputs, registry, rules, entries)


def _anchor_problems(archive: dict[str, Any], draws: list[Any],
                     trust: PinnedTrust) -> list[str]:
    signer = archive.get("signer")
    if not isinstance(signer, dict):
        return ["signer: the archive names no signer"]
    key, problem = trust.signer(carried_key=signer.get("key"),
                                carried_cert=signer.get("certificate") or None)
    if key is None:
        return [problem]
    rows = archive.get("audit")
    if not isinstance(rows, list):
        return ["audit: the archive carries no audit entries"]
    entries, problems = entries_from_export(rows)
    digests: list[str | None] = []
    for draw in draws:
        try:
            result = outcome_from_json(draw["result"])
            digests.append(result.outcome_digest() if isinstance(result, DrawOutcome) else None)
        except (KeyError, TypeError, ValueError, AttributeError):
            digests.append(None)
    return problems + check_anchors(draws, entries, key, digests)


async def reveal_plan_seeds(day: str, data_dir: Path,
                            redis_url: str | None) -> list[tuple[str, str]]:
    """The seeds of `day`'s plans (plan id, seed hex), revealed with the day's seed round."""
    return (await reveal_seeds(day, data_dir, redis_url))[0]


async def reveal_seeds(day: str, data_dir: Path, redis_url: str | None
                       ) -> tuple[list[tuple[str, str]], str]:
    """Reveal the seed of `day`'s round and of every plan of the day, once its awards are made:
    (plan id, seed hex) per plan, and the day's seed ("" for a day fixed before rounds were
    audited).

    Refused while a project drawn from the day's seed (planned, single or supplementary) is not
    yet reported: its seed would then be known before the award. Audited once each as
    `plan.seed_revealed` and `seed.revealed` (the day's seed and the coordinator's share).
    """
    from coordinator.seed_shares import round_seed

    key = master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        log = AuditLog(redis, signing_key=signing_key(data_dir), clock=NoClock())
        entries = await log.entries()
        plans = [e.detail.get("plan_id") for e in entries
                 if e.kind == "plan.committed" and e.subject == day]
        fixed = any(e.kind == "seed.fixed" and e.subject == day for e in entries)
        if not plans and not fixed:
            raise OfflineError(f"no draw used the seed of {day} in {data_dir} (no day plan, "
                               "no single draw): nothing to reveal")
        states = await Registry(redis).project_states()
        draws = {e.detail.get("draw_id"): e.subject for e in entries
                 if e.kind == "draw.committed" and (e.detail.get("plan_id") in plans
                                                    or _seed_day(e) == day)}
        placed = sorted({draws[e.detail.get("draw_id")] for e in entries
                         if e.kind == "draw.placed" and e.detail.get("draw_id") in draws})
        waiting = [p for p in placed if states.get(p) != ProjectState.REPORTED]
        if waiting:
            raise OfflineError(
                f"{day}: {len(waiting)} project(s) drawn from the day's seed not reported yet "
                f"({', '.join(waiting[:3])}{', ...' if len(waiting) > 3 else ''}); the seed "
                "is revealed with the awards")
        coordinator_secret = await _coordinator_share(redis, key, day)
        revealed: list[tuple[str, str]] = []
        for plan_id in plans:
            raw = await PlanSeeds(redis).fields(str(plan_id))
            if not raw:
                raise OfflineError(f"plan {plan_id} of {day}: its seed was not kept (a plan "
                                   "made before plan seeds were sealed); it cannot be revealed")
            audited = any(e.kind == "plan.seed_revealed" and e.detail.get("plan_id") == plan_id
                          for e in entries)
            if "seed" in raw and audited:
                revealed.append((str(plan_id), raw["seed"]))
                continue
            # Stored but not audited (the store went away in between): the retry audits it.
            seed = raw["seed"] if "seed" in raw else str(unseal_json(
                key, SealedBox.from_json(raw["sealed"]), project_id=str(plan_id),
                purpose="plan-seed")["seed"])
            await PlanSeeds(redis).reveal(str(plan_id), seed)
            await log.append("plan.seed_revealed", day, {
                "plan_id": plan_id, "day": day, "seed": seed,
                "coordinator_secret": coordinator_secret})
            revealed.append((str(plan_id), seed))
        day_seed = ""
        if fixed:
            fields = await SeedRounds(redis).fields(day)
            day_seed = round_seed(key, day, fields).hex()
            if not any(e.kind == "seed.revealed" and e.subject == day for e in entries):
                await log.append("seed.revealed", day, {
                    "day": day, "seed": day_seed, "coordinator_secret": coordinator_secret})
    return revealed, day_seed


async def _coordinator_share(redis: aioredis.Redis, key: bytes, day: str) -> str:
    """The coordinator's share of a day's seed, hex ("" for a day without one)."""

    raw = await SeedRounds(redis).coordinator_sealed(day)
    if raw is None:
        return ""
    return str(unseal_json(key, SealedBox.from_json(raw), project_id=share_subject(day),
                           purpose="seed-share")["secret"])


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
        await AuditLog(redis, signing_key=signing_key(data_dir), clock=NoClock()).append(
            "collusion.history_read", "reports", {"projects": len(reports),
                                                  "scores": len(records)})
    return records


async def verify_audit(data_dir: Path, redis_url: str | None,
                       trust: PinnedTrust | None = None) -> ChainCheck:
    """The stored chain against a pinned key (default: the data dir's own public key)."""
    data = DataDir(data_dir)
    if trust is None:
        public = load_public_key(public_key_path(data.keys / "audit-signing.pem"))
    else:
        carried = public_key_path(data.keys / "audit-signing.pem")
        cert = signer_cert_path(data.pki)
        key, problem = trust.signer(
            carried_key=public_key_hex(load_public_key(carried)) if carried.is_file() else None,
            carried_cert=cert.read_text("ascii") if cert.is_file() else None)
        if key is None:
            return ChainCheck(False, None, None, problem, 0)
        public = key
    async with open_store(data_dir, redis_url) as redis:
        log = AuditLog(redis, signing_key=signing_key(data_dir), clock=NoClock())
        try:
            entries = await log.entries()
        except AuditFormatError as exc:  # an entry that no longer even parses
            return ChainCheck(False, None, None, f"unreadable entry: {exc}", 0)
        return verify_chain(entries, public, expected_head=await log.head())


def signing_key(data_dir: Path) -> Ed25519PrivateKey:
    from coordinator.store.keys import load_or_create_signing_key

    return load_or_create_signing_key(DataDir(data_dir).keys / "audit-signing.pem")


class NoClock:
    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)
