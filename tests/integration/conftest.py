"""Fixtures of the integration tests: an in-process grid (see `grid_fixture`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from grid_fixture import Grid, start_grid


@pytest_asyncio.fixture
async def grid() -> AsyncIterator[Grid]:
    """A fresh grid for one test."""
    async with start_grid() as g:
        yield g


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_grid() -> AsyncIterator[Grid]:
    """One grid for a whole module (its tests must run in the module's event loop)."""
    async with start_grid(seed=11) as g:
        yield g
