"""The chaos suite reuses the process kit of the fault suite."""

from __future__ import annotations

import sys
from pathlib import Path

FAULTS = str(Path(__file__).resolve().parent.parent / "faults")
if FAULTS not in sys.path:
    sys.path.append(FAULTS)
