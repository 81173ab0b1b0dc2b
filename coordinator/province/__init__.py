"""Province data files: the model as JSON-able dicts, the on-disk format, a synthetic generator.

The codec (`codec`) is pure and validates every record, the importer (`files`) reads and writes
the four JSON-lines files and checks references between records, and `generator` builds a
realistic, reproducible province for demos, tests and benchmarks. Import from the module itself
(this package re-exports nothing, `tests/test_layering.py` checks).
"""
