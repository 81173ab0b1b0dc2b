"""The site's own inventory file: venues, rooms, workstations (the agent's source of truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalgrid_wire.v1 import common_pb2

from site_agent.booths import Booth


class InventoryError(ValueError):
    pass


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise InventoryError(f"{where}.{key}: missing")
    return obj[key]


def load_inventory(path: Path) -> tuple[str, common_pb2.Inventory]:
    """Read `{"id": SITE, "venues": [{"id", "name", "rooms": [{"id", "name", "workstations":
    [{"id", "attributes"}]}]}]}` - the same shape as a site line of the province files."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InventoryError(f"{path}: {exc}") from exc
    try:
        return _parse(data)
    except (TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, InventoryError):
            raise
        raise InventoryError(f"{path}: not an inventory (docs/inventory.md): an object with "
                             "id and venues[].rooms[].workstations[] lists is expected") from None


def _parse(data: Any) -> tuple[str, common_pb2.Inventory]:
    if not isinstance(data, dict):
        raise InventoryError("site: a JSON object is expected")
    site_id = str(_require(data, "id", "site"))
    inventory = common_pb2.Inventory()
    for vi, venue in enumerate(_require(data, "venues", "site")):
        v = inventory.venues.add(id=str(_require(venue, "id", f"venues[{vi}]")),
                                 name=str(venue.get("name", "")))
        for ri, room in enumerate(_require(venue, "rooms", f"venues[{vi}]")):
            r = v.rooms.add(id=str(_require(room, "id", f"venues[{vi}].rooms[{ri}]")),
                            name=str(room.get("name", "")))
            for wi, ws in enumerate(_require(room, "workstations", f"venues[{vi}].rooms[{ri}]")):
                where = f"venues[{vi}].rooms[{ri}].workstations[{wi}]"
                r.workstations.add(id=str(_require(ws, "id", where)), room_id=r.id,
                                   attributes=[str(a) for a in ws.get("attributes", [])])
    return site_id, inventory


def booths_from_inventory(inventory: common_pb2.Inventory) -> dict[str, Booth]:
    return {
        ws.id: Booth(workstation_id=ws.id, room_id=room.id, venue_id=venue.id)
        for venue in inventory.venues
        for room in venue.rooms
        for ws in room.workstations
    }
