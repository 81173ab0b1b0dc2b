"""Model records <-> plain JSON-able dicts, validating everything on the way in.

Province data arrives from many trading centres and expert databases; a malformed record must be
rejected with a precise, dotted field path (``employments[2].start``) so the operator can fix the
source, rather than surfacing later as a wrong draw. The codec is pure (no I/O): the importer in
`coordinator.province.files` adds file names, line numbers and checks between records.

Encoding decisions: dates ``YYYY-MM-DD``; datetimes ISO 8601 with an offset, stored in UTC
(naive datetimes are rejected: an evaluation window must be unambiguous); Decimals as strings
(ints accepted, floats rejected because they are inexact); sets as sorted lists; tuples as lists
in order. ``*_to_dict`` always writes every field, so its output is canonical and digestible;
``*_from_dict`` accepts omitted optional fields and fills the model's defaults.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from coordinator.domain.model import (
    CATEGORIES,
    EXPERT_KINDS,
    EXPERT_STATUSES,
    RELATIONS,
    SCORING_METHODS,
    SITE_ROLES,
    Bid,
    Category,
    City,
    Company,
    CompanyRef,
    Criterion,
    District,
    Employment,
    Expert,
    ExpertKind,
    ExpertStatus,
    Penalty,
    Person,
    Project,
    Province,
    Quota,
    Relative,
    Room,
    ScoringMethod,
    ScoringMethodName,
    Site,
    SiteRole,
    Venue,
    Window,
    Workstation,
)
from coordinator.domain.rules import packaged_rules
from evalgrid.request_fields import ID_RE as WIRE_ID_RE

__all__ = [
    "CREDIT_CODE_RE",
    "ID_RE",
    "SPECIALTY_RE",
    "FieldError",
    "JsonDict",
    "RecordError",
    "city_from_dict",
    "city_to_dict",
    "company_from_dict",
    "company_to_dict",
    "expert_from_dict",
    "expert_from_stored",
    "expert_to_dict",
    "expert_to_stored",
    "is_specialty_code",
    "project_from_dict",
    "project_to_dict",
    "province_to_dicts",
    "site_from_dict",
    "site_to_dict",
]

JsonDict = dict[str, Any]
T = TypeVar("T")

ID_RE = WIRE_ID_RE  # the ids of the files are the ids of the wire (evalgrid.request_fields)
# Top class W (works), G (goods) or S (services), then up to four levels of two digits.
SPECIALTY_RE = re.compile(r"[WGS](?:\.[0-9]{2}){0,4}")
# Unified social credit code (GB 32100-2015): 18 characters, digits and capitals except I O S V Z.
CREDIT_CODE_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

TOTAL_POINTS = Decimal(100)
# Minimum price weight (points of 100) under comprehensive scoring, by category: the rules file.
MIN_PRICE_WEIGHT: Mapping[str, Decimal] = packaged_rules().scoring.min_price_weight
# Committee sizes likewise (the draw checks them again against the rules in force).
_RULES = packaged_rules()

_CATEGORY: dict[str, Category] = {c: c for c in CATEGORIES}
_KIND: dict[str, ExpertKind] = {k: k for k in EXPERT_KINDS}
_STATUS: dict[str, ExpertStatus] = {s: s for s in EXPERT_STATUSES}
_ROLE: dict[str, SiteRole] = {r: r for r in SITE_ROLES}
_METHOD: dict[str, ScoringMethodName] = {m: m for m in SCORING_METHODS}
_RELATION: dict[str, str] = {r: r for r in RELATIONS}


def is_specialty_code(code: str) -> bool:
    """Whether `code` is a hierarchical specialty code such as ``W.01.03``."""
    return SPECIALTY_RE.fullmatch(code) is not None


# --- errors --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, located by a dotted path (``quotas[0].count``)."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class RecordError(ValueError):
    """A record failed validation; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(err) for err in self.errors))


class _Errors:
    """Collects field errors while a record is read, so all of them are reported at once."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append(FieldError(path, reason))

    def check(self) -> None:
        if self.items:
            raise RecordError(self.items)


class _Missing:
    __slots__ = ()


_MISSING = _Missing()


def _at(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _got(value: object) -> str:
    return f"got {_type_name(value)}"


def _done(value: T | None) -> T:
    """Unwrap a value that is known to be present because the record had no errors."""
    assert value is not None, "validated field missing"
    return value


# --- field readers -------------------------------------------------------------------------
# Each reader reports its own problem under the field's path and returns a placeholder (or None)
# so reading carries on; a record is only built once no problem was reported.


class _Shape:
    """The fields an object may carry: required ones must be present, unknown ones are errors."""

    __slots__ = ("allowed", "required")

    def __init__(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        self.required = required
        self.allowed = frozenset(required + optional)


def _obj(e: _Errors, value: object, path: str, shape: _Shape) -> Mapping[str, Any] | None:
    # `dict` first: the ABC check is slow and JSON objects decode to dicts.
    if not (type(value) is dict or isinstance(value, Mapping)):
        e.add(path, f"expected an object, {_got(value)}")
        return None
    for key in shape.required:
        if key not in value:
            e.add(_at(path, key), "required field missing")
    for key in value:
        if key not in shape.allowed:
            e.add(_at(path, str(key)), "unknown field")
    return value


def _str(
    e: _Errors,
    d: Mapping[str, Any],
    key: str,
    pre: str,
    *,
    empty_ok: bool = False,
    default: str = "",
) -> str:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not str:
        e.add(_at(pre, key), f"expected a string, {_got(v)}")
        return default
    if not empty_ok and not v.strip():
        e.add(_at(pre, key), "must not be empty")
        return default
    return v


def _opt_str(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    return _str(e, d, key, pre)


def _city(e: _Errors, d: Mapping[str, Any], key: str, pre: str, default: str = "") -> str:
    # Cities repeat across hundreds of thousands of records: share one string object.
    return sys.intern(_str(e, d, key, pre, default=default))


def _id_value(e: _Errors, v: object, path: str) -> str:
    if type(v) is not str:
        e.add(path, f"expected an id string, {_got(v)}")
        return ""
    if ID_RE.fullmatch(v) is None:
        e.add(path, f"not an id (1-64 characters of A-Z a-z 0-9 . _ -): {v!r}")
        return ""
    return v


def _id(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> str:
    v = d.get(key, _MISSING)
    return "" if v is _MISSING else _id_value(e, v, _at(pre, key))


def _opt_id(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> str | None:
    v = d.get(key)
    return None if v is None else _id_value(e, v, _at(pre, key))


def _int(
    e: _Errors, d: Mapping[str, Any], key: str, pre: str, default: int | None = None
) -> int | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not int:
        e.add(_at(pre, key), f"expected an integer, {_got(v)}")
        return None
    return v


def _bool(e: _Errors, d: Mapping[str, Any], key: str, pre: str, default: bool = False) -> bool:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not bool:
        e.add(_at(pre, key), f"expected true or false, {_got(v)}")
        return default
    return v


def _decimal(
    e: _Errors, d: Mapping[str, Any], key: str, pre: str, default: Decimal | None = None
) -> Decimal | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is int:
        return Decimal(v)
    if type(v) is float:
        e.add(
            _at(pre, key),
            f'floats are inexact: write the number as a string, e.g. "{v!r}"',
        )
        return None
    if type(v) is not str:
        e.add(_at(pre, key), f"expected a decimal string, {_got(v)}")
        return None
    if _DECIMAL_RE.fullmatch(v) is None:
        e.add(_at(pre, key), f"not a decimal number (like 123.45): {v!r}")
        return None
    return Decimal(v)


def _date_value(e: _Errors, v: object, path: str) -> date | None:
    if type(v) is not str:
        e.add(path, f"expected a date string (YYYY-MM-DD), {_got(v)}")
        return None
    if _DATE_RE.fullmatch(v) is not None:
        try:
            return date.fromisoformat(v)
        except ValueError:
            pass
    e.add(path, f"not a date (YYYY-MM-DD): {v!r}")
    return None


def _date(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> date | None:
    v = d.get(key, _MISSING)
    return None if v is _MISSING else _date_value(e, v, _at(pre, key))


def _datetime(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> datetime | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return None
    path = _at(pre, key)
    if type(v) is not str:
        e.add(path, f"expected an ISO 8601 datetime string, {_got(v)}")
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        e.add(path, f"not an ISO 8601 datetime (like 2025-03-04T09:00:00+08:00): {v!r}")
        return None
    if dt.tzinfo is None or dt.utcoffset() is None:
        e.add(path, f"datetime without a UTC offset (add Z or +08:00): {v!r}")
        return None
    return dt.astimezone(UTC)


def _enum(
    e: _Errors, d: Mapping[str, Any], key: str, pre: str, table: Mapping[str, T], default: T
) -> T:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not str or v not in table:
        shown = repr(v) if type(v) is str else _type_name(v)
        e.add(_at(pre, key), f"not one of {', '.join(table)}: {shown}")
        return default
    return table[v]


def _list(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> list[Any]:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return []
    if not isinstance(v, list):
        e.add(_at(pre, key), f"expected an array, {_got(v)}")
        return []
    return v


def _strings(
    e: _Errors, d: Mapping[str, Any], key: str, pre: str, *, intern: bool = False
) -> list[str]:
    """A list of non-empty, distinct strings."""
    out: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(_list(e, d, key, pre)):
        path = f"{_at(pre, key)}[{i}]"
        if type(v) is not str:
            e.add(path, f"expected a string, {_got(v)}")
        elif not v.strip():
            e.add(path, "must not be empty")
        elif v in seen:
            e.add(path, f"duplicate value {v!r}")
        else:
            seen.add(v)
            out.append(sys.intern(v) if intern else v)
    return out


def _specialties(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> list[str]:
    out: list[str] = []
    for i, code in enumerate(_strings(e, d, key, pre, intern=True)):
        if SPECIALTY_RE.fullmatch(code) is None:
            e.add(f"{_at(pre, key)}[{i}]", _bad_specialty(code))
        out.append(code)
    return out


def _bad_specialty(code: str) -> str:
    return (
        f"not a specialty code (W, G or S, then up to four 2-digit levels, e.g. W.01.03): {code!r}"
    )


def _money(e: _Errors, d: Mapping[str, Any], key: str, pre: str) -> Decimal | None:
    v = _decimal(e, d, key, pre)
    if v is None:
        return None
    if v <= 0:
        e.add(_at(pre, key), f"must be positive: {v}")
        return None
    exponent = v.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        e.add(_at(pre, key), f"at most 2 decimal places (yuan and fen): {v}")
        return None
    return v


def _check_unique_id(e: _Errors, seen: dict[str, str], ident: str, path: str, what: str) -> None:
    if not ident:
        return
    first = seen.get(ident)
    if first is None:
        seen[ident] = path
    else:
        e.add(path, f"duplicate {what} id {ident!r} (also at {first})")


def _dec_str(value: Decimal) -> str:
    # Fixed-point text: never an exponent, so the reader's plain-decimal rule accepts it.
    return format(value, "f")


def _dt_str(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime cannot be stored: {value!r}")
    return value.astimezone(UTC).isoformat()


# --- cities --------------------------------------------------------------------------------

_CITY = _Shape(("name",), ("aliases", "districts"))
_DISTRICT = _Shape(("name",), ("aliases",))


def city_to_dict(city: City) -> JsonDict:
    """The city with its aliases and districts (each with its aliases)."""
    return {
        "name": city.name,
        "aliases": list(city.aliases),
        "districts": [{"name": d.name, "aliases": list(d.aliases)} for d in city.districts],
    }


def city_from_dict(data: object) -> City:
    """Validate and build a city of the registry; raises `RecordError` listing every problem."""
    e = _Errors()
    d = _obj(e, data, "", _CITY)
    if d is None:
        raise RecordError(e.items)
    name = _str(e, d, "name", "")
    aliases = _strings(e, d, "aliases", "")
    districts: list[District] = []
    for i, raw in enumerate(_list(e, d, "districts", "")):
        path = f"districts[{i}]"
        dd = _obj(e, raw, path, _DISTRICT)
        if dd is None:
            continue
        districts.append(District(_str(e, dd, "name", path),
                                  tuple(_strings(e, dd, "aliases", path))))
    if e.items:
        raise RecordError(e.items)
    return City(name, tuple(aliases), tuple(districts))


# --- sites ---------------------------------------------------------------------------------

_SITE = _Shape(("id", "name", "city", "roles", "venues"))
_VENUE = _Shape(("id", "name", "rooms"), ("city",))
_ROOM = _Shape(("id", "name", "workstations"))
_WORKSTATION = _Shape(("id",), ("attributes",))


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
    e = _Errors()
    d = _obj(e, data, "", _SITE)
    if d is None:
        raise RecordError(e.items)
    site_id = _id(e, d, "id", "")
    name = _str(e, d, "name", "")
    city = _city(e, d, "city", "")
    roles: set[SiteRole] = set()
    for i, role in enumerate(_strings(e, d, "roles", "")):
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
    for vi, vraw in enumerate(_list(e, d, "venues", "")):
        vp = f"venues[{vi}]"
        vd = _obj(e, vraw, vp, _VENUE)
        if vd is None:
            continue
        venue_id = _id(e, vd, "id", vp)
        _check_unique_id(e, seen_venue, venue_id, _at(vp, "id"), "venue")
        rooms: list[Room] = []
        for ri, rraw in enumerate(_list(e, vd, "rooms", vp)):
            rp = f"{vp}.rooms[{ri}]"
            rd = _obj(e, rraw, rp, _ROOM)
            if rd is None:
                continue
            room_id = _id(e, rd, "id", rp)
            _check_unique_id(e, seen_room, room_id, _at(rp, "id"), "room")
            stations: list[Workstation] = []
            for wi, wraw in enumerate(_list(e, rd, "workstations", rp)):
                wp = f"{rp}.workstations[{wi}]"
                wd = _obj(e, wraw, wp, _WORKSTATION)
                if wd is None:
                    continue
                ws_id = _id(e, wd, "id", wp)
                _check_unique_id(e, seen_ws, ws_id, _at(wp, "id"), "workstation")
                attributes = frozenset(_strings(e, wd, "attributes", wp, intern=True))
                stations.append(Workstation(ws_id, site_id, venue_id, room_id, attributes))
            if not stations and "workstations" in rd:
                e.add(_at(rp, "workstations"), "a room needs at least one workstation")
            n_workstations += len(stations)
            rooms.append(Room(room_id, venue_id, _str(e, rd, "name", rp), tuple(stations)))
        if not rooms and "rooms" in vd:
            e.add(_at(vp, "rooms"), "a venue needs at least one room")
        venue_name = _str(e, vd, "name", vp)
        venue_city = _city(e, vd, "city", vp, default=city)
        venues.append(Venue(venue_id, site_id, venue_name, venue_city, tuple(rooms)))
    if "guest" in roles and n_workstations == 0 and len(e.items) == errors_before_venues:
        e.add("venues", "a guest site needs at least one venue with a workstation")
    e.check()
    return Site(site_id, name, city, frozenset(roles), tuple(venues))


# --- companies -----------------------------------------------------------------------------

_PERSON = _Shape(("person_id", "name"))
_COMPANY = _Shape(
    ("id", "name", "legal_rep"), ("credit_code", "group_id", "principal", "key_staff")
)
_COMPANY_REF = _Shape(("name",), ("credit_code",))


def _person_to_dict(person: Person) -> JsonDict:
    return {"person_id": person.person_id, "name": person.name}


def _person(e: _Errors, value: object, path: str) -> Person:
    d = _obj(e, value, path, _PERSON)
    if d is None:
        return Person("", "")
    return Person(_id(e, d, "person_id", path), _str(e, d, "name", path))


def _credit_code(e: _Errors, d: Mapping[str, Any], pre: str) -> str | None:
    code = _opt_str(e, d, "credit_code", pre)
    if code is not None and CREDIT_CODE_RE.fullmatch(code) is None:
        e.add(
            _at(pre, "credit_code"),
            "not a unified social credit code (18 characters: digits and capitals "
            f"except I, O, S, V, Z): {code!r}",
        )
        return None
    return code


def _ref_to_dict(ref: CompanyRef) -> JsonDict:
    return {"name": ref.name, "credit_code": ref.credit_code}


def _ref(e: _Errors, value: object, path: str) -> CompanyRef:
    d = _obj(e, value, path, _COMPANY_REF)
    if d is None:
        return CompanyRef("")
    code = _credit_code(e, d, path)
    # A bare credit code identifies the company, so the name may then be empty.
    name = _str(e, d, "name", path, empty_ok=code is not None)
    return CompanyRef(name, code)


def _refs(e: _Errors, d: Mapping[str, Any], key: str) -> tuple[CompanyRef, ...]:
    return tuple(_ref(e, v, f"{key}[{i}]") for i, v in enumerate(_list(e, d, key, "")))


def company_to_dict(company: Company) -> JsonDict:
    """A registry company with its legal representative, principal and key staff."""
    return {
        "id": company.id,
        "name": company.name,
        "credit_code": company.credit_code,
        "group_id": company.group_id,
        "legal_rep": _person_to_dict(company.legal_rep),
        "principal": None if company.principal is None else _person_to_dict(company.principal),
        "key_staff": [_person_to_dict(p) for p in company.key_staff],
    }


def company_from_dict(data: object) -> Company:
    """Validate and build a company; raises `RecordError` listing every problem."""
    e = _Errors()
    d = _obj(e, data, "", _COMPANY)
    if d is None:
        raise RecordError(e.items)
    company_id = _id(e, d, "id", "")
    name = _str(e, d, "name", "")
    code = _credit_code(e, d, "")
    group_id = _opt_id(e, d, "group_id", "")
    legal_rep = _person(e, d.get("legal_rep"), "legal_rep") if "legal_rep" in d else None
    principal = None if d.get("principal") is None else _person(e, d["principal"], "principal")
    staff = tuple(
        _person(e, v, f"key_staff[{i}]") for i, v in enumerate(_list(e, d, "key_staff", ""))
    )
    e.check()
    return Company(company_id, name, code, group_id, _done(legal_rep), principal, staff)


# --- experts -------------------------------------------------------------------------------

_EXPERT = _Shape(
    (
        "id",
        "name",
        "id_number",
        "phone",
        "city",
        "work_city",
        "birth_date",
        "kind",
        "specialties",
    ),
    (
        "status",
        "employments",
        "interests",
        "relatives",
        "departments",
        "declared_conflicts",
        "penalties",
        "catchment",
    ),
)
# The registry's form of an expert: the personal data only inside the sealed box "pii".
_EXPERT_STORED = _Shape(
    (*(k for k in _EXPERT.required if k not in ("id_number", "phone")), "pii"),
    tuple(sorted(_EXPERT.allowed - set(_EXPERT.required))),
)
_EMPLOYMENT = _Shape(("company", "start"), ("end",))
_RELATIVE = _Shape(("person_id", "name", "relation"))
_PENALTY = _Shape(("on", "reason"))


def expert_to_dict(expert: Expert) -> JsonDict:
    """An expert record, personal data included (the store seals it at rest, not the file)."""
    return {
        "id": expert.id,
        "name": expert.name,
        "id_number": expert.id_number,
        "phone": expert.phone,
        "city": expert.city,
        "work_city": expert.work_city,
        "birth_date": expert.birth_date.isoformat(),
        "kind": expert.kind,
        "specialties": list(expert.specialties),
        "status": expert.status,
        "employments": [
            {
                "company": _ref_to_dict(emp.company),
                "start": emp.start.isoformat(),
                "end": None if emp.end is None else emp.end.isoformat(),
            }
            for emp in expert.employments
        ],
        "interests": [_ref_to_dict(ref) for ref in expert.interests],
        "relatives": [
            {"person_id": r.person_id, "name": r.name, "relation": r.relation}
            for r in expert.relatives
        ],
        "departments": list(expert.departments),
        "declared_conflicts": [_ref_to_dict(ref) for ref in expert.declared_conflicts],
        "penalties": [{"on": p.on.isoformat(), "reason": p.reason} for p in expert.penalties],
        "catchment": list(expert.catchment),
    }


def _employment(e: _Errors, value: object, path: str) -> Employment | None:
    d = _obj(e, value, path, _EMPLOYMENT)
    if d is None:
        return None
    company = _ref(e, d.get("company"), _at(path, "company")) if "company" in d else None
    start = _date(e, d, "start", path)
    end_raw = d.get("end")
    end = None if end_raw is None else _date_value(e, end_raw, _at(path, "end"))
    if start is not None and end is not None and end < start:
        e.add(_at(path, "end"), f"employment ends ({end}) before it starts ({start})")
    if company is None or start is None:
        return None
    return Employment(company, start, end)


def _relative(e: _Errors, value: object, path: str) -> Relative | None:
    d = _obj(e, value, path, _RELATIVE)
    if d is None:
        return None
    return Relative(
        _id(e, d, "person_id", path),
        _str(e, d, "name", path),
        _enum(e, d, "relation", path, _RELATION, ""),
    )


def _penalty(e: _Errors, value: object, path: str) -> Penalty | None:
    d = _obj(e, value, path, _PENALTY)
    if d is None:
        return None
    on = _date(e, d, "on", path)
    reason = _str(e, d, "reason", path)
    return None if on is None else Penalty(on, reason)


def expert_to_stored(expert: Expert, sealed_pii: str) -> JsonDict:
    """The registry's record of an expert: no ID or phone number, only their sealed box."""
    record = expert_to_dict(expert)
    del record["id_number"], record["phone"]
    record["pii"] = sealed_pii
    return record


def expert_from_stored(data: object) -> tuple[Expert, str]:
    """An expert from the registry (ID and phone number left empty) and its sealed box."""
    expert = expert_from_dict(data, stored=True)
    sealed = data.get("pii") if isinstance(data, Mapping) else None
    if not isinstance(sealed, str) or not sealed:
        raise RecordError([FieldError("pii", "expected the sealed personal data")])
    return expert, sealed


def expert_from_dict(data: object, *, stored: bool = False) -> Expert:
    """Validate and build an expert; raises `RecordError` listing every problem.

    ``stored`` reads the registry's form (`expert_to_stored`): the personal data stays sealed
    and the expert's ``id_number`` and ``phone`` are empty.
    """
    e = _Errors()
    d = _obj(e, data, "", _EXPERT_STORED if stored else _EXPERT)
    if d is None:
        raise RecordError(e.items)
    expert_id = _id(e, d, "id", "")
    name = _str(e, d, "name", "")
    id_number = "" if stored else _str(e, d, "id_number", "")
    phone = "" if stored else _str(e, d, "phone", "")
    city = _city(e, d, "city", "")
    work_city = _city(e, d, "work_city", "")
    birth_date = _date(e, d, "birth_date", "")
    kind = _enum(e, d, "kind", "", _KIND, "technical")
    specialties = _specialties(e, d, "specialties", "")
    if "specialties" in d and isinstance(d["specialties"], list) and not d["specialties"]:
        e.add("specialties", "an expert needs at least one specialty code")
    status = _enum(e, d, "status", "", _STATUS, "active")
    employments = [
        _employment(e, v, f"employments[{i}]") for i, v in enumerate(_list(e, d, "employments", ""))
    ]
    interests = _refs(e, d, "interests")
    relatives = [
        _relative(e, v, f"relatives[{i}]") for i, v in enumerate(_list(e, d, "relatives", ""))
    ]
    departments = _strings(e, d, "departments", "", intern=True)
    conflicts = _refs(e, d, "declared_conflicts")
    penalties = [
        _penalty(e, v, f"penalties[{i}]") for i, v in enumerate(_list(e, d, "penalties", ""))
    ]
    catchment = _strings(e, d, "catchment", "", intern=True)
    e.check()
    return Expert(
        id=expert_id,
        name=name,
        id_number=id_number,
        phone=phone,
        city=city,
        work_city=work_city,
        birth_date=_done(birth_date),
        kind=kind,
        specialties=tuple(specialties),
        status=status,
        employments=tuple(_done(x) for x in employments),
        interests=interests,
        relatives=tuple(_done(x) for x in relatives),
        departments=tuple(departments),
        declared_conflicts=conflicts,
        penalties=tuple(_done(x) for x in penalties),
        catchment=tuple(catchment),
    )


# --- projects ------------------------------------------------------------------------------

_PROJECT = _Shape(
    (
        "id",
        "name",
        "host_site_id",
        "city",
        "tenderer_id",
        "category",
        "committee_size",
        "quotas",
        "window",
        "scoring",
        "bids",
    ),
    ("competent_department", "tenderer_reps", "double_blind", "large"),
)
_QUOTA = _Shape(("specialty", "count"), ("kind",))
_WINDOW = _Shape(("start", "end"))
_SCORING = _Shape(
    ("method", "price_weight", "criteria"), ("deduction_per_point", "deviation_threshold")
)
_CRITERION = _Shape(("id", "name", "max_score"), ("objective",))
_BID = _Shape(("bidder_id", "price"), ("valid",))

_DEFAULT_DEDUCTION = Decimal("1")
_DEFAULT_DEVIATION = Decimal("0.30")


def project_to_dict(project: Project) -> JsonDict:
    """A registered project: parties, committee make-up, window (UTC) and scoring method."""
    scoring = project.scoring
    return {
        "id": project.id,
        "name": project.name,
        "host_site_id": project.host_site_id,
        "city": project.city,
        "tenderer_id": project.tenderer_id,
        "category": project.category,
        "committee_size": project.committee_size,
        "tenderer_reps": project.tenderer_reps,
        "large": project.large,
        "quotas": [
            {"specialty": q.specialty, "count": q.count, "kind": q.kind} for q in project.quotas
        ],
        "window": {"start": _dt_str(project.window.start), "end": _dt_str(project.window.end)},
        "scoring": {
            "method": scoring.method,
            "price_weight": _dec_str(scoring.price_weight),
            "criteria": [
                {
                    "id": c.id,
                    "name": c.name,
                    "max_score": _dec_str(c.max_score),
                    "objective": c.objective,
                }
                for c in scoring.criteria
            ],
            "deduction_per_point": _dec_str(scoring.deduction_per_point),
            "deviation_threshold": _dec_str(scoring.deviation_threshold),
        },
        "bids": [
            {"bidder_id": b.bidder_id, "price": _dec_str(b.price), "valid": b.valid}
            for b in project.bids
        ],
        "competent_department": project.competent_department,
        "double_blind": project.double_blind,
    }


def _quotas(e: _Errors, d: Mapping[str, Any]) -> list[Quota] | None:
    """The quotas, or None when any count is unusable (the committee sum is then not checked)."""
    out: list[Quota] = []
    complete = True
    seen: dict[tuple[str, str | None], int] = {}
    raw = _list(e, d, "quotas", "")
    if "quotas" in d and isinstance(d["quotas"], list) and not raw:
        e.add("quotas", "a project needs at least one quota")
    for i, v in enumerate(raw):
        path = f"quotas[{i}]"
        qd = _obj(e, v, path, _QUOTA)
        if qd is None:
            complete = False
            continue
        specialty = _str(e, qd, "specialty", path)
        if specialty and SPECIALTY_RE.fullmatch(specialty) is None:
            e.add(_at(path, "specialty"), _bad_specialty(specialty))
        count = _int(e, qd, "count", path)
        if count is not None and count < 1:
            e.add(_at(path, "count"), f"must be at least 1: {count}")
            count = None
        kind = None if qd.get("kind") is None else _enum(e, qd, "kind", path, _KIND, "technical")
        key = (specialty, kind)
        if specialty and key in seen:
            e.add(path, f"duplicate quota for {specialty!r} ({kind}), also at quotas[{seen[key]}]")
        seen.setdefault(key, i)
        if count is None:
            complete = False
            continue
        out.append(Quota(sys.intern(specialty), count, kind))
    return out if complete else None


def _scoring(e: _Errors, value: object, category: Category | None) -> ScoringMethod | None:
    d = _obj(e, value, "scoring", _SCORING)
    if d is None:
        return None
    pre = "scoring"
    method = _enum(e, d, "method", pre, _METHOD, None)
    weight = _decimal(e, d, "price_weight", pre)
    if weight is not None and not Decimal(0) <= weight <= TOTAL_POINTS:
        e.add("scoring.price_weight", f"must be between 0 and 100 points: {weight}")
        weight = None
    criteria: list[Criterion] = []
    seen: dict[str, str] = {}
    points_known = True
    for i, v in enumerate(_list(e, d, "criteria", pre)):
        path = f"scoring.criteria[{i}]"
        cd = _obj(e, v, path, _CRITERION)
        if cd is None:
            points_known = False
            continue
        crit_id = _id(e, cd, "id", path)
        _check_unique_id(e, seen, crit_id, _at(path, "id"), "criterion")
        max_score = _decimal(e, cd, "max_score", path)
        if max_score is not None and max_score <= 0:
            e.add(_at(path, "max_score"), f"must be positive: {max_score}")
            max_score = None
        if max_score is None:
            points_known = False
            continue
        crit_name = _str(e, cd, "name", path)
        objective = _bool(e, cd, "objective", path)
        criteria.append(Criterion(crit_id, crit_name, max_score, objective))
    deduction = _decimal(e, d, "deduction_per_point", pre, _DEFAULT_DEDUCTION)
    if deduction is not None and deduction <= 0:
        e.add("scoring.deduction_per_point", f"must be positive: {deduction}")
    threshold = _decimal(e, d, "deviation_threshold", pre, _DEFAULT_DEVIATION)
    if threshold is not None and not Decimal(0) < threshold <= 1:
        e.add("scoring.deviation_threshold", f"must be above 0 and at most 1: {threshold}")

    if method in ("comprehensive", "works") and weight is not None and points_known:
        total = weight + sum((c.max_score for c in criteria), Decimal(0))
        if total != TOTAL_POINTS:
            e.add(
                "scoring",
                f"price_weight ({weight}) + criteria max_score ({total - weight}) must total "
                f"100 points, got {total}",
            )
    if (
        method == "comprehensive"
        and weight is not None
        and category is not None
        and category in MIN_PRICE_WEIGHT
    ):
        least = MIN_PRICE_WEIGHT[category]
        if weight < least:
            e.add(
                "scoring.price_weight",
                f"{category}: price weight must be at least {least} of 100 points, got {weight}",
            )
    if method == "works" and category is not None and category != "works":
        e.add("scoring.method", f"the works method applies to works projects only, not {category}")
    if method is None or weight is None or deduction is None or threshold is None:
        return None
    return ScoringMethod(method, weight, tuple(criteria), deduction, threshold)


def project_from_dict(data: object) -> Project:
    """Validate and build a project; raises `RecordError` listing every problem.

    Checks that need other records (the host site, the companies) or the expert pool (how many
    technical and economic members) belong to the importer and the committee rules.
    """
    e = _Errors()
    d = _obj(e, data, "", _PROJECT)
    if d is None:
        raise RecordError(e.items)
    project_id = _id(e, d, "id", "")
    name = _str(e, d, "name", "")
    host_site_id = _id(e, d, "host_site_id", "")
    city = _city(e, d, "city", "")
    tenderer_id = _id(e, d, "tenderer_id", "")
    category: Category | None = _enum(e, d, "category", "", _CATEGORY, None)

    large = _bool(e, d, "large", "")
    size = _int(e, d, "committee_size", "")
    if size is not None:
        least, least_large = _RULES.min_committee, _RULES.min_large_committee
        if size < least or size % 2 == 0:
            e.add("committee_size", f"must be odd and at least {least}: {size}")
            size = None
        elif large and size < least_large:
            e.add("committee_size", f"a large, complex purchase needs at least {least_large} "
                                    f"members: {size}")
    reps = _int(e, d, "tenderer_reps", "", 0)
    if reps is not None and reps < 0:
        e.add("tenderer_reps", f"must not be negative: {reps}")
        reps = None
    quotas = _quotas(e, d)
    if size is not None and reps is not None and quotas:
        drawn = sum(q.count for q in quotas)
        if drawn + reps != size:
            e.add(
                "quotas",
                f"quota counts ({drawn}) + tenderer_reps ({reps}) must equal "
                f"committee_size ({size})",
            )

    window: Window | None = None
    if "window" in d:
        wd = _obj(e, d["window"], "window", _WINDOW)
        if wd is not None:
            start = _datetime(e, wd, "start", "window")
            end = _datetime(e, wd, "end", "window")
            if start is not None and end is not None:
                if end <= start:
                    e.add("window.end", f"must be after window.start ({_dt_str(start)})")
                window = Window(start, end)
    scoring = _scoring(e, d["scoring"], category) if "scoring" in d else None

    bids: list[Bid] = []
    seen_bidders: dict[str, int] = {}
    raw_bids = _list(e, d, "bids", "")
    if "bids" in d and isinstance(d["bids"], list) and not raw_bids:
        e.add("bids", "a project needs at least one bid")
    for i, v in enumerate(raw_bids):
        path = f"bids[{i}]"
        bd = _obj(e, v, path, _BID)
        if bd is None:
            continue
        bidder = _id(e, bd, "bidder_id", path)
        if bidder and bidder in seen_bidders:
            first = seen_bidders[bidder]
            e.add(f"{path}.bidder_id", f"duplicate bidder {bidder!r}, also at bids[{first}]")
        elif bidder and bidder == tenderer_id:
            e.add(f"{path}.bidder_id", f"the tenderer {bidder!r} cannot bid on its own project")
        seen_bidders.setdefault(bidder, i)
        price = _money(e, bd, "price", path)
        valid = _bool(e, bd, "valid", path, True)
        if price is not None:
            bids.append(Bid(bidder, price, valid))

    department = _str(e, d, "competent_department", "", empty_ok=True)
    double_blind = _bool(e, d, "double_blind", "")
    e.check()
    return Project(
        id=project_id,
        name=name,
        host_site_id=host_site_id,
        city=city,
        tenderer_id=tenderer_id,
        category=_done(category),
        committee_size=_done(size),
        quotas=tuple(_done(quotas)),
        window=_done(window),
        scoring=_done(scoring),
        bids=tuple(bids),
        competent_department=department,
        tenderer_reps=_done(reps),
        double_blind=double_blind,
        large=large,
    )


# --- the whole province --------------------------------------------------------------------


def province_to_dicts(province: Province) -> dict[str, list[JsonDict]]:
    """Every record of the province as dicts, keyed by kind, in the province's own order."""
    return {
        "sites": [site_to_dict(s) for s in province.sites],
        "companies": [company_to_dict(c) for c in province.companies],
        "experts": [expert_to_dict(x) for x in province.experts],
        "projects": [project_to_dict(p) for p in province.projects],
    }
