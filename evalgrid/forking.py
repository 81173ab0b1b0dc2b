"""Whether this process may fork a worker that shares its memory (a day plan's drawing
process, coordinator/plan_drawing.py).

grpcio's core installs fork handlers by default; in a process whose gRPC threads are busy they
are skipped and leave the child's copy of gRPC half-reset, and the child aborts on a failed
check inside gRPC's poller (seen, not theorised: a planned day over gRPC did so two runs in
three). Switched off (GRPC_ENABLE_FORK_SUPPORT=false), gRPC leaves a fork alone and a child
that never calls gRPC is safe. The switch is read once, when grpc is imported, so the entry
points call `keep_grpc_out_of_forks` before anything imports grpc: the `evalgrid` command
(app/cli/main.py, which every process of the grid runs), the test session (tests/conftest.py)
and the benches (bench/__init__.py). A process where grpc came first, or where the operator
asked for gRPC's fork support, does not fork (`may_fork` is False): it draws its plans
in-process instead.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "GRPC_ENABLE_FORK_SUPPORT"
_OFF = {"0", "false", "no", "off"}
_state = {"safe": False}


def keep_grpc_out_of_forks() -> None:
    """Turn gRPC's fork handlers off unless the operator set the variable; note whether
    that took effect (only if grpc is not imported yet, or the variable was already off)."""
    was_off = os.environ.get(VARIABLE, "").strip().lower() in _OFF
    if "grpc" not in sys.modules:
        os.environ.setdefault(VARIABLE, "false")
    is_off = os.environ.get(VARIABLE, "").strip().lower() in _OFF
    _state["safe"] = _state["safe"] or (is_off and ("grpc" not in sys.modules or was_off))


def may_fork() -> bool:
    """True when gRPC's fork handlers are known to be off in this process."""
    return _state["safe"]
