"""The three-random draw (venue, expert, workstation) as a pure, replayable function.

`draw(inputs, seed)` depends on nothing but its arguments: the coordinator commits to
SHA-256(seed) and to `input_digest(inputs)` before drawing, reveals the seed after the award, and
anyone can replay the draw from the archive (`verify_replay`) and get the identical committee,
venues and seats. One module per idea, each importing only those above it:

- `index`: the pool coded into arrays (what makes a national draw cheap);
- `inputs`: the venues offered and the candidates, explicit or referenced to a day's snapshot;
- `canonical`: the plain-JSON and canonical forms of the inputs and their digest;
- `outcome`: the seats and venues drawn, or the quota that could not be filled;
- `algorithm`: the draw itself and its normative distribution;
- `supplementary`: redrawing the seats of members who leave;
- `archive`: the commitment, the archived record and its replay.

Import from the submodule; the names below are re-exported for callers not yet moved.
"""

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import (
    ARCHIVE_FORMAT,
    Commitment,
    commit,
    commitment_from_json,
    commitment_to_json,
    make_archive,
    record_digest,
    verify_replay,
)
from coordinator.domain.draw.canonical import (
    INPUTS_FORMAT,
    canonical_inputs,
    input_digest,
    inputs_from_json,
    inputs_to_json,
    project_from_json,
    project_to_json,
    snapshot_from_json,
    snapshot_to_json,
)
from coordinator.domain.draw.index import Mask, Rows
from coordinator.domain.draw.inputs import (
    SNAPSHOT_FORMAT,
    Candidate,
    DrawInputs,
    DrawSnapshot,
    VenueOffer,
    pack_mask,
    unpack_mask,
)
from coordinator.domain.draw.outcome import (
    SEAT_FIELDS,
    DrawFailure,
    DrawOutcome,
    DrawResult,
    Seat,
    outcome_from_json,
    outcome_to_json,
)
from coordinator.domain.draw.supplementary import merge_committee, supplementary_inputs

__all__ = [
    "ARCHIVE_FORMAT",
    "INPUTS_FORMAT",
    "SEAT_FIELDS",
    "SNAPSHOT_FORMAT",
    "Candidate",
    "Commitment",
    "DrawFailure",
    "DrawInputs",
    "DrawOutcome",
    "DrawResult",
    "DrawSnapshot",
    "Mask",
    "Rows",
    "Seat",
    "VenueOffer",
    "canonical_inputs",
    "commit",
    "commitment_from_json",
    "commitment_to_json",
    "draw",
    "input_digest",
    "inputs_from_json",
    "inputs_to_json",
    "make_archive",
    "merge_committee",
    "outcome_from_json",
    "outcome_to_json",
    "pack_mask",
    "project_from_json",
    "project_to_json",
    "record_digest",
    "snapshot_from_json",
    "snapshot_to_json",
    "supplementary_inputs",
    "unpack_mask",
    "verify_replay",
]
