"""The whole province as dicts (the registry snapshot and the files write it record by
record, through the other codec modules)."""

from __future__ import annotations

from coordinator.domain.model import Province
from coordinator.province.codec.companies import company_to_dict
from coordinator.province.codec.experts import expert_to_dict
from coordinator.province.codec.fields import JsonDict
from coordinator.province.codec.places import site_to_dict
from coordinator.province.codec.projects import project_to_dict


def province_to_dicts(province: Province) -> dict[str, list[JsonDict]]:
    """Every record of the province as dicts, keyed by kind, in the province's own order."""
    return {
        "sites": [site_to_dict(s) for s in province.sites],
        "companies": [company_to_dict(c) for c in province.companies],
        "experts": [expert_to_dict(x) for x in province.experts],
        "projects": [project_to_dict(p) for p in province.projects],
    }
