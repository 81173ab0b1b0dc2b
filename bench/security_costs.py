"""What the security controls cost: revocation latency, sealing personal data, CSR signing.

    python -m bench.security_costs [--revocations 10] [--experts 20000]

- revoke -> an open stream of that certificate ends: `evalgrid pki revoke` (CRL re-signed)
  until the client sees UNAUTHENTICATED, with the servers' default poll interval;
- sealing one expert's ID and phone number (AES-GCM box, wrapped data key) plus its keyed-hash
  index entry: what an import pays per expert;
- signing one workstation CSR (what an enrolment costs the coordinator's CA).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from bench.machine import machine, pct
from coordinator.domain.pii import PersonalData, PiiKeys
from evalgrid.pki.ca import init_ca, issue, issue_from_csr, make_csr
from evalgrid.pki.crl import revoke
from evalgrid.pki.identity import Identity
from evalgrid.revocation import RevocationGuard, Revocations
from evalgrid.tls import (
    KEEPALIVE_OPTIONS,
    IdentityInterceptor,
    channel_credentials,
    secure_channel,
    server_credentials,
)


async def _forever(request: bytes, context: object) -> AsyncIterator[bytes]:
    yield b"open"
    await asyncio.Event().wait()


async def revocation_latency(pki: Path, runs: int) -> list[float]:
    revocations = Revocations(pki)
    server = grpc.aio.server(interceptors=[IdentityInterceptor(), RevocationGuard(revocations)],
                             options=KEEPALIVE_OPTIONS)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "b.Probe", {"Forever": grpc.unary_stream_rpc_method_handler(_forever)}),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki, "coordinator", "c"))
    await server.start()
    watcher = asyncio.create_task(revocations.watch())
    took = []
    try:
        for i in range(runs):
            name = f"op-{i}"
            issue(pki, "operator", name)
            channel = secure_channel(f"127.0.0.1:{port}", channel_credentials(pki, "operator",
                                                                              name))
            call = channel.unary_stream("/b.Probe/Forever")(b"")
            await call.read()
            start = time.perf_counter()
            await asyncio.to_thread(revoke, pki, identity=Identity("operator", name))
            try:
                await call.read()
            except grpc.aio.AioRpcError:
                took.append(time.perf_counter() - start)
            await channel.close()
    finally:
        watcher.cancel()
        await server.stop(None)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--revocations", type=int, default=10)
    parser.add_argument("--experts", type=int, default=20_000)
    args = parser.parse_args()
    pki = Path(tempfile.mkdtemp(prefix="bench-sec-")) / "pki"
    init_ca(pki)
    issue(pki, "coordinator", "c")
    latency = asyncio.run(revocation_latency(pki, args.revocations))

    keys = PiiKeys.from_master(secrets.token_bytes(32))
    start = time.perf_counter()
    for i in range(args.experts):
        keys.seal(f"E{i:06d}", PersonalData("330102198001011234", "13800000000"))
        keys.id_lookup("330102198001011234")
    per_expert = (time.perf_counter() - start) / args.experts

    csrs = [make_csr(ec.generate_private_key(ec.SECP256R1()), "workstation", f"S1/W{i}")
            for i in range(50)]
    start = time.perf_counter()
    for i, csr in enumerate(csrs):
        issue_from_csr(pki, csr, "workstation", f"S1/W{i}")
    per_csr = (time.perf_counter() - start) / len(csrs)

    table = Table(title="security controls: costs")
    for column in ("what", "n", "figure"):
        table.add_column(column)
    table.add_row("revoke -> open stream closed (poll 0.5 s)", str(len(latency)),
                  f"p50 {statistics.median(latency) * 1000:.0f} ms, "
                  f"max {pct(latency, 100) * 1000:.0f} ms")
    table.add_row("seal ID + phone, index entry, per expert", str(args.experts),
                  f"{per_expert * 1e6:.1f} us ({per_expert * 300_000:.1f} s for 300,000)")
    table.add_row("sign one workstation CSR (CA)", str(len(csrs)), f"{per_csr * 1000:.2f} ms")
    console = Console()
    console.print(table)
    console.print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
