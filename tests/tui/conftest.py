"""Console tests run without animations (stable snapshots; the Pilot need not wait), and may
reuse the in-process grid of the integration tests (`grid_fixture`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual import constants

INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if INTEGRATION not in sys.path:
    sys.path.append(INTEGRATION)


@pytest.fixture(autouse=True)
def _no_animations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "TEXTUAL_ANIMATIONS", "none")
