"""Reading a record field by field: every problem reported under its dotted path.

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

from evalgrid.request_fields import ID_RE as WIRE_ID_RE

JsonDict = dict[str, Any]
T = TypeVar("T")

ID_RE = WIRE_ID_RE  # the ids of the files are the ids of the wire (evalgrid.request_fields)
# Top class W (works), G (goods) or S (services), then up to four levels of two digits.
SPECIALTY_RE = re.compile(r"[WGS](?:\.[0-9]{2}){0,4}")
# Unified social credit code (GB 32100-2015): 18 characters, digits and capitals except I O S V Z.
CREDIT_CODE_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")



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


class Errors:
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


def path_at(prefix: str, key: str) -> str:
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


def present(value: T | None) -> T:
    """Unwrap a value that is known to be present because the record had no errors."""
    assert value is not None, "validated field missing"
    return value


# --- field readers -------------------------------------------------------------------------
# Each reader reports its own problem under the field's path and returns a placeholder (or None)
# so reading carries on; a record is only built once no problem was reported.


class Shape:
    """The fields an object may carry: required ones must be present, unknown ones are errors."""

    __slots__ = ("allowed", "required")

    def __init__(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        self.required = required
        self.allowed = frozenset(required + optional)


def read_obj(e: Errors, value: object, path: str, shape: Shape) -> Mapping[str, Any] | None:
    # `dict` first: the ABC check is slow and JSON objects decode to dicts.
    if not (type(value) is dict or isinstance(value, Mapping)):
        e.add(path, f"expected an object, {_got(value)}")
        return None
    for key in shape.required:
        if key not in value:
            e.add(path_at(path, key), "required field missing")
    for key in value:
        if key not in shape.allowed:
            e.add(path_at(path, str(key)), "unknown field")
    return value


def read_str(
    e: Errors,
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
        e.add(path_at(pre, key), f"expected a string, {_got(v)}")
        return default
    if not empty_ok and not v.strip():
        e.add(path_at(pre, key), "must not be empty")
        return default
    return v


def read_opt_str(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    return read_str(e, d, key, pre)


def read_city(e: Errors, d: Mapping[str, Any], key: str, pre: str, default: str = "") -> str:
    # Cities repeat across hundreds of thousands of records: share one string object.
    return sys.intern(read_str(e, d, key, pre, default=default))


def _id_value(e: Errors, v: object, path: str) -> str:
    if type(v) is not str:
        e.add(path, f"expected an id string, {_got(v)}")
        return ""
    if ID_RE.fullmatch(v) is None:
        e.add(path, f"not an id (1-64 characters of A-Z a-z 0-9 . _ -): {v!r}")
        return ""
    return v


def read_id(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> str:
    v = d.get(key, _MISSING)
    return "" if v is _MISSING else _id_value(e, v, path_at(pre, key))


def read_opt_id(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> str | None:
    v = d.get(key)
    return None if v is None else _id_value(e, v, path_at(pre, key))


def read_int(
    e: Errors, d: Mapping[str, Any], key: str, pre: str, default: int | None = None
) -> int | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not int:
        e.add(path_at(pre, key), f"expected an integer, {_got(v)}")
        return None
    return v


def read_bool(e: Errors, d: Mapping[str, Any], key: str, pre: str, default: bool = False) -> bool:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not bool:
        e.add(path_at(pre, key), f"expected true or false, {_got(v)}")
        return default
    return v


def read_decimal(
    e: Errors, d: Mapping[str, Any], key: str, pre: str, default: Decimal | None = None
) -> Decimal | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is int:
        return Decimal(v)
    if type(v) is float:
        e.add(
            path_at(pre, key),
            f'floats are inexact: write the number as a string, e.g. "{v!r}"',
        )
        return None
    if type(v) is not str:
        e.add(path_at(pre, key), f"expected a decimal string, {_got(v)}")
        return None
    if _DECIMAL_RE.fullmatch(v) is None:
        e.add(path_at(pre, key), f"not a decimal number (like 123.45): {v!r}")
        return None
    return Decimal(v)


def date_value(e: Errors, v: object, path: str) -> date | None:
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


def read_date(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> date | None:
    v = d.get(key, _MISSING)
    return None if v is _MISSING else date_value(e, v, path_at(pre, key))


def read_datetime(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> datetime | None:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return None
    path = path_at(pre, key)
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


def read_enum(
    e: Errors, d: Mapping[str, Any], key: str, pre: str, table: Mapping[str, T], default: T
) -> T:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return default
    if type(v) is not str or v not in table:
        shown = repr(v) if type(v) is str else _type_name(v)
        e.add(path_at(pre, key), f"not one of {', '.join(table)}: {shown}")
        return default
    return table[v]


def read_list(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> list[Any]:
    v = d.get(key, _MISSING)
    if v is _MISSING:
        return []
    if not isinstance(v, list):
        e.add(path_at(pre, key), f"expected an array, {_got(v)}")
        return []
    return v


def read_strings(
    e: Errors, d: Mapping[str, Any], key: str, pre: str, *, intern: bool = False
) -> list[str]:
    """A list of non-empty, distinct strings."""
    out: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(read_list(e, d, key, pre)):
        path = f"{path_at(pre, key)}[{i}]"
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


def read_specialties(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> list[str]:
    out: list[str] = []
    for i, code in enumerate(read_strings(e, d, key, pre, intern=True)):
        if SPECIALTY_RE.fullmatch(code) is None:
            e.add(f"{path_at(pre, key)}[{i}]", bad_specialty(code))
        out.append(code)
    return out


def bad_specialty(code: str) -> str:
    return (
        f"not a specialty code (W, G or S, then up to four 2-digit levels, e.g. W.01.03): {code!r}"
    )


def read_money(e: Errors, d: Mapping[str, Any], key: str, pre: str) -> Decimal | None:
    v = read_decimal(e, d, key, pre)
    if v is None:
        return None
    if v <= 0:
        e.add(path_at(pre, key), f"must be positive: {v}")
        return None
    exponent = v.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        e.add(path_at(pre, key), f"at most 2 decimal places (yuan and fen): {v}")
        return None
    return v


def check_unique_id(e: Errors, seen: dict[str, str], ident: str, path: str, what: str) -> None:
    if not ident:
        return
    first = seen.get(ident)
    if first is None:
        seen[ident] = path
    else:
        e.add(path, f"duplicate {what} id {ident!r} (also at {first})")


def dec_str(value: Decimal) -> str:
    # Fixed-point text: never an exponent, so the reader's plain-decimal rule accepts it.
    return format(value, "f")


def dt_str(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime cannot be stored: {value!r}")
    return value.astimezone(UTC).isoformat()
