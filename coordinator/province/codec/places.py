"""Cities and sites (with their venues, rooms and workstations)."""

from __future__ import annotations

from coordinator.domain.model import (
    SITE_ROLES,
    City,
    District,
    Room,
    Site,
    SiteRole,
    Venue,
    Workstation,
)
from coordinator.province.codec.fields import (
    Errors,
    JsonDict,
    RecordError,
    Shape,
    check_unique_id,
    path_at,
    read_city,
    read_id,
    read_list,
    read_obj,
    read_str,
    read_strings,
)

_ROLE: dict[str, SiteRole] = {r: r for r in SITE_ROLES}


# --- cities --------------------------------------------------------------------------------

_CITY = Shape(("name",), ("aliases", "districts"))
_DISTRICT = Shape(("name",), ("aliases",))


def city_to_dict(city: City) -> JsonDict:
    """The city with its aliases and districts (each with its aliases)."""
    return {
        "name": city.name,
        "aliases": list(city.aliases),
        "districts": [{"name": d.name, "aliases": list(d.aliases)} for d in city.districts],
    }


def city_from_dict(data: object) -> City:
    """Validate and build a city of the registry; raises `RecordError` listing every problem."""
    e = Errors()
    d = read_obj(e, data, "", _CITY)
    if d is None:
        raise RecordError(e.items)
    name = read_str(e, d, "name", "")
    aliases = read_strings(e, d, "aliases", "")
    districts: list[District] = []
    for i, raw in enumerate(read_list(e, d, "districts", "")):
        path = f"districts[{i}]"
        dd = read_obj(e, raw, path, _DISTRICT)
        if dd is None:
            continue
        districts.append(District(read_str(e, dd, "name", path),
                                  tuple(read_strings(e, dd, "aliases", path))))
    if e.items:
        raise RecordError(e.items)
    return City(name, tuple(aliases), tuple(districts))


# --- sites ---------------------------------------------------------------------------------

_SITE = Shape(("id", "name", "city", "roles", "venues"))
_VENUE = Shape(("id", "name", "rooms"), ("city",))
_ROOM = Shape(("id", "name", "workstations"))
_WORKSTATION = Shape(("id",), ("attributes",))


def site_to_dict(site: Site) -> JsonDict:
    """The site with its venues, rooms and workstations nested; parent ids are implied."""
    venues: list[JsonDict] = []
    for venue in site.venues:
        if venue.site_id != site.id:
            raise ValueError(f"venue {venue.id!r}: site_id disagrees with its site {site.id!r}")
        rooms: list[JsonDict] = []
        for room in venue.rooms:
            if room.venue_id != venue.id:
                raise ValueError(f"room {room.id!r}: venue_id disagrees with its venue")
            stations: list[JsonDict] = []
            for ws in room.workstations:
                if (ws.site_id, ws.venue_id, ws.room_id) != (site.id, venue.id, room.id):
                    raise ValueError(f"workstation {ws.id!r}: parent ids disagree with nesting")
                stations.append({"id": ws.id, "attributes": sorted(ws.attributes)})
            rooms.append({"id": room.id, "name": room.name, "workstations": stations})
        venues.append({"id": venue.id, "name": venue.name, "city": venue.city, "rooms": rooms})
    return {
        "id": site.id,
        "name": site.name,
        "city": site.city,
        "roles": sorted(site.roles),
        "venues": venues,
    }


def site_from_dict(data: object) -> Site:
    """Validate and build a site; raises `RecordError` listing every problem."""
    e = Errors()
    d = read_obj(e, data, "", _SITE)
    if d is None:
        raise RecordError(e.items)
    site_id = read_id(e, d, "id", "")
    name = read_str(e, d, "name", "")
    city = read_city(e, d, "city", "")
    roles: set[SiteRole] = set()
    for i, role in enumerate(read_strings(e, d, "roles", "")):
        if role in _ROLE:
            roles.add(_ROLE[role])
        else:
            e.add(f"roles[{i}]", f"not one of {', '.join(SITE_ROLES)}: {role!r}")
    if "roles" in d and isinstance(d["roles"], list) and not d["roles"]:
        e.add("roles", "a site needs at least one role (host, guest)")

    seen_venue: dict[str, str] = {}
    seen_room: dict[str, str] = {}
    seen_ws: dict[str, str] = {}
    venues: list[Venue] = []
    n_workstations = 0
    errors_before_venues = len(e.items)
    for vi, vraw in enumerate(read_list(e, d, "venues", "")):
        vp = f"venues[{vi}]"
        vd = read_obj(e, vraw, vp, _VENUE)
        if vd is None:
            continue
        venue_id = read_id(e, vd, "id", vp)
        check_unique_id(e, seen_venue, venue_id, path_at(vp, "id"), "venue")
        rooms: list[Room] = []
        for ri, rraw in enumerate(read_list(e, vd, "rooms", vp)):
            rp = f"{vp}.rooms[{ri}]"
            rd = read_obj(e, rraw, rp, _ROOM)
            if rd is None:
                continue
            room_id = read_id(e, rd, "id", rp)
            check_unique_id(e, seen_room, room_id, path_at(rp, "id"), "room")
            stations: list[Workstation] = []
            for wi, wraw in enumerate(read_list(e, rd, "workstations", rp)):
                wp = f"{rp}.workstations[{wi}]"
                wd = read_obj(e, wraw, wp, _WORKSTATION)
                if wd is None:
                    continue
                ws_id = read_id(e, wd, "id", wp)
                check_unique_id(e, seen_ws, ws_id, path_at(wp, "id"), "workstation")
                attributes = frozenset(read_strings(e, wd, "attributes", wp, intern=True))
                stations.append(Workstation(ws_id, site_id, venue_id, room_id, attributes))
            if not stations and "workstations" in rd:
                e.add(path_at(rp, "workstations"), "a room needs at least one workstation")
            n_workstations += len(stations)
            rooms.append(Room(room_id, venue_id, read_str(e, rd, "name", rp), tuple(stations)))
        if not rooms and "rooms" in vd:
            e.add(path_at(vp, "rooms"), "a venue needs at least one room")
        venue_name = read_str(e, vd, "name", vp)
        venue_city = read_city(e, vd, "city", vp, default=city)
        venues.append(Venue(venue_id, site_id, venue_name, venue_city, tuple(rooms)))
    if "guest" in roles and n_workstations == 0 and len(e.items) == errors_before_venues:
        e.add("venues", "a guest site needs at least one venue with a workstation")
    e.check()
    return Site(site_id, name, city, frozenset(roles), tuple(venues))
