"""Model records <-> plain JSON-able dicts, validating everything on the way in.

Province data arrives from many trading centres and expert databases; a malformed record must be
rejected with a precise, dotted field path (``employments[2].start``) so the operator can fix the
source, rather than surfacing later as a wrong draw. The codec is pure (no I/O): the importer in
`coordinator.province.files` adds file names, line numbers and checks between records.

One module per idea, each importing only those above it: `fields` (reading a record field by
field, and the encoding decisions), `places` (cities and sites), `companies`, `experts` (with
the registry's sealed form) and `projects`; `province_to_dicts` here. The names below are
re-exported for callers that use `codec.X`.
"""

from __future__ import annotations

from coordinator.domain.model import Province
from coordinator.province.codec.companies import company_from_dict, company_to_dict
from coordinator.province.codec.experts import (
    expert_from_dict,
    expert_from_stored,
    expert_to_dict,
    expert_to_stored,
)
from coordinator.province.codec.fields import (
    CREDIT_CODE_RE,
    ID_RE,
    SPECIALTY_RE,
    FieldError,
    JsonDict,
    RecordError,
    is_specialty_code,
)
from coordinator.province.codec.places import (
    city_from_dict,
    city_to_dict,
    site_from_dict,
    site_to_dict,
)
from coordinator.province.codec.projects import project_from_dict, project_to_dict

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


# --- the whole province --------------------------------------------------------------------


def province_to_dicts(province: Province) -> dict[str, list[JsonDict]]:
    """Every record of the province as dicts, keyed by kind, in the province's own order."""
    return {
        "sites": [site_to_dict(s) for s in province.sites],
        "companies": [company_to_dict(c) for c in province.companies],
        "experts": [expert_to_dict(x) for x in province.experts],
        "projects": [project_to_dict(p) for p in province.projects],
    }
