"""Model records <-> plain JSON-able dicts, validating everything on the way in.

Province data arrives from many trading centres and expert databases; a malformed record must be
rejected with a precise, dotted field path (``employments[2].start``) so the operator can fix the
source, rather than surfacing later as a wrong draw. The codec is pure (no I/O): the importer in
`coordinator.province.files` adds file names, line numbers and checks between records.

One module per idea, each importing only those above it; import from the module itself (this
package re-exports nothing, `tests/test_layering.py` checks):

- `fields`: reading a record field by field, the encoding decisions, `RecordError`;
- `places`: cities and sites;
- `companies`;
- `experts`, with the registry's sealed form;
- `projects`;
- `province`: the whole province (`province_to_dicts`).
"""
