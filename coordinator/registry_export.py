"""`evalgrid registry snapshot`: the registry as an auditor gets it, digested into the chain.

The snapshot (coordinator/domain/registry_snapshot.py) is taken from the store the coordinator
draws from; its pool digest is the one every draw records, and the ``registry.snapshot`` audit
entry signs both digests, so an auditor can tell the file is the coordinator's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coordinator.domain.registry_snapshot import digest_of, pseudonym_key, registry_snapshot
from coordinator.domain.rules import Rules
from coordinator.offline import NoClock, master_key, open_store, signing_key
from coordinator.store.audit_log import AuditLog
from coordinator.store.registry import Registry


async def snapshot_registry(data_dir: Path, redis_url: str | None, rules: Rules,
                            out: Path) -> dict[str, Any]:
    """Write the snapshot to `out` and sign its digests into the chain; returns the entry's
    detail (digests and counts)."""
    key = pseudonym_key(master_key(data_dir))
    async with open_store(data_dir, redis_url) as redis:
        province = await Registry(redis).load_province()
        snapshot = registry_snapshot(province, key, rules)
        out.write_text(json.dumps(snapshot, indent=1, sort_keys=True, ensure_ascii=False),
                       encoding="utf-8")
        detail = {"pool_digest": snapshot["pool_digest"], "file_digest": digest_of(snapshot),
                  "rules_version": rules.version, "sites": len(province.sites),
                  "experts": len(province.experts), "companies": len(province.companies),
                  "projects": len(province.projects)}
        log = AuditLog(redis, signing_key=signing_key(data_dir), clock=NoClock())
        await log.append("registry.snapshot", "registry", detail)
    return detail
