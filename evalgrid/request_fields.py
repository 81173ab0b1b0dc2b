"""The format of request fields, checked at the door once a request is decoded.

A field's format follows from its name, so a field added to the wire contract is checked
without anyone remembering to: ``day`` is a calendar date (YYYY-MM-DD), ``request_id`` and every
``*_id`` an identifier (what the province files and the servers make: 1-64 of A-Z a-z 0-9 . _ -).
An empty value means "not given" (whether a field is required is the servicer's call). A bad
value is refused naming the field path, before any servicer code runs; the test walks the
descriptors and sends every format's refused example in every field that has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor

__all__ = ["DATE", "ID", "ID_RE", "Format", "RequestFieldError", "check_request", "format_of"]

#: Identifiers on the wire and in the province files (codec.py uses the same pattern).
ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class RequestFieldError(ValueError):
    """A request field whose value is not of its format; the message starts with its path."""


def _is_date(value: str) -> bool:
    if _DATE_RE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Format:
    """What a value must look like, the check, and a value the check refuses (for tests)."""

    what: str
    check: Callable[[str], bool]
    refused: str


DATE: Final = Format("a date YYYY-MM-DD", _is_date, "05/12/2026")
ID: Final = Format("an id of 1-64 letters, digits, '.', '_' or '-'",
                   lambda v: ID_RE.fullmatch(v) is not None, "../etc/passwd")


def format_of(field: FieldDescriptor) -> Format | None:
    """The format of a string field, by its name; None for free text."""
    if field.type != FieldDescriptor.TYPE_STRING:
        return None
    if field.name == "day":
        return DATE
    if field.name.endswith("_id"):
        return ID
    return None


def check_request(message: Any, path: str = "") -> None:
    """Raise ``RequestFieldError`` naming the first field (path) whose value is not of its
    format; nested messages and repeated fields are checked too."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            items = enumerate(value) if field.is_repeated else [(None, value)]
            for i, item in items:
                check_request(item, f"{name}[{i}]." if i is not None else f"{name}.")
            continue
        fmt = format_of(field)
        if fmt is None:
            continue
        values = enumerate(value) if field.is_repeated else [(None, value)]
        for i, item in values:
            if item and not fmt.check(item):
                where = f"{name}[{i}]" if i is not None else name
                raise RequestFieldError(f"{where}: {fmt.what}, not {item[:40]!r}")
