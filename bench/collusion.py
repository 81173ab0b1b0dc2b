"""Collusion signals over the 21-million-score history (bench.history), through the executors.

Favour (per expert and company) and lock-step (per pair of experts who sat together)
statistics as a job chunked by project (coordinator/batch/collusion_jobs.py), merged and
ranked: in-process, on local processes and on Ray with 1 and 2 workers. Every executor must
give the identical ranking, with the planted favourer and lock-step pair on top.
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.aggregation import TreeMemory, start_chunk
from bench.history import FAVOURED, FAVOURER, PAIR, generate
from bench.machine import print_table
from coordinator.batch.collusion_jobs import ScoreHistory, collusion_signals_batch
from coordinator.batch.executor import make_executor
from coordinator.domain.collusion import CollusionSignals


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    block = generate(args.projects, seed=args.seed).block
    history = ScoreHistory.from_dense(block.project_ids, block.expert_refs, block.bidder_ids,
                                      block.scores, block.max_score)
    del block
    prepared = time.perf_counter() - t0
    print(f"{history.records:,} scores of {len(history):,} projects, {len(history.experts):,} "
          f"experts, {len(history.bidders):,} companies, generated and laid out by item in "
          f"{prepared:.1f} s ({(history.x.nbytes + history.expert.nbytes) / 2**20:,.0f} MiB)")
    rows: list[list[str]] = []
    reference: CollusionSignals | None = None
    base = 0.0
    for spec in args.executors.split(","):
        executor = make_executor(spec)
        try:
            start = 0.0
            if spec.startswith("ray"):  # Ray's start-up is timed apart from the analysis
                t0 = time.perf_counter()
                executor.map_chunks(start_chunk, None, [0])
                start = time.perf_counter() - t0
            with TreeMemory() as memory:
                t0 = time.perf_counter()
                signals = collusion_signals_batch(history, executor, chunk=args.chunk)
                elapsed = time.perf_counter() - t0
        finally:
            executor.close()
        if reference is None:
            reference, base = signals, elapsed
        elif signals != reference:
            raise AssertionError(f"{spec}: a different result from {executor.name}")
        rows.append([executor.name, f"{elapsed:.1f}",
                     f"{history.records / elapsed / 1e6:.2f} M", f"{base / elapsed:.2f}x",
                     f"{memory.peak / 2**20:,.0f}", f"{start:.1f}" if start else "-"])
    assert reference is not None
    print_table(f"collusion signals: {history.records:,} scores, {len(history):,} projects, "
                f"chunks of {args.chunk} projects",
                ["executor", "seconds", "scores/s", "speed-up", "peak RSS MiB (tree)",
                 "executor start s"], rows)
    top_f, top_l = reference.favour[0], reference.lockstep[0]
    planted = (top_f.expert_ref, top_f.bidder_id) == (FAVOURER, FAVOURED) and \
        (top_l.expert_a, top_l.expert_b) == PAIR
    print(f"top favour: {top_f.expert_ref} -> {top_f.bidder_id} (z {top_f.z:.1f}, next "
          f"{reference.favour[1].z:.1f}); top lock-step: {top_l.expert_a} + {top_l.expert_b} "
          f"(r {top_l.correlation:.2f}, z {top_l.z:.1f}, next {reference.lockstep[1].z:.1f}); "
          f"planted colluders on top: {'yes' if planted else 'NO'}")
    print(f"{len(reference.favour):,} expert-company and {len(reference.lockstep):,} pair "
          f"signals; driver peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.collusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=1_000, help="projects per job chunk")
    parser.add_argument("--executors", default="local,ray:1,ray:2",
                        help="comma separated: local, local:N, ray:N, ray:auto")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
