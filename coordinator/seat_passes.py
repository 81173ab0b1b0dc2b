"""Seat passes: what lets a guest agent admit a member while the coordinator is unreachable.

Sent when the evaluation starts (never earlier: before the start nobody may sign in, so a
pass that is not there cannot be attacked), one `Admit` command per seat, queued and fenced
like every command. The pass is sealed under the member's ID number and notice code
(`evalgrid.seat_pass`); it holds the member's opaque reference and name, the sheet form, and a
proof (a MAC of the session under the coordinator key) that the agent returns with an offline
sign-in, so the coordinator accepts the sign-in without ever having sent the code anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from evalgrid_wire.v1 import common_pb2, site_link_pb2

from coordinator.allocation import SeatRecord
from coordinator.domain.model import Project
from evalgrid import seat_pass
from evalgrid.ids import opaque_id
from evalgrid.wire import to_window


def sheet_form(project: Project, codes: dict[str, str], names: dict[str, str], *,
               session_id: str, returned_reason: str = "",
               leader: bool = False) -> common_pb2.SheetForm:
    """The form a signed-in member scores on: criteria and bids by code, nothing of others."""
    form = common_pb2.SheetForm(
        session_id=session_id, project_name=project.name,
        window=to_window(project.window.start, project.window.end),
        returned_reason=returned_reason, leader=leader)
    for c in project.scoring.criteria:
        form.criteria.add(id=c.id, name=c.name, max_score=str(c.max_score),
                          objective=c.objective)
    for bid in project.bids:
        if not bid.valid:
            continue
        form.bids.add(code=codes[bid.bidder_id], price=str(bid.price),
                      bidder_name="" if project.double_blind else
                      names.get(bid.bidder_id, bid.bidder_id))
    return form


def proof(master_key: bytes, session_id: str) -> str:
    """What only an opened pass reveals; checked when an offline sign-in is forwarded."""
    return hmac.new(master_key, b"seat-pass-proof\x00" + session_id.encode(),
                    hashlib.sha256).hexdigest()


def proof_matches(master_key: bytes, session_id: str, offered: str) -> bool:
    return hmac.compare_digest(proof(master_key, session_id).encode(), offered.encode())


async def admit_command(master_key: bytes, seat: SeatRecord, *, id_number: str,
                        expert_name: str, form: common_pb2.SheetForm
                        ) -> site_link_pb2.CoordinatorCommand:
    """The `Admit` command of one seat (the key stretching runs off the event loop; its fence
    is taken as it is queued)."""
    payload = site_link_pb2.SeatPass(expert_ref=seat.expert_ref, expert_name=expert_name,
                                     form=form, proof=proof(master_key, seat.session_id))
    sealed = await asyncio.to_thread(
        seat_pass.seal, payload.SerializeToString(), session_id=seat.session_id,
        id_number=id_number, code=seat.code)
    return site_link_pb2.CoordinatorCommand(
        command_id=opaque_id("cmd"),
        admit=site_link_pb2.Admit(session_id=seat.session_id, sealed_pass=sealed))
