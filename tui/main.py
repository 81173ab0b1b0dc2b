"""Entry points of the consoles (`evalgrid tui site|operator`): build the gRPC client inside
the event loop the app runs in (an aio channel belongs to one loop), then run the app."""

from __future__ import annotations

from pathlib import Path


async def run_site(*, pki_dir: Path, site_id: str, agent: str) -> None:
    from tui.site_app import SiteConsole
    from tui.site_client import GrpcSiteClient

    client = GrpcSiteClient(pki_dir=pki_dir, site_id=site_id, agent=agent)
    await SiteConsole(client, site_id).run_async()


async def run_operator(*, pki_dir: Path, coordinator: str, name: str, role: str = "operator",
                       banner: str = "") -> None:
    from tui.operator_app import OperatorConsole
    from tui.operator_client import GrpcOperatorClient

    client = GrpcOperatorClient(pki_dir=pki_dir, coordinator=coordinator, name=name, role=role)
    await OperatorConsole(client, name, banner=banner, role=role).run_async()
