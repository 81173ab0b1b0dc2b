"""The day screen's interval store (sittings and bookings per half-day), against a plain list:
grouped by interval, its overlap query must still find every live row whose interval
overlaps, however rows were added, removed (a row may sit twice), copied and changed after."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.eligibility import _Intervals

SPANS = [(0, 10), (0, 5), (5, 10), (10, 20), (3, 4), (9, 12)]
_op = st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 6), st.sampled_from(SPANS))


def _expected(held: list[tuple[int, int, int]], start: int, end: int) -> list[int]:
    return sorted(r for r, s, e in held if s < end and start < e)


def _apply(store: _Intervals, held: list[tuple[int, int, int]], op: str, row: int,
           span: tuple[int, int]) -> None:
    if op == "add":
        store.add(row, *span)
        held.append((row, *span))
    else:
        assert store.remove(row, *span) == ((row, *span) in held)
        if (row, *span) in held:
            held.remove((row, *span))


@given(st.lists(_op, max_size=80), st.lists(_op, max_size=20),
       st.sampled_from([*SPANS, (20, 30), (4, 6)]))
def test_overlapping_finds_the_live_rows_a_list_finds(
        ops: list[tuple[str, int, tuple[int, int]]],
        after: list[tuple[str, int, tuple[int, int]]], query: tuple[int, int]) -> None:
    store, held = _Intervals(), []
    for op in ops:
        _apply(store, held, *op)
    copy, copied = store.copy(), list(held)
    assert sorted(store.overlapping(*query).tolist()) == _expected(held, *query)
    assert sorted(store.live_rows().tolist()) == sorted(r for r, _, _ in held)
    for op in after:  # the copy changes alone
        _apply(copy, copied, *op)
    assert sorted(store.overlapping(*query).tolist()) == _expected(held, *query)
    assert sorted(copy.overlapping(*query).tolist()) == _expected(copied, *query)


def test_rows_read_before_a_removal_keep_what_they_read() -> None:
    """The query may hand out a view of a span's rows; a later removal must not change the
    rows a caller already holds (the day screen keeps a draw's state rows)."""
    store = _Intervals()
    for row in range(40):  # past the first growth of the span's array
        store.add(row, 0, 10)
    held = store.overlapping(0, 10)
    before = held.copy()
    store.remove(7, 0, 10)
    store.add(99, 0, 10)
    assert np.array_equal(held, before)
    assert 7 not in store.overlapping(0, 10).tolist()
