"""DataTable helpers shared by the consoles: refill rows without losing the operator's place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable


def selected_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor, or None on an empty table."""
    if not table.row_count:
        return None
    row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    return None if row_key.value is None else str(row_key.value)


def refill(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Replace every row; the cursor stays on the same key when that row is still there."""
    keep = selected_key(table)
    row = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if not rows:
        return
    keys = [key for key, _ in rows]
    target = keys.index(keep) if keep in keys else min(row, len(rows) - 1)
    table.move_cursor(row=max(0, target), animate=False)
