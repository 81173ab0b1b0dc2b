"""The coordinator's side of revocation: audit what the CRL revokes, and send it to the sites.

The coordinator watches its own ``pki/crl.pem`` (``evalgrid.revocation.Revocations``). When a
list with new entries comes into force, each newly revoked certificate is appended to the audit
trail once (``certificate.revoked``: serial, the identity it was issued to, reason, CRL number;
the serials already audited are remembered in Redis, so a restart does not repeat them), and
the list is queued to every connected site's command stream. A site that registers later
(reconnect, restart, new host) gets the list in force when it registers. Queued commands wait
in Redis until the agent acknowledges them, as every other command does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from evalgrid_wire.v1 import site_link_pb2

from coordinator.store.revocations import AuditedRevocations
from coordinator.workflow import Workflow
from evalgrid.pki.directory import ISSUED_INDEX
from evalgrid.revocation import CrlView, Revocations

__all__ = ["CrlFeed"]

log = logging.getLogger("evalgrid.coordinator")



class CrlFeed:
    def __init__(self, workflow: Workflow, revocations: Revocations) -> None:
        self.workflow = workflow
        self.revocations = revocations
        revocations.on_change(self.changed)

    def _issued_to(self) -> dict[int, str]:
        index = Path(self.revocations.pki_dir) / ISSUED_INDEX
        who: dict[int, str] = {}
        if index.exists():
            for line in index.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    who[int(row["serial"], 16)] = f"{row['role']}:{row['subject']}"
                except (ValueError, KeyError, TypeError):
                    continue
        return who

    async def changed(self, view: CrlView) -> None:
        """Audit the newly revoked certificates, then push the list to connected sites."""
        store = AuditedRevocations(self.workflow.redis)
        audited = await store.serials()
        fresh = sorted(view.serials - audited)
        if fresh:
            who = self._issued_to()
            for serial in fresh:
                subject = who.get(serial, f"serial:{serial:x}")
                await self.workflow.record("certificate.revoked", subject,
                                           {"serial": format(serial, "x"),
                                            "reason": view.reasons[serial],
                                            "crl_number": view.number})
                await store.add(serial)
        for site_id in self.workflow.links.online():
            await self.push(site_id)

    async def push(self, site_id: str) -> None:
        """Queue the list in force to one site (nothing while there is no list)."""
        view = self.revocations.view
        if not view.number or not view.pem:
            return
        await self.workflow.links.enqueue(site_id, site_link_pb2.CoordinatorCommand(
            command_id=f"crl-{view.number}",
            crl=site_link_pb2.CrlUpdate(number=view.number, pem=view.pem)))

    async def run(self) -> None:
        """Send the list in force to each site as it registers (until cancelled)."""
        async for entry in self.workflow.watch():
            if entry.kind == "site.registered":
                try:
                    await self.push(entry.subject)
                except Exception:
                    log.exception("could not queue the CRL for site %s", entry.subject)
