"""Fixtures of the security tests: one grid per module (see `security_grid`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.append(HERE)

from security_grid import SecurityGrid, start_security_grid  # noqa: E402


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def security_grid() -> AsyncIterator[SecurityGrid]:
    async with start_security_grid() as g:
        yield g
