"""The fault suite runs on the in-process grid of the integration tests (`grid_fixture`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if INTEGRATION not in sys.path:
    sys.path.append(INTEGRATION)

from grid_fixture import Grid, start_grid  # noqa: E402  (needs the path above)


@pytest_asyncio.fixture
async def grid() -> AsyncIterator[Grid]:
    """A fresh grid for one test (a fault leaves it in no state worth sharing)."""
    async with start_grid() as g:
        yield g
