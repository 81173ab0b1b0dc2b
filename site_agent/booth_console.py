"""`evalgrid workstation`: the booth as an expert uses it, in a plain terminal.

Enrol, wait for the expert, check identity and code, show the criteria and bids, take scores
with their bounds checked, allow revision, sign. Everything goes through the agent.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import grpc
from evalgrid_wire.v1 import common_pb2

from site_agent.booth_terminal import BoothTerminal, Score


def _read_line(prompt: str) -> str:
    print(prompt, end="", flush=True)  # flushed: the booth may run behind a pipe or a kiosk
    line = sys.stdin.readline()
    if not line:
        raise EOFError("input closed")
    return line.strip()


async def _ask(prompt: str) -> str:
    return await asyncio.to_thread(_read_line, prompt)


async def run_console(*, pki_dir: Path, site_id: str, workstation_id: str, agent: str) -> int:
    booth = BoothTerminal(pki_dir=pki_dir, site_id=site_id, workstation_id=workstation_id,
                          agent=agent)
    try:
        enrolled = await booth.enrol()
        print(f"workstation {enrolled.workstation_id} (room {enrolled.room_id}) ready",
              flush=True)
        while True:
            id_number = await _ask("ID number (empty to quit): ")
            if not id_number:
                return 0
            code = await _ask("one-time code from the notice: ")
            try:
                signed_in = await booth.sign_in(id_number, code)
            except grpc.aio.AioRpcError as exc:
                print(f"sign-in refused: {exc.details()}")
                continue
            print(f"welcome, {signed_in.expert_name}; this workstation is now locked to you")
            form = await booth.form()
            scores = await _collect(form)
            await booth.submit(scores, signed=False)
            if (await _ask("sign the sheet now? it cannot be changed after [y/N]: ")) == "y":
                reply = await booth.submit(scores, signed=True)
                print(f"sheet signed and delivered (digest {reply.digest[:16]}...)")
                return 0
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}")
        return 1
    except EOFError:
        print("\ninput closed: nothing signed was lost; the sheet keeps its last saved state")
        return 0
    finally:
        await booth.close()


async def _collect(form: common_pb2.SheetForm) -> list[Score]:
    scores = []
    for bid in form.bids:
        label = bid.code + (f" ({bid.bidder_name})" if bid.bidder_name else "")
        print(f"bid {label}, price {bid.price}")
        for criterion in form.criteria:
            top = Decimal(criterion.max_score)
            while True:
                text = await _ask(f"  {criterion.name} (0..{top}): ")
                try:
                    value = Decimal(text)
                except InvalidOperation:
                    print("  not a number")
                    continue
                if not Decimal(0) <= value <= top:
                    print(f"  must be between 0 and {top}")
                    continue
                scores.append(Score(bid.code, criterion.id, str(value)))
                break
    return scores
