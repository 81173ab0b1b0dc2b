"""Collusion signals as a chunked job: the same ranking on every executor, the same statistics
as coordinator.domain.collusion, and the planted colluders on top."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.history import FAVOURED, FAVOURER, PAIR, generate
from coordinator.batch.collusion_jobs import ScoreHistory, collusion_signals_batch
from coordinator.batch.executor import make_executor
from coordinator.domain.collusion import CollusionSignals, ScoreRecord, collusion_signals
from coordinator.domain.scoring_batch import ScoreBlock


def small_block() -> ScoreBlock:
    return generate(600, bids=6, criteria=5, pool=60, companies=30, seed=3, objective=1).block


def history_of(block: ScoreBlock) -> ScoreHistory:
    return ScoreHistory.from_dense(block.project_ids, block.expert_refs, block.bidder_ids,
                                   block.scores, block.max_score)


def records_of(block: ScoreBlock) -> list[ScoreRecord]:
    _, members, bids, ncrit = block.scores.shape
    return [ScoreRecord(str(block.project_ids[p]), str(block.expert_refs[p, e]),
                        str(block.bidder_ids[p, b]), str(block.criterion_ids[p, c]),
                        int(block.scores[p, e, b, c]), int(block.max_score[p, c]))
            for p in range(len(block)) for e in range(members) for b in range(bids)
            for c in range(ncrit)]


def run(spec: str, history: ScoreHistory) -> CollusionSignals:
    executor = make_executor(spec)
    try:
        return collusion_signals_batch(history, executor, chunk=70)
    finally:
        executor.close()


def ranking(signals: CollusionSignals) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return ([(f.expert_ref, f.bidder_id) for f in signals.favour],
            [(s.expert_a, s.expert_b) for s in signals.lockstep])


def test_executors_rank_identically_and_planted_colluders_lead() -> None:
    history = history_of(small_block())
    reference = run("local", history)
    assert (reference.favour[0].expert_ref, reference.favour[0].bidder_id) == \
        (FAVOURER, FAVOURED)
    assert reference.favour[0].z > 2 * reference.favour[1].z
    assert (reference.lockstep[0].expert_a, reference.lockstep[0].expert_b) == PAIR
    assert reference.lockstep[0].correlation > 0.6
    specs = ["local:2"]
    try:
        import ray  # noqa: F401

        specs.append("ray:2")
    except ImportError:  # pragma: no cover - ray is a dependency; tolerate its absence
        pass
    for spec in specs:
        # chunks are summed in chunk order: the floats, not just the order, are identical
        assert run(spec, history) == reference, spec


def test_same_statistics_as_the_domain_functions() -> None:
    block = small_block()
    expected = collusion_signals(records_of(block))
    got = run("local", history_of(block))
    assert ranking(got) == ranking(expected)
    for mine, theirs in zip(got.favour, expected.favour, strict=True):
        assert mine.projects == theirs.projects
        assert mine.z == pytest.approx(theirs.z, rel=1e-9, abs=1e-12)
        assert mine.mean_residual == pytest.approx(theirs.mean_residual, rel=1e-9, abs=1e-12)
    for pair, other in zip(got.lockstep, expected.lockstep, strict=True):
        assert (pair.shared_projects, pair.shared_items) == \
            (other.shared_projects, other.shared_items)
        assert pair.correlation == pytest.approx(other.correlation, rel=1e-9)


def test_records_are_read_as_the_domain_reads_them() -> None:
    # three projects of one item each, scored by A, B, C (max 10); plus noise to be ignored
    records = [ScoreRecord(f"P{p}", e, "X", "C1", s, 10)
               for p in range(3) for e, s in (("A", 9), ("B", 5), ("C", 4))]
    records += [ScoreRecord("P0", "A", "X", "C2", 5, 0),  # no maximum: skipped
                ScoreRecord("P1", "C", "X", "C1", 7, 10)]  # replaces C's earlier 4 in P1
    history = ScoreHistory.from_records(records)
    assert history.records == 9
    assert list(history.experts) == ["A", "B", "C"]
    got = run("local", history)
    expected = collusion_signals(records)
    assert ranking(got) == ranking(expected)
    for mine, theirs in zip(got.favour, expected.favour, strict=True):
        assert mine.mean_residual == pytest.approx(theirs.mean_residual)
        assert (math.isinf(mine.z), mine.projects) == (math.isinf(theirs.z), theirs.projects)


def test_an_empty_history_has_no_signals() -> None:
    assert run("local", ScoreHistory.from_records([])) == CollusionSignals((), ())


def test_dense_history_needs_positive_maxima() -> None:
    block = small_block()
    with pytest.raises(ValueError, match="max_score"):
        ScoreHistory.from_dense(block.project_ids, block.expert_refs, block.bidder_ids,
                                block.scores, np.zeros_like(block.max_score))


def test_the_cli_names_a_bad_executor(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.main import main

    status = main(["audit", "collusion", "--executor", "threads", "--data-dir", "no-such-dir"])
    assert status == 2
    assert capsys.readouterr().err.startswith("evalgrid: executor: unknown 'threads'")
