"""Companies, the people who lead them, and references to a company by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coordinator.domain.model import (
    Company,
    CompanyRef,
    Person,
)
from coordinator.province.codec.fields import (
    CREDIT_CODE_RE,
    Errors,
    JsonDict,
    RecordError,
    Shape,
    path_at,
    present,
    read_id,
    read_list,
    read_obj,
    read_opt_id,
    read_opt_str,
    read_str,
)

# --- companies -----------------------------------------------------------------------------

_PERSON = Shape(("person_id", "name"))
_COMPANY = Shape(
    ("id", "name", "legal_rep"), ("credit_code", "group_id", "principal", "key_staff")
)
_COMPANY_REF = Shape(("name",), ("credit_code",))


def _person_to_dict(person: Person) -> JsonDict:
    return {"person_id": person.person_id, "name": person.name}


def _person(e: Errors, value: object, path: str) -> Person:
    d = read_obj(e, value, path, _PERSON)
    if d is None:
        return Person("", "")
    return Person(read_id(e, d, "person_id", path), read_str(e, d, "name", path))


def _credit_code(e: Errors, d: Mapping[str, Any], pre: str) -> str | None:
    code = read_opt_str(e, d, "credit_code", pre)
    if code is not None and CREDIT_CODE_RE.fullmatch(code) is None:
        e.add(
            path_at(pre, "credit_code"),
            "not a unified social credit code (18 characters: digits and capitals "
            f"except I, O, S, V, Z): {code!r}",
        )
        return None
    return code


def ref_to_dict(ref: CompanyRef) -> JsonDict:
    return {"name": ref.name, "credit_code": ref.credit_code}


def read_ref(e: Errors, value: object, path: str) -> CompanyRef:
    d = read_obj(e, value, path, _COMPANY_REF)
    if d is None:
        return CompanyRef("")
    code = _credit_code(e, d, path)
    # A bare credit code identifies the company, so the name may then be empty.
    name = read_str(e, d, "name", path, empty_ok=code is not None)
    return CompanyRef(name, code)


def read_refs(e: Errors, d: Mapping[str, Any], key: str) -> tuple[CompanyRef, ...]:
    return tuple(read_ref(e, v, f"{key}[{i}]") for i, v in enumerate(read_list(e, d, key, "")))


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
    e = Errors()
    d = read_obj(e, data, "", _COMPANY)
    if d is None:
        raise RecordError(e.items)
    company_id = read_id(e, d, "id", "")
    name = read_str(e, d, "name", "")
    code = _credit_code(e, d, "")
    group_id = read_opt_id(e, d, "group_id", "")
    legal_rep = _person(e, d.get("legal_rep"), "legal_rep") if "legal_rep" in d else None
    principal = None if d.get("principal") is None else _person(e, d["principal"], "principal")
    staff = tuple(
        _person(e, v, f"key_staff[{i}]") for i, v in enumerate(read_list(e, d, "key_staff", ""))
    )
    e.check()
    return Company(company_id, name, code, group_id, present(legal_rep), principal, staff)
