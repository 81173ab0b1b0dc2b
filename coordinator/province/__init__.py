"""Province data files: the model as JSON-able dicts, the on-disk format, a synthetic generator.

The codec (`codec`) is pure and validates every record, the importer (`files`) reads and writes
the four JSON-lines files and checks references between records, and `generator` builds a
realistic, reproducible province for demos, tests and benchmarks.
"""

from coordinator.province.codec import province_to_dicts
from coordinator.province.codec.companies import company_from_dict, company_to_dict
from coordinator.province.codec.experts import expert_from_dict, expert_to_dict
from coordinator.province.codec.fields import FieldError, RecordError
from coordinator.province.codec.places import site_from_dict, site_to_dict
from coordinator.province.codec.projects import project_from_dict, project_to_dict
from coordinator.province.files import (
    ImportFailed,
    ImportProblem,
    load_province,
    write_province,
)
from coordinator.province.generator import generate_province

__all__ = [
    "FieldError",
    "ImportFailed",
    "ImportProblem",
    "RecordError",
    "company_from_dict",
    "company_to_dict",
    "expert_from_dict",
    "expert_to_dict",
    "generate_province",
    "load_province",
    "project_from_dict",
    "project_to_dict",
    "province_to_dicts",
    "site_from_dict",
    "site_to_dict",
    "write_province",
]
