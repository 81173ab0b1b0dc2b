"""Experts: the record as imported, and the registry's form with personal data sealed."""

from __future__ import annotations

from collections.abc import Mapping

from coordinator.domain.model import (
    EXPERT_KINDS,
    EXPERT_STATUSES,
    RELATIONS,
    Employment,
    Expert,
    ExpertKind,
    ExpertStatus,
    Penalty,
    Relative,
)
from coordinator.province.codec.companies import read_ref, read_refs, ref_to_dict
from coordinator.province.codec.fields import (
    Errors,
    FieldError,
    JsonDict,
    RecordError,
    Shape,
    date_value,
    path_at,
    present,
    read_city,
    read_date,
    read_enum,
    read_id,
    read_list,
    read_obj,
    read_specialties,
    read_str,
    read_strings,
)

_KIND: dict[str, ExpertKind] = {k: k for k in EXPERT_KINDS}
_STATUS: dict[str, ExpertStatus] = {s: s for s in EXPERT_STATUSES}
_RELATION: dict[str, str] = {r: r for r in RELATIONS}


# --- experts -------------------------------------------------------------------------------

_EXPERT = Shape(
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
_EXPERT_STORED = Shape(
    (*(k for k in _EXPERT.required if k not in ("id_number", "phone")), "pii"),
    tuple(sorted(_EXPERT.allowed - set(_EXPERT.required))),
)
_EMPLOYMENT = Shape(("company", "start"), ("end",))
_RELATIVE = Shape(("person_id", "name", "relation"))
_PENALTY = Shape(("on", "reason"))


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
                "company": ref_to_dict(emp.company),
                "start": emp.start.isoformat(),
                "end": None if emp.end is None else emp.end.isoformat(),
            }
            for emp in expert.employments
        ],
        "interests": [ref_to_dict(ref) for ref in expert.interests],
        "relatives": [
            {"person_id": r.person_id, "name": r.name, "relation": r.relation}
            for r in expert.relatives
        ],
        "departments": list(expert.departments),
        "declared_conflicts": [ref_to_dict(ref) for ref in expert.declared_conflicts],
        "penalties": [{"on": p.on.isoformat(), "reason": p.reason} for p in expert.penalties],
        "catchment": list(expert.catchment),
    }


def _employment(e: Errors, value: object, path: str) -> Employment | None:
    d = read_obj(e, value, path, _EMPLOYMENT)
    if d is None:
        return None
    company = read_ref(e, d.get("company"), path_at(path, "company")) if "company" in d else None
    start = read_date(e, d, "start", path)
    end_raw = d.get("end")
    end = None if end_raw is None else date_value(e, end_raw, path_at(path, "end"))
    if start is not None and end is not None and end < start:
        e.add(path_at(path, "end"), f"employment ends ({end}) before it starts ({start})")
    if company is None or start is None:
        return None
    return Employment(company, start, end)


def _relative(e: Errors, value: object, path: str) -> Relative | None:
    d = read_obj(e, value, path, _RELATIVE)
    if d is None:
        return None
    return Relative(
        read_id(e, d, "person_id", path),
        read_str(e, d, "name", path),
        read_enum(e, d, "relation", path, _RELATION, ""),
    )


def _penalty(e: Errors, value: object, path: str) -> Penalty | None:
    d = read_obj(e, value, path, _PENALTY)
    if d is None:
        return None
    on = read_date(e, d, "on", path)
    reason = read_str(e, d, "reason", path)
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
    e = Errors()
    d = read_obj(e, data, "", _EXPERT_STORED if stored else _EXPERT)
    if d is None:
        raise RecordError(e.items)
    expert_id = read_id(e, d, "id", "")
    name = read_str(e, d, "name", "")
    id_number = "" if stored else read_str(e, d, "id_number", "")
    phone = "" if stored else read_str(e, d, "phone", "")
    city = read_city(e, d, "city", "")
    work_city = read_city(e, d, "work_city", "")
    birth_date = read_date(e, d, "birth_date", "")
    kind = read_enum(e, d, "kind", "", _KIND, "technical")
    specialties = read_specialties(e, d, "specialties", "")
    if "specialties" in d and isinstance(d["specialties"], list) and not d["specialties"]:
        e.add("specialties", "an expert needs at least one specialty code")
    status = read_enum(e, d, "status", "", _STATUS, "active")
    employments = [
        _employment(e, v, f"employments[{i}]")
        for i, v in enumerate(read_list(e, d, "employments", ""))
    ]
    interests = read_refs(e, d, "interests")
    relatives = [
        _relative(e, v, f"relatives[{i}]") for i, v in enumerate(read_list(e, d, "relatives", ""))
    ]
    departments = read_strings(e, d, "departments", "", intern=True)
    conflicts = read_refs(e, d, "declared_conflicts")
    penalties = [
        _penalty(e, v, f"penalties[{i}]") for i, v in enumerate(read_list(e, d, "penalties", ""))
    ]
    catchment = read_strings(e, d, "catchment", "", intern=True)
    e.check()
    return Expert(
        id=expert_id,
        name=name,
        id_number=id_number,
        phone=phone,
        city=city,
        work_city=work_city,
        birth_date=present(birth_date),
        kind=kind,
        specialties=tuple(specialties),
        status=status,
        employments=tuple(present(x) for x in employments),
        interests=interests,
        relatives=tuple(present(x) for x in relatives),
        departments=tuple(departments),
        declared_conflicts=conflicts,
        penalties=tuple(present(x) for x in penalties),
        catchment=tuple(catchment),
    )
