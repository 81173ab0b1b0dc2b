"""The agent process: load the inventory, serve, link to the coordinator until told to stop."""

from __future__ import annotations

from pathlib import Path

from evalgrid.lifecycle import announce, run_until_signalled
from site_agent.agent import AgentConfig, SiteAgent
from site_agent.inventory import InventoryError, load_inventory


async def run_forever(config: AgentConfig, inventory_path: Path, port_file: Path | None) -> None:
    site_id, inventory = load_inventory(inventory_path)
    if site_id != config.site_id:
        raise InventoryError(f"id: inventory is for site {site_id!r}, not {config.site_id!r}")
    agent = SiteAgent(config, inventory)
    port = await agent.start()
    if port_file is not None:
        port_file.parent.mkdir(parents=True, exist_ok=True)
        if agent.enrolment is not None:  # written first: agent.port says "ready" to watchers
            port_file.with_name("enrol.port").write_text(str(agent.enrolment.port))
        port_file.write_text(str(port))
    host = config.bind.rsplit(":", 1)[0]
    enrol = (f"; workstation enrolment on {(config.enrol_bind or '').rsplit(':', 1)[0]}:"
             f"{agent.enrolment.port}" if agent.enrolment is not None else "")
    announce(f"agent {site_id} ready: desk and booths (mutual TLS) on {host}:{port}{enrol}; "
          f"linking to the coordinator at {config.coordinator}; SIGTERM or Ctrl-C stops it")
    await run_until_signalled(agent.stop)
    announce(f"agent {site_id} stopped")
