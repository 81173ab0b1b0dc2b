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

Import from the submodule (this package re-exports nothing, `tests/test_layering.py`
checks).
"""
